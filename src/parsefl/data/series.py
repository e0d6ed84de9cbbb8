"""Helpers for time-series modalities shaped ``(samples, channels, length)``.

* :func:`fill_nan` repairs NaN gaps (the UCR/UEA archives pad shorter series with NaN):
  interior gaps are linearly interpolated, leading/trailing gaps hold the nearest value.
* :func:`standardize_channels` scales each channel to zero mean and unit variance using
  statistics pooled over the TRAIN samples and time steps of that channel only (unlike
  :func:`parsefl.data.base.standardize`, which works per time step, this keeps the shape of
  each series intact).
"""

from __future__ import annotations

import numpy as np

from parsefl.data.base import MultimodalDataset, Split
from parsefl.errors import DataError

_STD_FLOOR = 1e-8


def fill_nan(series: np.ndarray, what: str) -> np.ndarray:
    """A float64 copy of ``series`` (any shape, time on the last axis) without NaN.

    Each 1-D series along the last axis: NaNs between finite values are linearly
    interpolated; NaNs before the first (after the last) finite value take that value.

    Args:
        series: Array whose last axis is time.
        what: Name of the data in error messages (e.g. the file name).

    Raises:
        DataError: A series is entirely NaN, or a value is infinite.
    """
    out = np.array(series, dtype=np.float64)
    if np.isinf(out).any():
        raise DataError(f"{what}: {int(np.isinf(out).sum())} infinite values")
    missing = np.isnan(out)
    if not missing.any():
        return out
    flat = out.reshape(-1, out.shape[-1])
    steps = np.arange(out.shape[-1])
    for row in np.flatnonzero(missing.reshape(-1, out.shape[-1]).any(axis=1)):
        known = ~np.isnan(flat[row])
        if not known.any():
            raise DataError(f"{what}: series {row} (flattened over channels) is entirely NaN")
        flat[row] = np.interp(steps, steps[known], flat[row][known])
    return flat.reshape(out.shape)


def standardize_channels(train: Split, test: Split) -> tuple[Split, Split]:
    """Per channel of every ``(n, C, L)`` modality: zero mean, unit variance on TRAIN.

    Mean and std of channel ``c`` pool the train samples and all time steps; test data are
    scaled with the same numbers. Channels whose train std is below 1e-8 are only centered.

    Returns:
        The standardized ``(train, test)`` splits.

    Raises:
        DataError: The train split is empty or a modality is not 3-D.
    """
    if len(train) == 0:
        raise DataError("cannot standardize with an empty train split")
    train_x: dict[str, np.ndarray] = {}
    test_x: dict[str, np.ndarray] = {}
    for name, arr in train.x.items():
        if arr.ndim != 3:
            raise DataError(f"modality {name!r}: expected (samples, channels, length), "
                            f"got shape {arr.shape}")
        mean = arr.mean(axis=(0, 2), dtype=np.float64, keepdims=True)
        std = arr.std(axis=(0, 2), dtype=np.float64, keepdims=True)
        std = np.where(std < _STD_FLOOR, 1.0, std)
        train_x[name] = ((arr - mean) / std).astype(np.float32)
        test_x[name] = ((test.x[name] - mean) / std).astype(np.float32)
    return Split(x=train_x, y=train.y), Split(x=test_x, y=test.y)


def official_split_dataset(
    name: str, splits: dict, modalities: tuple[str, ...], class_names: tuple[str, ...]
) -> MultimodalDataset:
    """A time-series dataset from its official TRAIN/TEST split (per-modality arrays and
    labels), each channel standardized with the train split's statistics."""
    (train_x, train_y), (test_x, test_y) = splits["TRAIN"], splits["TEST"]
    train, test = standardize_channels(Split(dict(train_x), train_y), Split(dict(test_x), test_y))
    return MultimodalDataset(name=name, modalities=modalities, n_classes=len(class_names),
                             train=train, test=test, class_names=class_names)
