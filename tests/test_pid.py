"""Tests of the discrete PID: closed forms, the exact BROJA solver, estimators, pid_split."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from parsefl.errors import ConfigError, DataError
from parsefl.pid import PID, PID_ESTIMATORS, pid_discrete, pid_from_joint, pid_split
from parsefl.pid.broja import broja_min_information
from parsefl.pid.info import joint_distribution, pid_informations

TOL = 1e-3
AND_R = 0.75 * math.log2(4 / 3) + 0.25 * math.log2(4) - 0.5  # I(X1; AND) = h(1/4) - 1/2


def bits(n_bits: int, repeat: int = 3) -> np.ndarray:
    """Every pattern of ``n_bits`` fair bits, ``repeat`` times: shape (2**n * repeat, n)."""
    rows = np.array(list(itertools.product((0, 1), repeat=n_bits)), dtype=np.int64)
    return np.tile(rows, (repeat, 1))


def assert_pid(result: PID, r: float, u1: float, u2: float, s: float, tol: float = TOL) -> None:
    np.testing.assert_allclose(result.as_tuple(), (r, u1, u2, s), atol=tol)
    assert result.total == pytest.approx(r + u1 + u2 + s, abs=tol)


def random_table(seed: int, shape: tuple[int, int, int]) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.full(math.prod(shape), 0.5)).reshape(shape)


def test_copy_of_independent_bits_is_all_unique() -> None:
    b = bits(2)
    assert_pid(pid_discrete(b[:, 0], b[:, 1], 2 * b[:, 0] + b[:, 1]), 0, 1, 1, 0)


def test_copy_of_identical_bits_is_all_redundant() -> None:
    x = bits(1)[:, 0]
    assert_pid(pid_discrete(x, x, x), 1, 0, 0, 0)
    assert_pid(pid_discrete(x, x, 2 * x + x), 1, 0, 0, 0)  # y = (x1, x2) with x1 = x2


def test_xor_is_all_synergy() -> None:
    b = bits(2)
    assert_pid(pid_discrete(b[:, 0], b[:, 1], b[:, 0] ^ b[:, 1]), 0, 0, 0, 1)


def test_copy_of_one_source_is_unique_to_it() -> None:
    b = bits(2)
    assert_pid(pid_discrete(b[:, 0], b[:, 1], b[:, 0]), 0, 1, 0, 0)
    assert_pid(pid_discrete(b[:, 0], b[:, 1], b[:, 1]), 0, 0, 1, 0)


def test_and_has_known_broja_values() -> None:
    b = bits(2)
    result = pid_discrete(b[:, 0], b[:, 1], b[:, 0] & b[:, 1])
    assert abs(AND_R - 0.311278) < 1e-6
    assert_pid(result, AND_R, 0, 0, 0.5)


def test_three_bit_mixture_adds_up() -> None:
    # y = (r, u, a XOR b); x1 = (r, u, a), x2 = (r, b): one bit of each atom but U2.
    b = bits(4)
    r, u, a, c = b.T
    result = pid_discrete(4 * r + 2 * u + a, 2 * r + c, 4 * r + 2 * u + (a ^ c))
    assert_pid(result, 1, 1, 0, 1)


def test_values_are_labels_not_numbers() -> None:
    b = bits(2)
    names = np.array(["low", "high"])[b[:, 0]]
    shifted = pid_discrete(names, b[:, 1] + 10, 7 * (b[:, 0] & b[:, 1]))
    assert_pid(shifted, AND_R, 0, 0, 0.5)


def test_swapping_sources_swaps_uniques() -> None:
    p = random_table(3, (3, 4, 3))
    forward = pid_from_joint(p)
    backward = pid_from_joint(p.transpose(1, 0, 2))
    np.testing.assert_allclose(
        backward.as_tuple(),
        (forward.redundancy, forward.unique2, forward.unique1, forward.synergy),
        atol=1e-8,
    )


def test_atoms_match_mutual_informations() -> None:
    p = random_table(4, (4, 3, 3))
    result = pid_from_joint(p)
    i1, i2, i12 = pid_informations(p)
    assert result.redundancy + result.unique1 == pytest.approx(i1, abs=1e-12)
    assert result.redundancy + result.unique2 == pytest.approx(i2, abs=1e-12)
    assert result.total == pytest.approx(i12, abs=1e-12)
    assert min(result.as_tuple()) >= 0


def test_solver_gap_is_certified_small() -> None:
    for seed, shape in enumerate([(2, 2, 2), (3, 4, 3), (6, 5, 4)]):
        _, gap = broja_min_information(random_table(seed, shape))
        assert 0 <= gap < 1e-8
    rng = np.random.default_rng(0)
    for shape in [(16, 16, 10), (12, 5, 8)]:  # skewed counts of a million samples
        counts = rng.multinomial(10**6, rng.dirichlet(np.full(math.prod(shape), 0.05)))
        p = counts.reshape(shape) / 10**6
        keep = [p.sum(axis=tuple(j for j in range(3) if j != i)) > 0 for i in range(3)]
        _, gap = broja_min_information(p[np.ix_(*keep)])
        assert 0 <= gap < 1e-6


def test_solver_matches_brute_force_on_binary_table() -> None:
    # For each y the feasible q(x1, x2 | y) is a 2x2 coupling with one free entry t_y.
    p = random_table(11, (2, 2, 2))
    r1, r2 = p.sum(axis=1), p.sum(axis=0)
    grids = [
        np.linspace(max(0.0, r1[0, y] + r2[0, y] - r1[:, y].sum()), min(r1[0, y], r2[0, y]), 601)
        for y in range(2)
    ]
    t0, t1 = np.meshgrid(*grids, indexing="ij")
    q = np.zeros((*t0.shape, 2, 2, 2))
    for y, t in ((0, t0), (1, t1)):
        q[..., 0, 0, y], q[..., 0, 1, y] = t, r1[0, y] - t
        q[..., 1, 0, y], q[..., 1, 1, y] = r2[0, y] - t, r1[1, y] - r2[0, y] + t
    q = np.clip(q, 0, None).reshape(*t0.shape, 4, 2)
    py, pxx = q.sum(axis=2, keepdims=True), q.sum(axis=3, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(q > 0, q * np.log2(q / (pxx * py)), 0.0)
    brute = terms.sum(axis=(2, 3)).min()
    exact, _ = broja_min_information(p)
    assert exact <= brute + 1e-9
    assert brute - exact < 1e-5


def test_degenerate_sources_skip_the_solver() -> None:
    b = bits(2)
    constant = np.zeros(len(b), dtype=np.int64)
    assert_pid(pid_discrete(b[:, 0], constant, b[:, 0]), 0, 1, 0, 0, tol=1e-12)
    assert_pid(pid_discrete(b[:, 0], b[:, 1], constant), 0, 0, 0, 0, tol=1e-12)


def test_mmi_bounds_broja_redundancy() -> None:
    p = random_table(5, (3, 3, 2))
    broja, mmi = pid_from_joint(p, "broja"), pid_from_joint(p, "mmi")
    assert mmi.redundancy >= broja.redundancy - 1e-9
    assert mmi.redundancy == pytest.approx(min(pid_informations(p)[:2]))


def test_dit_reference_agrees() -> None:
    pytest.importorskip("dit")
    b = bits(2)
    assert_pid(
        pid_discrete(b[:, 0], b[:, 1], b[:, 0] & b[:, 1], estimator="broja_dit"), AND_R, 0, 0, 0.5
    )
    p = random_table(1, (3, 3, 2))
    exact, reference = pid_from_joint(p), pid_from_joint(p, "broja_dit")
    # dit's optimum is feasible, so it cannot beat the exact one; it lands close to it.
    assert reference.redundancy <= exact.redundancy + 1e-6
    assert exact.redundancy - reference.redundancy < 5e-3


def test_registry_and_errors() -> None:
    assert {"broja", "broja_dit", "mmi"} <= set(PID_ESTIMATORS.names())
    b = bits(1)[:, 0]
    with pytest.raises(ConfigError, match="estimator"):
        pid_discrete(b, b, b, estimator="nope")
    with pytest.raises(DataError, match="same length"):
        pid_discrete(b, b[:-1], b)
    with pytest.raises(DataError, match="1-D"):
        pid_discrete(np.zeros((4, 2)), b[:4], b[:4])
    with pytest.raises(DataError):
        pid_from_joint(-np.ones((2, 2, 2)))


def test_joint_distribution_counts() -> None:
    p = joint_distribution([0, 0, 1, 1], [5, 6, 5, 5], ["a", "a", "a", "b"])
    assert p.shape == (2, 2, 2) and p.sum() == pytest.approx(1)
    assert p[1, 0, 0] == pytest.approx(0.25) and p[1, 0, 1] == pytest.approx(0.25)


def test_as_dict_and_clipping() -> None:
    result = PID.from_redundancy(-1e-9, 1.0, 0.5, 1.2)  # round-off below S >= 0 bound
    assert result.redundancy == pytest.approx(0.3) and result.synergy == pytest.approx(0)
    assert result.as_dict(("fou", "pix")) == {
        "redundancy": result.redundancy,
        "unique": {"fou": result.unique1, "pix": result.unique2},
        "synergy": result.synergy,
    }


def test_pid_split_proportions_and_floor() -> None:
    mixed = PID(1.0, 1.0, 0.0, 1.0, 3.0)
    assert pid_split(mixed, floor=0.0) == pytest.approx((0.4, 0.2, 0.4))
    assert pid_split(mixed, floor=0.0, unique="sum") == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    synergy = PID(0.0, 0.0, 0.0, 1.0, 1.0)
    assert pid_split(synergy) == pytest.approx((0.1, 0.1, 0.8))
    assert pid_split(PID(0.0, 0.0, 0.0, 0.0, 0.0)) == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    skewed = pid_split(PID(0.05, 0.0, 0.0, 1.0, 1.05), floor=0.2)
    assert min(skewed) >= 0.2 - 1e-12 and sum(skewed) == pytest.approx(1)
    with pytest.raises(ConfigError, match="floor"):
        pid_split(mixed, floor=0.4)
    with pytest.raises(ConfigError, match="unique"):
        pid_split(mixed, unique="max")
