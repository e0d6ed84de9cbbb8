"""Aggregators: hand-computed merges, linear weights == merge, and a non-linear aggregator
(a test-only coordinate median) run both per agent and stacked in the vectorized backend."""

from __future__ import annotations

import subprocess
import sys

import networkx as nx
import pytest
import torch
from conftest import make_agent

from parsefl.aggregation import (
    Aggregator,
    LinearAggregator,
    StackedAggregator,
    build_aggregator,
    flatten,
    unflatten,
)
from parsefl.config import TrainConfig, load_config
from parsefl.errors import ConfigError
from parsefl.registry import AGGREGATION, ALL, SHARING
from parsefl.runtime import InMemoryTransport, RoundEngine
from parsefl.runtime.vectorized import VectorizedExecutor
from parsefl.runtime.vectorized_blocker import vectorized_blocker
from parsefl.topology import StaticGraph, mh_weights_local


class CoordinateMedian(StackedAggregator):
    """Test-only: the coordinate-wise (lower) median of the copies that arrived."""

    name = "test_median"

    def combine(self, values, mask, weights):
        masked = values.masked_fill(~mask[..., None], float("nan"))
        return masked.nanmedian(dim=1).values


@pytest.fixture
def median_registered():
    """``test_median`` is a registered aggregator for the test only."""
    with AGGREGATION.registered("test_median", CoordinateMedian):
        yield


T = torch.tensor


def _ring3_weights():
    # 3 agents on a ring: every degree is 2, so every MH weight is 1 / (1 + 2) = 1/3.
    return mh_weights_local(2, {1: 2, 2: 2})


def test_mean_on_a_three_agent_ring_by_hand():
    self_w, w = _ring3_weights()
    # (pytest >= 9.2 refuses approx over nested structures: compare each part)
    assert self_w == pytest.approx(1 / 3) and w == pytest.approx({1: 1 / 3, 2: 1 / 3})
    own = {"w": T([0.0, 3.0]), "b": T([6.0, 6.0])}
    received = {1: {"w": T([3.0, 6.0]), "b": T([0.0, 3.0])},
                2: {"w": T([9.0, 0.0]), "b": T([3.0, 0.0])}}
    merged = build_aggregator("mean").merge(own, received, self_w, w)
    assert merged["w"].tolist() == pytest.approx([4.0, 3.0])
    assert merged["b"].tolist() == pytest.approx([3.0, 3.0])


def test_mean_gives_a_missing_copy_weight_back_to_the_own_copy():
    self_w, w = _ring3_weights()
    merged = build_aggregator("mean").merge({"w": T([0.0, 3.0])}, {1: {"w": T([3.0, 6.0])}},
                                            self_w, w)
    # 2/3 * own + 1/3 * copy of agent 1 (agent 2's copy never arrived)
    assert merged["w"].tolist() == pytest.approx([1.0, 4.0])


def test_linear_weights_equal_the_merge_bit_for_bit():
    mean = build_aggregator("mean")
    assert mean.linear and isinstance(mean, LinearAggregator)
    gen = torch.Generator().manual_seed(0)
    own = {"w": torch.randn(2, 2, generator=gen)}
    received = {j: {"w": torch.randn(2, 2, generator=gen)} for j in (1, 4)}
    weights = {1: 0.25, 3: 0.2, 4: 0.25}  # peer 3's copy is missing
    w_own, w = mean.mixing_weights(0.3, weights, received.keys())
    assert w_own == pytest.approx(0.5) and w == {1: 0.25, 4: 0.25}
    by_hand = own["w"] * w_own + received[1]["w"] * w[1] + received[4]["w"] * w[4]
    assert torch.equal(mean.merge(own, received, 0.3, weights)["w"], by_hand)


@pytest.mark.usefixtures("median_registered")
def test_coordinate_median_per_agent():
    median = build_aggregator("test_median")
    assert not median.linear
    own = {"w": T([0.0, 9.0]), "b": T([1.0])}
    received = {2: {"w": T([6.0, 5.0]), "b": T([7.0])}, 1: {"w": T([3.0, 1.0]), "b": T([2.0])}}
    merged = median.merge(own, received, *_ring3_weights())
    assert merged["w"].tolist() == [3.0, 5.0] and merged["b"].tolist() == [2.0]


def test_stacked_combine_respects_the_mask():
    values = T([[[0.0], [3.0], [-100.0]], [[3.0], [0.0], [6.0]]])  # row 0: one peer + padding
    mask = T([[True, True, False], [True, True, True]])
    out = CoordinateMedian().combine(values, mask, torch.zeros(2, 3))
    assert out.flatten().tolist() == [0.0, 3.0]  # lower median of {0, 3}; median of {0, 3, 6}


def test_flatten_round_trips_in_component_order():
    tensors = {"w": torch.arange(6.0).view(2, 3), "b": T([7.0, 8.0])}
    flat = flatten(tensors)
    assert flat.tolist() == [0, 1, 2, 3, 4, 5, 7, 8]
    back = unflatten(flat, tensors)
    assert list(back) == ["w", "b"] and all(torch.equal(back[k], tensors[k]) for k in tensors)


def _path_overlay(aggregator, vectorized):
    # enc.a held by agents 0-1-2 on a 4-ring (agent 3 holds b): a path overlay 0-1-2.
    agents = [make_agent(i, "a") for i in range(3)] + [make_agent(3, "b")]
    for agent, value in zip(agents[:3], (0.0, 3.0, 6.0), strict=True):
        comp = agent.get_component("enc.a")
        agent.set_component("enc.a", {k: torch.full_like(v, value) for k, v in comp.items()})
    engine = RoundEngine(agents, SHARING.get("parse")(), StaticGraph(nx.cycle_graph(4)),
                         InMemoryTransport(), aggregator=aggregator)
    if vectorized:
        engine.executor = VectorizedExecutor(engine, TrainConfig(local_steps=1, batch_size=4))
    engine.prepare(0)
    engine.gossip()
    engine.sync()
    return [{float(x) for t in a.get_component("enc.a").values() for x in t.flatten()}
            for a in agents[:3]]


@pytest.mark.usefixtures("median_registered")
@pytest.mark.parametrize("vectorized", [False, True])
def test_median_runs_per_agent_and_stacked(vectorized):
    # Copies: agent 0 {0, 3} -> 0 (lower median); agent 1 {3, 0, 6} -> 3; agent 2 {6, 3} -> 3.
    assert _path_overlay(build_aggregator("test_median"), vectorized) == [{0.0}, {3.0}, {3.0}]


@pytest.mark.parametrize("vectorized", [False, True])
def test_mean_runs_per_agent_and_stacked(vectorized):
    # MH on the path 0-1-2: w01 = w12 = 1/3, so 0, 3, 6 become 1, 3, 5.
    got = _path_overlay(build_aggregator("mean"), vectorized)
    assert [v.pop() for v in got] == pytest.approx([1.0, 3.0, 5.0], abs=1e-6)


@pytest.mark.usefixtures("median_registered")
def test_vectorized_blocker_names_an_aggregator_it_cannot_stack():
    agents = [make_agent(0, "a")]
    train = TrainConfig(local_steps=1)
    assert vectorized_blocker(agents, build_aggregator("test_median"), train) is None
    blocker = vectorized_blocker(agents, Aggregator(), train)
    assert blocker is not None and blocker.field == "aggregation.name"
    assert vectorized_blocker(agents, build_aggregator("mean"), TrainConfig()) is None  # epochs


def test_config_names_and_params_are_checked():
    assert load_config(None, []).aggregation.name == "mean"
    with pytest.raises(ConfigError) as err:
        load_config(None, ["aggregation.name=nonsense"])
    assert err.value.field == "aggregation.name" and "mean" in err.value.problem
    with pytest.raises(ConfigError) as err:
        build_aggregator("mean", {"beta": 1})
    assert err.value.field == "aggregation.params.beta"


def test_registry_lists_aggregators():
    assert ALL["aggregation"] is AGGREGATION and "mean" in AGGREGATION.names()
    proc = subprocess.run([sys.executable, "-m", "parsefl.cli", "list", "aggregation"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "mean" in proc.stdout and "Metropolis" in proc.stdout


@pytest.mark.usefixtures("median_registered")
def test_median_vectorized_equals_reference_on_a_full_build():
    from parsefl.experiments.run.build import build_experiment

    base = ["data.name=synthetic_pid", "data.params={n_samples: 300}", "partition.name=iid",
            "mix={m1: 2, m2: 2, m1+m2: 3}", "model.dim=12", "model.encoder.params={hidden: [8]}",
            "train.local_steps=2", "topology.name=ring", "overlay.name=relay",
            "aggregation.name=test_median", "diagnostics.gradient_cosine=false"]
    runs = {}
    for backend in ("reference", "vectorized"):
        exp = build_experiment(load_config(None, [*base, f"runtime.backend={backend}"]))
        stats = [exp.loop.step(r) for r in range(2)]
        exp.loop.sync()
        runs[backend] = (exp, stats)
    (ref, ref_stats), (vec, vec_stats) = runs["reference"], runs["vectorized"]
    assert isinstance(vec.loop.executor, VectorizedExecutor)
    assert [s.link_bytes for s in ref_stats] == [s.link_bytes for s in vec_stats]
    for a, b in zip(ref.agents, vec.agents, strict=True):
        for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True):
            assert torch.allclose(p, q, atol=1e-5)
