"""Plug-in information quantities of discrete samples, in bits."""

from __future__ import annotations

import numpy as np

from parsefl.errors import DataError


def encode(values: object, name: str) -> np.ndarray:
    """Compact integer codes ``0..m-1`` of a 1-D array of discrete values (sorted order).

    Args:
        values: Array-like of hashable discrete values (ints, bools, strings).
        name: Argument name used in error messages.

    Raises:
        DataError: The array is not 1-D or is empty.
    """
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise DataError(f"{name} must be 1-D discrete codes, got shape {arr.shape}")
    if arr.size == 0:
        raise DataError(f"{name} is empty")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise DataError(f"{name} contains NaN or infinite values")
    _, codes = np.unique(arr, return_inverse=True)
    return codes.reshape(-1).astype(np.int64)


def joint_distribution(x1: object, x2: object, y: object) -> np.ndarray:
    """Empirical joint p[x1, x2, y] of three aligned 1-D discrete arrays.

    Returns:
        float64 array of shape (|X1|, |X2|, |Y|) summing to 1, over the values that occur.

    Raises:
        DataError: An array is not 1-D, is empty, or the lengths differ.
    """
    codes = [encode(v, n) for v, n in ((x1, "x1"), (x2, "x2"), (y, "y"))]
    lengths = {len(c) for c in codes}
    if len(lengths) != 1:
        raise DataError(f"x1, x2 and y must have the same length, got {[len(c) for c in codes]}")
    shape = tuple(int(c.max()) + 1 for c in codes)
    counts = np.zeros(shape, dtype=np.float64)
    np.add.at(counts, tuple(codes), 1.0)
    return counts / counts.sum()


def entropy(p: np.ndarray) -> float:
    """Shannon entropy in bits of a probability array (any shape)."""
    q = p[p > 0]
    return float(-(q * np.log2(q)).sum())


def mutual_information(pxy: np.ndarray) -> float:
    """I(X; Y) in bits of a 2-D joint probability table ``pxy[x, y]``; never negative."""
    value = entropy(pxy.sum(axis=1)) + entropy(pxy.sum(axis=0)) - entropy(pxy)
    return max(0.0, value)


def pid_informations(p: np.ndarray) -> tuple[float, float, float]:
    """``(I(X1;Y), I(X2;Y), I(X1,X2;Y))`` in bits of a joint table ``p[x1, x2, y]``."""
    a, b, c = p.shape
    i1 = mutual_information(p.sum(axis=1))
    i2 = mutual_information(p.sum(axis=0))
    i12 = mutual_information(p.reshape(a * b, c))
    # Round-off can put a marginal information a hair above the joint one.
    return i1, i2, max(i12, i1, i2)
