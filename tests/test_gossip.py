"""Gossip over hand-built agents: exact merged values, audiences and byte counts."""

from __future__ import annotations

import networkx as nx
import pytest
import torch
from conftest import make_agent

from parsefl.overlays import build_overlay
from parsefl.registry import SHARING
from parsefl.runtime import InMemoryTransport, RoundEngine
from parsefl.runtime.transport import payload_bytes
from parsefl.topology import StaticGraph, build_topology


def _loop(agents, graph, method="parse", overlay="induced", hops=2):
    strategy = SHARING.get(method)()
    return RoundEngine(agents, strategy, StaticGraph(graph), InMemoryTransport(), overlay, hops)


def _fill(agent, component, value):
    agent.set_component(component, {k: torch.full_like(v, value)
                                    for k, v in agent.get_component(component).items()})


def _value(agent, component):
    values = {float(v.flatten()[0]) for v in agent.get_component(component).values()}
    assert len(values) == 1
    return values.pop()


def test_three_agent_ring_averages_by_hand():
    # Agents: a, b, a+b on a 3-ring. head_r is held by all three (degree 2: weights 1/3);
    # enc.a by agents 0 and 2 only (degree 1 on its overlay: weights 1/2).
    agents = [make_agent(0, "a"), make_agent(1, "b"), make_agent(2, ("a", "b"))]
    for agent, value in zip(agents, (0.0, 3.0, 9.0), strict=True):
        _fill(agent, "head_r", value)
    _fill(agents[0], "enc.a", 2.0)
    _fill(agents[2], "enc.a", 6.0)
    _fill(agents[2], "synergy.a+b", 5.0)
    loop = _loop(agents, nx.cycle_graph(3))
    loop.prepare(0)
    loop.gossip()
    assert [_value(a, "head_r") for a in agents] == pytest.approx([4.0, 4.0, 4.0])
    assert _value(agents[0], "enc.a") == pytest.approx(4.0)
    assert _value(agents[2], "enc.a") == pytest.approx(4.0)
    assert _value(agents[2], "synergy.a+b") == 5.0  # nobody else holds it


def test_path_overlay_uses_metropolis_hastings_weights():
    # 4-ring 0-1-2-3-0; agent 3 holds only b, so enc.a's overlay is the path 0-1-2
    # with degrees 1, 2, 1: w01 = w12 = 1/3, self weights 2/3, 1/3, 2/3.
    agents = [make_agent(i, "a") for i in range(3)] + [make_agent(3, "b")]
    for agent, value in zip(agents[:3], (0.0, 3.0, 6.0), strict=True):
        _fill(agent, "enc.a", value)
    loop = _loop(agents, nx.cycle_graph(4))
    loop.prepare(0)
    assert loop.plans[1].weights["enc.a"] == pytest.approx({0: 1 / 3, 2: 1 / 3})
    loop.gossip()
    assert [_value(a, "enc.a") for a in agents[:3]] == pytest.approx([1.0, 3.0, 5.0])


def test_wide_and_narrow_encoders_exchange_heads_not_trunks():
    agents = [make_agent(0, "a", hidden=(8,)), make_agent(1, "a", hidden=(4,))]
    loop = _loop(agents, nx.path_graph(2))
    loop.prepare(0)
    assert set(loop.plans[0].paths) == {"head_r", "head_u.a"}
    assert set(loop.plans[1].paths) == {"head_r", "head_u.a"}


def test_unimodal_agent_never_receives_synergy_components():
    agents = [make_agent(0, "a"), make_agent(1, ("a", "b")), make_agent(2, ("a", "b"))]
    loop = _loop(agents, nx.complete_graph(3))
    loop.prepare(0)
    assert set(loop.plans[0].paths) == {"enc.a", "head_r", "head_u.a"}
    assert {"enc_s.a", "enc_s.b", "synergy.a+b"} <= set(loop.plans[1].paths)
    assert loop.plans[1].paths["enc_s.a"] == {2: (1, 2)}
    sent = []
    exchange = loop.transport.exchange
    loop.transport.exchange = lambda msgs: exchange(sent.extend(msgs) or sent[-len(msgs):])
    loop.step(0)
    to_0 = {m.component for m in sent if m.dst == 0 and m.kind == "params"}
    assert to_0 == {"enc.a", "head_r", "head_u.a"}


def test_local_sends_nothing():
    agents = [make_agent(i, "a") for i in range(3)]
    loop = _loop(agents, nx.cycle_graph(3), method="local")
    stats = loop.step(0)
    assert sum(stats.link_bytes.values()) == 0


@pytest.mark.parametrize("overlay", ["induced", "relay"])
def test_bytes_counted_equal_bytes_of_tensors_sent(overlay):
    mods = ["a", "b", ("a", "b"), "a", "b", ("a", "b")]
    agents = [make_agent(i, m) for i, m in enumerate(mods)]
    loop = _loop(agents, nx.cycle_graph(6), overlay=overlay, hops=2)
    stats = loop.step(0)
    expected: dict[tuple[int, int], int] = {}
    for i, plan in loop.plans.items():
        for comp, peers in plan.paths.items():
            size = sum(p.numel() * 4 for n, p in agents[i].model.named_parameters()
                       if n in agents[i].model.components()[comp])
            assert size == payload_bytes(agents[i].get_component(comp))
            for path in peers.values():
                for u, v in zip(path, path[1:], strict=False):
                    link = (min(u, v), max(u, v))
                    expected[link] = expected.get(link, 0) + size
    assert dict(stats.link_bytes) == expected
    assert sum(expected.values()) > 0


@pytest.mark.parametrize("kind,hops", [("induced", 1), ("relay", 2), ("relay", 3),
                                       ("rewire", 3)])
@pytest.mark.parametrize("topology", ["ring", "erdos_renyi", "small_world", "star"])
def test_handshake_builds_the_reference_overlay(kind, hops, topology):
    graph = build_topology(topology, 10, 3).at(0)
    mods = ["a", "b", ("a", "b"), "a", "a", "b", ("a", "b"), "b", "a", ("a", "b")]
    agents = [make_agent(i, m) for i, m in enumerate(mods)]
    loop = _loop(agents, graph, overlay=kind, hops=hops)
    loop.prepare(0)
    for comp, holders in {"enc.a": [0, 2, 3, 4, 6, 8, 9], "head_r": range(10),
                          "synergy.a+b": [2, 6, 9]}.items():
        ref = build_overlay(kind, graph, holders, hops)
        got = {(i, j) for i, p in loop.plans.items() for j in p.paths.get(comp, {}) if i < j}
        assert got == {tuple(sorted(e)) for e in ref.edges}
        for i, j in got:
            assert len(loop.plans[i].paths[comp][j]) == len(ref.edges[i, j]["path"])
