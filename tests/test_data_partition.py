"""Tests of the partitions of samples over agents."""

from __future__ import annotations

import numpy as np
import pytest

from parsefl.data import partition_indices
from parsefl.errors import ConfigError

# 1000 samples, 10 balanced classes, in a fixed shuffled order.
Y = np.random.default_rng(0).permutation(np.repeat(np.arange(10), 100))


def _check_partition(parts: list[np.ndarray], n: int, n_agents: int) -> None:
    assert len(parts) == n_agents
    for part in parts:
        assert part.dtype == np.int64
        assert np.all(np.diff(part) > 0)  # sorted, no repeats
    merged = np.concatenate(parts)
    assert len(merged) == n  # disjoint ...
    np.testing.assert_array_equal(np.sort(merged), np.arange(n))  # ... and covering


def _class_tv(parts: list[np.ndarray]) -> np.ndarray:
    """Total-variation distance of each agent's class histogram from the global one."""
    overall = np.bincount(Y, minlength=10) / len(Y)
    local = [np.bincount(Y[p], minlength=10) / len(p) for p in parts]
    return np.array([0.5 * np.abs(h - overall).sum() for h in local])


@pytest.mark.parametrize(
    ("name", "params"), [("iid", {}), ("dirichlet", {}), ("dirichlet", {"alpha": 0.1})]
)
def test_partition_contract_and_determinism(name: str, params: dict) -> None:
    parts = partition_indices(name, Y, 7, 11, params)
    _check_partition(parts, len(Y), 7)
    again = partition_indices(name, Y, 7, 11, params)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))
    other = partition_indices(name, Y, 7, 12, params)
    assert not all(np.array_equal(a, b) for a, b in zip(parts, other, strict=True))


def test_iid_shares_are_equal() -> None:
    parts = partition_indices("iid", Y, 3, 0, {})
    assert sorted(len(p) for p in parts) == [333, 333, 334]
    assert _class_tv(parts).max() < 0.1


def test_dirichlet_respects_min_samples() -> None:
    parts = partition_indices("dirichlet", Y, 10, 4, {"alpha": 0.05, "min_samples": 40})
    _check_partition(parts, len(Y), 10)
    assert min(len(p) for p in parts) >= 40


def test_dirichlet_large_alpha_is_near_iid() -> None:
    parts = partition_indices("dirichlet", Y, 5, 0, {"alpha": 1e4})
    overall = np.bincount(Y, minlength=10) / len(Y)
    for part in parts:
        local = np.bincount(Y[part], minlength=10) / len(part)
        assert np.abs(local - overall).max() < 0.02
    assert _class_tv(parts).max() < 0.05


def test_dirichlet_small_alpha_is_skewed() -> None:
    parts = partition_indices("dirichlet", Y, 5, 0, {"alpha": 0.05})
    tv = _class_tv(parts)
    assert tv.mean() > 0.5
    # Most agents hold only a few classes in any real quantity.
    held = [int((np.bincount(Y[p], minlength=10) >= 10).sum()) for p in parts]
    assert np.mean(held) <= 4


def test_more_agents_than_samples_allow() -> None:
    for name in ("iid", "dirichlet"):
        with pytest.raises(ConfigError, match="more agents than samples allow") as info:
            partition_indices(name, Y, 11, 0, {"min_samples": 100})
        assert info.value.field == "partition.min_samples"


def test_dirichlet_gives_up_after_retries() -> None:
    # Feasible in principle (10 x 10 = 100) but essentially never drawn with alpha=0.05.
    with pytest.raises(ConfigError, match="1000 tries") as info:
        partition_indices("dirichlet", Y[:100], 10, 0, {"alpha": 0.05, "min_samples": 10})
    assert info.value.field == "partition.min_samples"


@pytest.mark.parametrize(
    ("name", "n_agents", "params", "field"),
    [
        ("nope", 2, {}, "partition.name"),
        ("iid", 2, {"alpha": 1.0}, "partition.alpha"),
        ("dirichlet", 2, {"beta": 1.0}, "partition.beta"),
        ("dirichlet", 2, {"alpha": 0.0}, "partition.alpha"),
        ("dirichlet", 2, {"alpha": "big"}, "partition.alpha"),
        ("dirichlet", 2, {"min_samples": 0}, "partition.min_samples"),
        ("iid", 0, {}, "partition.n_agents"),
    ],
)
def test_bad_partition_config(name: str, n_agents: int, params: dict, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        partition_indices(name, Y, n_agents, 0, params)
    assert info.value.field == field


def _group_classes(y, parts, agent_groups):
    out: dict[tuple, set] = {}
    for g, part in zip(agent_groups, parts, strict=True):
        out.setdefault(g, set()).update(int(c) for c in y[part])
    return out


def test_group_skew_strength_one_gives_disjoint_class_blocks_per_group():
    y = np.repeat(np.arange(4), 10)  # 4 classes x 10 samples
    groups = [("a",), ("a",), ("b",), ("a", "b")]
    parts = partition_indices("group_skew", y, 4, seed=3, params={"strength": 1.0,
                              "min_samples": 1}, agent_groups=groups)
    seen = _group_classes(y, parts, groups)
    # 4 classes dealt round-robin over 3 groups: blocks of 2, 1 and 1 classes, disjoint.
    assert sorted(len(c) for c in seen.values()) == [1, 1, 2]
    assert set.union(*seen.values()) == {0, 1, 2, 3}
    assert sum(len(c) for c in seen.values()) == 4


def test_group_skew_strength_zero_lets_every_group_see_every_class():
    y = np.repeat(np.arange(3), 40)
    groups = [("a",), ("b",), ("a", "b")]
    parts = partition_indices("group_skew", y, 3, seed=0, params={"strength": 0.0,
                              "alpha": 1000.0, "min_samples": 1}, agent_groups=groups)
    assert all(c == {0, 1, 2} for c in _group_classes(y, parts, groups).values())
    assert [len(p) for p in parts] == [38, 40, 42]  # alpha -> inf: near-equal shares


def test_group_skew_needs_the_mix_and_a_strength_in_range():
    y = np.repeat(np.arange(2), 10)
    with pytest.raises(ConfigError, match="agent_groups"):
        partition_indices("group_skew", y, 2, seed=0, params={"min_samples": 1})
    with pytest.raises(ConfigError, match="partition.strength"):
        partition_indices("group_skew", y, 2, seed=0, params={"strength": 1.5, "min_samples": 1},
                          agent_groups=[("a",), ("b",)])
