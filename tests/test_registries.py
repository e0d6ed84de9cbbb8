"""Contract tests over every registered name of the kinds that had none: encoders,
partitions, aggregators and attacks (sharing, topology, overlay, fusion and PID estimators have
theirs in their own test modules). A newly registered piece is checked here without a new
test."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import REGISTRIES, leftovers

from parsefl.aggregation import LinearAggregator, StackedAggregator, build_aggregator, flatten
from parsefl.attacks import Adversary, build_attack
from parsefl.data.partition import partition_indices
from parsefl.model.encoders import build_trunk
from parsefl.registry import AGGREGATION, ALL, ATTACKS, ENCODERS, PARTITIONS, Registry

SERIES = (2, 32)  # (channels, length): every encoder takes it (an MLP flattens it)


@pytest.mark.parametrize("name", ENCODERS.names())
def test_every_encoder_maps_a_batch_to_its_declared_width(name):
    torch.manual_seed(0)
    trunk = build_trunk(name, SERIES, {})
    out = trunk(torch.randn(5, *SERIES))
    assert out.shape == (5, trunk.out_features) and trunk.out_features > 0
    assert torch.isfinite(out).all()
    out.sum().backward()  # trainable end to end
    assert all(p.grad is not None for p in trunk.parameters())


def _labels() -> tuple[np.ndarray, np.ndarray]:
    y = np.repeat(np.arange(4), 30)  # 120 samples, 4 balanced classes
    groups = np.arange(120) % 6  # natural ids for partitions that take them
    return y, groups


@pytest.mark.parametrize("name", PARTITIONS.names())
def test_every_partition_deals_each_sample_once_and_is_seeded(name):
    y, groups = _labels()
    mods = [("a",), ("a",), ("b",), ("b",), ("a", "b"), ("a", "b")]  # for group-aware ones
    parts = partition_indices(name, y, 6, seed=3, groups=groups, agent_groups=mods)
    again = partition_indices(name, y, 6, seed=3, groups=groups, agent_groups=mods)
    assert len(parts) == 6 and all(len(p) > 0 for p in parts)
    everything = np.concatenate(parts)
    assert sorted(everything.tolist()) == list(range(len(y)))  # disjoint and covering
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))


@pytest.mark.parametrize("kind", sorted(ALL))
def test_every_registry_lists_names_with_descriptions(kind):
    registry = ALL[kind]
    names = registry.names()
    assert names, f"registry {kind!r} is empty"
    described = registry.describe()
    for name in names:
        assert registry.get(name) is not None
        assert described[name].strip(), f"{kind} {name!r} has no description for `parsefl list`"


def test_an_entry_registered_for_a_block_is_gone_after_it():
    things: Registry = Registry("thing")
    with things.registered("x", int, "an int") as obj:
        assert obj is int and things.get("x") is int and things.describe() == {"x": "an int"}
    assert "x" not in things and things.describe() == {}
    with pytest.raises(KeyError, match="thing 'x' is not registered"):
        things.unregister("x")
    with pytest.raises(RuntimeError), things.registered("y", str):
        raise RuntimeError  # removed on the way out of a failing block too
    assert things.names() == []


def test_the_leftover_check_covers_every_registry_and_names_new_entries():
    assert set(ALL) <= set(REGISTRIES)
    assert leftovers({"a": {"x"}, "b": set()}, {"a": {"x", "z", "y"}, "b": set()}) == {
        "a": ["y", "z"]}


# Aggregators: one component of two tensors, an own copy and three peers' (MH row 0.4 / 0.2 ...).
SELF_W, WEIGHTS = 0.4, {1: 0.2, 2: 0.3, 3: 0.1}


def _copy(seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {"w": torch.randn(2, 3, generator=gen, dtype=torch.float64),
            "b": torch.randn(3, generator=gen, dtype=torch.float64)}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-9) for k in a)


def _kind(kind: type) -> list[str]:
    return [n for n in AGGREGATION.names() if issubclass(AGGREGATION.get(n), kind)]


@pytest.mark.parametrize("name", AGGREGATION.names())
def test_every_aggregator_builds_from_defaults_and_says_what_it_is(name):
    agg = build_aggregator(name)
    assert agg.name == name
    # exactly one of the two kinds every backend runs, and ``linear`` says which
    assert isinstance(agg, LinearAggregator) != isinstance(agg, StackedAggregator)
    assert agg.linear is isinstance(agg, LinearAggregator)


@pytest.mark.parametrize("name", AGGREGATION.names())
def test_every_aggregator_keeps_the_own_copy_when_all_weight_is_on_it(name):
    own = _copy(0)
    # no planned peer's copy arrived: their weight goes back to the own copy
    assert _same(build_aggregator(name).merge(own, {}, SELF_W, WEIGHTS), own)


@pytest.mark.parametrize("name", _kind(LinearAggregator))
def test_every_linear_aggregator_ignores_peers_of_weight_zero(name):
    own, peers = _copy(0), {j: _copy(j) for j in WEIGHTS}
    assert _same(build_aggregator(name).merge(own, peers, 1.0, dict.fromkeys(WEIGHTS, 0.0)), own)


@pytest.mark.parametrize("name", AGGREGATION.names())
def test_every_aggregator_merges_identical_copies_to_that_copy(name):
    own = _copy(0)
    peers = {j: {k: v.clone() for k, v in own.items()} for j in WEIGHTS}
    assert _same(build_aggregator(name).merge(own, peers, SELF_W, WEIGHTS), own)


@pytest.mark.parametrize("name", _kind(LinearAggregator))
@pytest.mark.parametrize("arrived", [set(), {2}, {1, 3}, {1, 2, 3}])
def test_every_linear_aggregators_weights_sum_to_one_over_the_arrived_copies(name, arrived):
    w_own, w = build_aggregator(name).mixing_weights(SELF_W, WEIGHTS, arrived)
    assert set(w) == arrived and w_own >= 0 and all(v >= 0 for v in w.values())
    assert w_own + sum(w.values()) == pytest.approx(1.0)


@pytest.mark.parametrize("name", _kind(StackedAggregator))
def test_every_stacked_combine_with_one_holder_equals_its_merge_and_batches(name):
    agg = build_aggregator(name)
    rows = []  # two holders: all three peers arrived; one peer arrived (padded in the batch)
    for arrived in ({1, 2, 3}, {2}):
        own, peers = _copy(0), {j: _copy(10 * j + len(arrived)) for j in sorted(arrived)}
        merged = agg.merge(own, peers, SELF_W, WEIGHTS)
        w_own = SELF_W + sum(w for j, w in WEIGHTS.items() if j not in arrived)
        values = torch.stack([flatten(own), *(flatten(peers[j]) for j in sorted(arrived))])
        weights = torch.tensor([w_own, *(WEIGHTS[j] for j in sorted(arrived))],
                               dtype=torch.float64)
        one = agg.combine(values[None], torch.ones(1, len(values), dtype=torch.bool),
                          weights[None])
        assert one.shape == (1, values.shape[1])
        assert torch.allclose(one[0], flatten(merged), atol=1e-9)
        rows.append((values, weights, one[0]))
    k = max(len(v) for v, _, _ in rows)
    values = torch.full((2, k, rows[0][0].shape[1]), 1e6, dtype=torch.float64)  # padding
    mask = torch.zeros(2, k, dtype=torch.bool)
    weights = torch.zeros(2, k, dtype=torch.float64)
    for h, (v, w, _) in enumerate(rows):
        values[h, : len(v)], mask[h, : len(v)], weights[h, : len(v)] = v, True, w
    batched = agg.combine(values, mask, weights)
    for h, (_, _, alone) in enumerate(rows):
        assert torch.allclose(batched[h], alone, atol=1e-9)


# Attacks: 3 recipients' views of one component (own copy first); agents 4 and 5 attack.
VIEW_IDS = [[0, 1, 4, 3], [1, 0, 4, 5], [2, 5, 3, -1]]  # -1: padding
ATTACKERS = {4, 5}


def _views() -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(3)
    values = torch.randn(3, 4, 6, generator=gen)
    ids = torch.tensor(VIEW_IDS)
    mask = ids >= 0
    byz = torch.isin(ids, torch.tensor(sorted(ATTACKERS)))
    weights = mask / mask.sum(dim=1, keepdim=True)
    return values, mask, weights, byz


def _tamper(name: str, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    values, mask, weights, byz = _views()
    rows, cols = torch.nonzero(byz & mask, as_tuple=True)
    ids = [(VIEW_IDS[h][k], VIEW_IDS[h][0]) for h, k in zip(rows.tolist(), cols.tolist(),
                                                             strict=True)]
    adversary = Adversary(sorted(ATTACKERS), build_attack(name), seed=seed)
    before = values.clone()
    out = adversary.tamper(values, mask, weights, byz, (rows, cols), ids, "enc.a", r=2)
    assert torch.equal(values, before)  # the input is not changed in place
    return out, values, byz & mask


@pytest.mark.parametrize("name", ATTACKS.names())
def test_every_attack_builds_from_defaults_and_says_what_it_is(name):
    attack = build_attack(name)
    assert attack.name == name
    assert isinstance(attack.omniscient, bool) and isinstance(attack.data_poisoning, bool)
    y = torch.arange(6) % 3
    poisoned = attack.poison_labels(y.clone(), 3)
    assert poisoned.shape == y.shape and ((poisoned >= 0) & (poisoned < 3)).all()
    if not attack.data_poisoning:
        assert torch.equal(poisoned, y)  # only data poisoning touches the labels


@pytest.mark.parametrize("name", ATTACKS.names())
def test_every_attack_tampers_only_the_attackers_entries(name):
    out, values, attacked = _tamper(name, seed=7)
    assert out.shape == values.shape and out.dtype == values.dtype
    assert torch.equal(out[~attacked], values[~attacked])
    if build_attack(name).data_poisoning:  # sends honestly
        assert torch.equal(out, values)


@pytest.mark.parametrize("name", ATTACKS.names())
def test_every_attack_is_deterministic_for_a_fixed_seed(name):
    first, _, _ = _tamper(name, seed=7)
    again, _, _ = _tamper(name, seed=7)
    torch.testing.assert_close(first, again, rtol=0, atol=0, equal_nan=True)


def test_the_name_index_equals_the_live_registries():
    """``parsefl list`` reads parsefl.registry_index (no torch): it must be what the filled
    registries hold, kinds in their order, or it would show stale names."""
    from parsefl.components import builtin_names, filled
    from parsefl.registry_index import NAMES

    live = builtin_names()
    assert list(NAMES) == list(filled()) == list(live)
    for kind in live:
        assert NAMES[kind] == live[kind], \
            f"{kind}: the name index is stale; run python tools/write_name_index.py"
