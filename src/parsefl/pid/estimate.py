"""PID of discrete samples (exact, on the empirical joint) and of continuous features.

``pid_discrete`` decomposes the empirical distribution of integer-coded samples exactly;
``pid`` first clusters each continuous modality with k-means (``parsefl.pid.discretize``
documents how k is picked) and then calls ``pid_discrete`` on the cluster codes.
"""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

from parsefl.errors import DataError
from parsefl.pid.discretize import K_MAX, MIN_SAMPLES_PER_CELL, discretize
from parsefl.pid.info import joint_distribution, pid_informations
from parsefl.pid.registry import PID_ESTIMATORS
from parsefl.pid.result import PID

_DEGENERATE = 1e-12
_TINY = 1e-14


def _check_table(p: object) -> np.ndarray:
    """``p`` as a normalized float64 3-D table, cells below 1e-14 zeroed, empty slices dropped."""
    table = np.asarray(p, dtype=np.float64)
    if table.ndim != 3 or table.size == 0:
        raise DataError(f"a joint table p[x1, x2, y] must be 3-D and non-empty, got {table.shape}")
    if not np.all(np.isfinite(table)) or np.any(table < 0) or table.sum() <= 0:
        raise DataError("a joint table must be finite, non-negative and not all zero")
    table = table / table.sum()
    # Below double precision next to 1: such cells carry < 1e-12 bits each, and their huge
    # dual variables would stall the exact solver.
    table = np.where(table < _TINY, 0.0, table)
    keep = [table.sum(axis=tuple(j for j in range(3) if j != i)) > 0 for i in range(3)]
    table = table[np.ix_(*keep)]
    return table / table.sum()


def pid_from_joint(p: np.ndarray, estimator: str = "broja", seed: int = 0) -> PID:
    """PID of a joint probability table ``p[x1, x2, y]`` (in bits).

    When the atoms are already fixed by the mutual informations (a source or the label is
    constant, or more generally ``min(I1, I2) <= max(0, I1 + I2 - I12)``), the estimator is
    skipped. The estimator runs with one BLAS/OpenMP thread.

    Args:
        p: Non-negative table of shape (|X1|, |X2|, |Y|) (normalized here; cells below
            1e-14 are set to 0 and values of zero probability are dropped).
        estimator: Name in ``PID_ESTIMATORS`` (``broja``, ``broja_dit``, ``mmi``).
        seed: Passed to the estimator (dit's random restarts).
    """
    measure = PID_ESTIMATORS.get(estimator, field="estimator")
    p = _check_table(p)
    i1, i2, i12 = pid_informations(p)
    low, high = max(0.0, i1 + i2 - i12), min(i1, i2)
    if min(p.shape) < 2 or high - low <= _DEGENERATE:
        return PID.from_redundancy(low, i1, i2, i12)
    # Small dense algebra: extra BLAS threads only add start-up and contention costs.
    with threadpool_limits(limits=1):
        redundancy = measure(p, seed)
    return PID.from_redundancy(redundancy, i1, i2, i12)


def pid_discrete(x1: object, x2: object, y: object, estimator: str = "broja", seed: int = 0) -> PID:
    """Exact PID (bits) of the empirical joint distribution of three discrete arrays.

    Args:
        x1: Source 1, 1-D discrete codes (any hashable values), length n.
        x2: Source 2, same length.
        y: Target, same length.
        estimator: Name in ``PID_ESTIMATORS``; ``broja`` (default) is the BROJA PID.
        seed: Seed of the estimator's random restarts (results are reproducible).

    Raises:
        DataError: An array is not 1-D, is empty, or the lengths differ.
        ConfigError: Unknown estimator.
    """
    return pid_from_joint(joint_distribution(x1, x2, y), estimator, seed)


def pid(
    x1: object,
    x2: object,
    y: object,
    k: int | tuple[int, int] | None = None,
    seed: int = 0,
    estimator: str = "broja",
    k_max: int = K_MAX,
    min_samples_per_cell: float = MIN_SAMPLES_PER_CELL,
) -> PID:
    """PID (bits) of two continuous modalities about discrete labels, via k-means codes.

    Each modality is clustered into k groups and ``pid_discrete`` decomposes the codes.
    Too few clusters merge distinct patterns and lose information (on ``synthetic_pid``'s
    ``mixed`` label, whose modalities show 8 patterns each, k = 6 gives R = 0.77 and S = 0.52
    instead of 1 and 1); too many make the joint table sparse, which inflates synergy.
    With ``k=None`` the rule in ``parsefl.pid.discretize`` picks k per modality.

    Args:
        x1: Modality 1 features, shape (n, d1) (numpy array or torch tensor).
        x2: Modality 2 features, shape (n, d2).
        y: Discrete labels, shape (n,).
        k: Clusters per modality (an int, a pair, or None for the rule).
        seed: Seed of k-means and of the estimator.
        estimator: Name in ``PID_ESTIMATORS``.
        k_max: Largest k the rule may pick.
        min_samples_per_cell: Sparsity guard; see ``parsefl.pid.discretize.discretize``.

    Warns:
        SparseJointWarning: k1 * k2 * |Y| exceeds n / min_samples_per_cell.
    """
    codes = discretize(x1, x2, y, k, seed, k_max, min_samples_per_cell)
    return pid_discrete(codes.codes1, codes.codes2, codes.y, estimator, seed)


def slice_pid(
    slices_a: object,
    slices_b: object,
    y: object,
    k: int | tuple[int, int] | None = None,
    seed: int = 0,
    estimator: str = "broja",
) -> PID:
    """``pid`` for learned feature slices (e.g. two encoders' r, u or s outputs).

    Accepts numpy arrays or torch tensors of shape (n, width); tensors are detached and
    copied to the CPU. Everything else is exactly ``pid``.
    """
    return pid(slices_a, slices_b, y, k=k, seed=seed, estimator=estimator)
