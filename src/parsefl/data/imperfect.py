"""Per-agent data imperfections as pure, seeded functions: missing modalities, noisy labels,
missing labels.

Each function takes a ``numpy.random.Generator`` (seed it per agent, e.g.
``np.random.default_rng([seed, agent_id])``), never changes its inputs and affects an exact
number of samples, ``round(rate * n)`` (half up), chosen uniformly without replacement, so two
agents with the same rate and size get the same amount of damage.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from parsefl.data._checks import check_float, check_int
from parsefl.errors import ConfigError, DataError


def _check_rng(rng: object) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return rng


def _count(rate: float, n: int) -> int:
    """``round(rate * n)`` rounding half up."""
    return min(n, math.floor(rate * n + 0.5))


def missing_modality_mask(
    n: int,
    modalities: Sequence[str],
    rate: float,
    rng: np.random.Generator,
    *,
    field: str = "imperfect.missing_modality",
) -> dict[str, np.ndarray]:
    """Which modalities each of ``n`` samples keeps (True = present).

    For every modality independently, ``round(rate * n)`` samples lose it. A sample that
    would then lose every modality gets one of them back, chosen uniformly, so each sample
    keeps at least one; the realised rate can therefore be below ``rate`` (always, when
    there is a single modality, which then is never dropped).

    Args:
        n: Number of samples.
        modalities: The agent's modalities, in order; masks are drawn in this order.
        rate: Fraction of samples missing each modality, in [0, 1].
        rng: The random generator (consumed).
        field: Config field named in errors.

    Returns:
        Modality -> boolean mask of shape ``(n,)``.
    """
    n = check_int("n", n, 0)
    rate = check_float(field, rate, 0.0, 1.0, low_open=False, high_open=False)
    rng = _check_rng(rng)
    names = list(modalities)
    if not names or len(set(names)) != len(names):
        raise ConfigError(field, f"need distinct modalities, got {names}")
    present = np.ones((len(names), n), dtype=bool)
    for row in present:
        row[rng.choice(n, size=_count(rate, n), replace=False)] = False
    lost = np.flatnonzero(~present.any(axis=0))
    present[rng.integers(0, len(names), size=len(lost)), lost] = True
    return {name: present[i] for i, name in enumerate(names)}


def noisy_labels(
    y: np.ndarray,
    n_classes: int,
    rate: float,
    rng: np.random.Generator,
    *,
    field: str = "imperfect.label_noise",
) -> np.ndarray:
    """A copy of ``y`` in which ``round(rate * n)`` labels are flipped to another class.

    Each flipped label becomes a class chosen uniformly among the ``n_classes - 1`` others
    (never itself), so exactly that many labels are wrong.

    Args:
        y: Labels in ``0..n_classes-1``.
        n_classes: Number of classes, >= 2 when ``rate > 0``.
        rate: Fraction of labels to flip, in [0, 1].
        rng: The random generator (consumed).
        field: Config field named in errors.

    Returns:
        The noisy labels, int64, same shape as ``y``.
    """
    labels = _check_labels(y, check_int(f"{field}.n_classes", n_classes, 1))
    rate = check_float(field, rate, 0.0, 1.0, low_open=False, high_open=False)
    rng = _check_rng(rng)
    flip = rng.choice(len(labels), size=_count(rate, len(labels)), replace=False)
    if len(flip) and n_classes < 2:
        raise ConfigError(field, "cannot flip labels with a single class")
    out = labels.copy()
    out[flip] = (labels[flip] + rng.integers(1, max(n_classes, 2), size=len(flip))) % n_classes
    return out


def missing_labels(
    y: np.ndarray,
    rate: float,
    rng: np.random.Generator,
    *,
    field: str = "imperfect.missing_labels",
) -> np.ndarray:
    """Which samples keep their label (True = labelled); ``round(rate * n)`` lose it.

    Args:
        y: Labels (only their number matters).
        rate: Fraction of unlabelled samples, in [0, 1].
        rng: The random generator (consumed).
        field: Config field named in errors.

    Returns:
        Boolean mask of shape ``(len(y),)``.
    """
    n = len(np.asarray(y))
    rate = check_float(field, rate, 0.0, 1.0, low_open=False, high_open=False)
    rng = _check_rng(rng)
    labelled = np.ones(n, dtype=bool)
    labelled[rng.choice(n, size=_count(rate, n), replace=False)] = False
    return labelled


def _check_labels(y: np.ndarray, n_classes: int) -> np.ndarray:
    labels = np.asarray(y)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(f"labels must be a 1-D integer array, got {labels.dtype} {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise DataError(f"labels must lie in 0..{n_classes - 1}")
    return labels.astype(np.int64)
