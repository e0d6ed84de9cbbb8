"""Receive-side checks: each reason on hand-made copies, and a bad copy given back to the own
copy's weight in the reference runtime and in the vectorized backend's fast (sparse) path."""

from __future__ import annotations

import networkx as nx
import pytest
import torch
from conftest import make_agent

from parsefl.aggregation import LinearAggregator, build_aggregator
from parsefl.compressors import Communication
from parsefl.compressors.communication import Rule
from parsefl.config import TrainConfig, load_config
from parsefl.registry import SHARING
from parsefl.runtime import InMemoryTransport, RoundEngine
from parsefl.runtime.checks import ReceiveChecks
from parsefl.runtime.stacked_merge import arrived_weights
from parsefl.runtime.vectorized import VectorizedExecutor
from parsefl.topology import StaticGraph

T = torch.tensor
OWN = {"w": T([3.0, 4.0])}  # norm 5


@pytest.mark.parametrize(("copy", "reason"), [
    ({"w": T([1.0, float("inf")])}, "non_finite"),
    ({"v": T([1.0, 2.0])}, "names"),
    ({"w": T([1.0, 2.0, 3.0])}, "shape"),
    ({"w": T([1.0, 2.0], dtype=torch.float64)}, "dtype"),
    ({"w": T([30.0, 40.0])}, "norm"),  # norm 50 > 10
    ({"w": T([6.0, 8.0])}, None),  # norm 10: at the bound, accepted
])
def test_each_reason(copy, reason):
    checks = ReceiveChecks(max_norm=10.0)
    assert checks.reason(OWN, copy) == reason
    assert checks.check(OWN, copy) is (reason is None)
    assert checks.counts == ({reason: 1} if reason else {})


def test_relative_bound_is_against_the_own_norm_floored_at_one():
    checks = ReceiveChecks(max_ratio=2.0)
    assert checks.reason(OWN, {"w": T([6.0, 8.0])}) is None  # 10 <= 2 * 5
    assert checks.reason(OWN, {"w": T([6.0, 9.0])}) == "norm"
    assert checks.reason({"w": T([0.0, 0.0])}, {"w": T([0.6, 0.8])}) is None  # 1 <= 2 * 1
    assert checks.reason({"w": T([0.0, 0.0])}, {"w": T([3.0, 4.0])}) == "norm"  # 5 > 2 * 1


def test_stacked_mask_and_folded_weights():
    checks = ReceiveChecks(max_norm=10.0)
    values = T([[[3.0, 4.0], [float("nan"), 0.0], [30.0, 40.0]],
                [[1.0, 1.0], [2.0, 2.0], [0.0, 0.0]]])
    mask = T([[True, True, True], [True, True, False]])
    valid = checks.stacked_valid(values, mask)
    assert valid.tolist() == [[True, False, False], [True, True, False]]
    median = build_aggregator("median")  # a stacked rule: lost weight goes to the own copy
    w = arrived_weights(median, [], [], mask, valid, T([[0.2, 0.4, 0.4], [0.5, 0.5, 0.0]]))
    assert w.flatten().tolist() == pytest.approx([1.0, 0.0, 0.0, 0.5, 0.5, 0.0])
    assert checks.counts == {"non_finite": 1, "norm": 1}


@pytest.mark.parametrize("vectorized", [False, True])
@pytest.mark.parametrize("bad", [float("nan"), 1e9])
def test_a_bad_own_copy_is_rejected_by_every_peer(vectorized, bad):
    """enc.a on the path 0-1-2 (values 0, 3, bad): agent 1 rejects agent 2's copy and
    keeps 2/3 * 3 + 1/3 * 0 = 2; no adversary, so the vectorized backend's sparse path."""
    engine, values = _gossip_on_a_path((0.0, 3.0, bad), vectorized)
    assert values == [{1.0}, {2.0}]
    assert engine.checks.counts == {"non_finite" if bad != bad else "norm": 1}


def test_config_section():
    cfg = load_config(None, ["checks.max_norm=5", "checks.max_ratio=3"])
    assert (cfg.checks.max_norm, cfg.checks.max_ratio) == (5.0, 3.0)
    assert load_config(None, []).checks.max_norm == 1e4


@pytest.mark.parametrize("vectorized", [False, True])
def test_relative_bound_in_both_backends_with_the_linear_aggregator(vectorized):
    """checks.max_ratio = 2 on the path 0-1-2 (values 1, 1.5, 100; MH weights 1/3): agent 1
    rejects agent 2's copy (100x its own) and keeps 2/3 * 1.5 + 1/3 * 1 = 4/3; agent 0
    accepts agent 1's (1.5x) and keeps 2/3 * 1 + 1/3 * 1.5 = 7/6. The vectorized backend
    needs the padded form here although ``mean`` is linear (it crashed before)."""
    engine, values = _gossip_on_a_path((1.0, 1.5, 100.0), vectorized,
                                       ReceiveChecks(max_ratio=2.0))
    for got, want in zip(values, (7 / 6, 4 / 3), strict=True):
        assert [pytest.approx(want)] * len(got) == sorted(got)
    assert engine.checks.counts == {"norm": 1}


class UniformOverArrived(LinearAggregator):
    """A legal plugin whose weights depend on which copies arrived: 1/n over the own copy and
    the n - 1 copies that arrived (and passed the checks)."""

    name = "uniform_test"

    def mixing_weights(self, self_weight, weights, arrived):
        n = 1 + len(arrived)
        return 1.0 / n, {j: 1.0 / n for j in sorted(arrived)}


PATHS = {  # backend, and what makes the vectorized one take each of its merge paths
    "reference": (False, None, None),
    "vectorized-sparse": (True, None, None),
    "vectorized-padded": (True, 1e6, None),  # max_ratio: the padded stack
    "vectorized-codec-sparse": (True, None, "fp16"),
    "vectorized-codec-padded": (True, 1e6, "fp16"),
}


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("bad", [float("nan"), 1e9])
def test_an_arrived_dependent_linear_plugin_gives_the_same_numbers_on_every_path(path, bad):
    """enc.a on the path 0-1-2 (values 0, 3, bad): agent 1 rejects agent 2's copy; the plugin
    averages uniformly over what it accepted, (3 + 0) / 2 = 1.5, and so does agent 0 over its
    own and agent 1's copy. The vectorized paths asked the mean's rule before (agent 1 got
    1/3 * 0 + 2/3 * 3 = 2.0 there)."""
    vectorized, ratio, compressor = PATHS[path]
    comm = None if compressor is None else Communication(
        Rule(Communication.from_config(load_config(
            None, [f"communication.compressor={compressor}"]).communication).default.compressor))
    engine, values = _gossip_on_a_path((0.0, 3.0, bad), vectorized, ReceiveChecks(
        max_ratio=ratio), aggregator=UniformOverArrived(), communication=comm)
    assert values == [{1.5}, {1.5}]
    assert sum(engine.checks.counts.values()) == 1


def _gossip_on_a_path(values, vectorized, checks=None, **engine_kw):
    """One gossip of enc.a among agents 0-1-2 (agent 3, on the ring too, holds only b) whose
    copies are filled with ``values``; the engine and agents 0 and 1's merged values."""
    agents = [make_agent(i, "a") for i in range(3)] + [make_agent(3, "b")]
    for agent, value in zip(agents[:3], values, strict=True):
        comp = agent.get_component("enc.a")
        agent.set_component("enc.a", {k: torch.full_like(v, value) for k, v in comp.items()})
    engine = RoundEngine(agents, SHARING.get("parse")(), StaticGraph(nx.cycle_graph(4)),
                         InMemoryTransport(), **engine_kw)
    if checks is not None:
        engine.checks = checks
    if vectorized:
        engine.executor = VectorizedExecutor(engine, TrainConfig(local_steps=1, batch_size=4))
    engine.prepare(0)
    engine.gossip()
    engine.sync()
    return engine, [{float(x) for t in a.get_component("enc.a").values() for x in t.flatten()}
                    for a in agents[:2]]
