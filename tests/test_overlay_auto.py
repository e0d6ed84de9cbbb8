"""The auto overlay: connects holders with the fewest relayed hops, equals induced when that is
connected, agrees with the handshake, and runs the same in both backends and under launch."""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pytest
import torch

from parsefl.config import load_config
from parsefl.experiments.distributed.launcher import launch
from parsefl.experiments.run.build import build_experiment
from parsefl.experiments.run.simulate import run_experiment
from parsefl.overlays import build_overlay, make_overlay
from parsefl.overlays.summary import overlay_line, overlay_summary, plan_links
from parsefl.runtime import InMemoryTransport
from parsefl.runtime.handshake import discover, plan_gossip
from parsefl.sharing.base import Capability, SharingStrategy

# Two induced components {0, 1} and {5, 6}; the cheapest joining pair is 1-5 over relay 2 (2
# hops); 0-6 (0-3-4-6), 0-5 and 1-6 are 3 hops each.
HAND = nx.Graph([(0, 1), (5, 6), (1, 2), (2, 5), (0, 3), (3, 4), (4, 6), (2, 7)])
HAND_HOLDERS = {0, 1, 5, 6}


def edges(overlay: nx.Graph) -> dict[tuple[int, int], tuple[int, ...]]:
    return {(min(u, v), max(u, v)): d["path"] for u, v, d in overlay.edges(data=True)}


def handshake(graph: nx.Graph, holders: set[int], hops: int):
    caps = {i: Capability(i, ("a",), {"c": "s"} if i in holders else {}) for i in graph}
    overlay = make_overlay("auto", hops)
    transport = InMemoryTransport()
    known = discover(caps, graph, transport, overlay.radius)
    return plan_gossip(caps, known, SharingStrategy(), transport, 0, overlay, graph)


@pytest.mark.parametrize("hops", [2, 3, 8])
def test_hand_graph_relays_over_the_two_hop_path(hops):
    got = edges(build_overlay("auto", HAND, HAND_HOLDERS, hops))
    assert got == {(0, 1): (0, 1), (5, 6): (5, 6), (1, 5): (1, 2, 5)}
    plans = handshake(HAND, HAND_HOLDERS, hops)
    assert plans[1].paths["c"] == {0: (1, 0), 5: (1, 2, 5)}
    assert plans[5].paths["c"] == {1: (5, 2, 1), 6: (5, 6)}
    summary = overlay_summary(plan_links(plans))
    assert summary == {"c": {"links": 3, "relayed_links": 1, "hops": 4, "relay_hops": 2}}
    assert overlay_line(summary) == "overlay relayed links (hops): c 1 (2 hops)"
    # relay with the same hops keeps every pair within reach (3-hop pairs too when hops >= 3)
    assert len(edges(build_overlay("relay", HAND, HAND_HOLDERS, hops))) == (3 if hops == 2
                                                                             else 6)


def test_six_ring_keeps_the_short_relay_and_drops_the_long_one():
    ring = nx.cycle_graph(6)
    for hops in (2, 3):  # 0-3 (3 hops) would close a cycle that 0-2-3 already closes
        assert edges(build_overlay("auto", ring, {0, 2, 3}, hops)) == {(2, 3): (2, 3),
                                                                        (0, 2): (0, 1, 2)}
    assert (0, 3) in edges(build_overlay("relay", ring, {0, 2, 3}, 3))
    assert overlay_line({"c": {"links": 1, "relayed_links": 0, "hops": 1, "relay_hops": 0}}) \
        == "overlay: direct links only (no relayed paths)"


def test_a_partial_view_may_keep_a_relay_that_the_global_view_drops():
    # 8-ring, holders 0..6: the induced path 0-1-...-6 is connected, but from 0 with hops 2
    # it runs out of sight, so 0 keeps its 2-hop relay to 6 (over 7); with hops >= the
    # diameter auto is exactly induced.
    ring = nx.cycle_graph(8)
    holders = set(range(7))
    assert edges(build_overlay("auto", ring, holders, 2)) == {
        **edges(build_overlay("induced", ring, holders, 1)), (0, 6): (0, 7, 6)}
    assert edges(build_overlay("auto", ring, holders, 4)) == edges(
        build_overlay("induced", ring, holders, 1))


def _mst_hops(graph: nx.Graph, holders: set[int]) -> int:
    """Independent reference: MST weight of the metric closure between induced components."""
    comps = list(nx.connected_components(graph.subgraph(holders)))
    where = {v: k for k, comp in enumerate(comps) for v in comp}
    dist = dict(nx.all_pairs_shortest_path_length(graph))
    closure = nx.Graph()
    closure.add_nodes_from(range(len(comps)))
    for u, v in itertools.combinations(sorted(holders), 2):
        a, b = where[u], where[v]
        if a != b and v in dist[u]:
            w = min(closure.edges[a, b]["weight"], dist[u][v]) if closure.has_edge(a, b) \
                else dist[u][v]
            closure.add_edge(a, b, weight=w)
    return int(sum(d["weight"] for *_, d in nx.minimum_spanning_edges(closure, data=True)))


def _components(overlay: nx.Graph) -> set[frozenset[int]]:
    return {frozenset(c) for c in nx.connected_components(overlay)}


@pytest.mark.parametrize("seed", range(40))
def test_random_graphs_connect_every_holder_with_the_fewest_relayed_hops(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(6, 16))
    p = float(rng.choice([0.1, 0.2, 0.3, 0.5]))
    graph = nx.gnp_random_graph(n, p, seed=seed)
    holders = set(rng.choice(n, size=int(rng.integers(2, n + 1)), replace=False).tolist())
    induced = build_overlay("induced", graph, holders, 1)
    full = build_overlay("auto", graph, holders, n)  # hops >= diameter: every view is global
    # Connected exactly as the physical graph connects the holders (relays may be anyone).
    assert _components(full) == {frozenset(c & holders) for c in nx.connected_components(graph)
                                 if c & holders}
    assert set(induced.edges) <= set(full.edges)
    relayed = [len(d["path"]) - 1 for *_, d in full.edges(data=True) if len(d["path"]) > 2]
    assert sum(relayed) == _mst_hops(graph, holders)
    # Equal to induced exactly when induced already connects what can be connected (on a
    # connected physical graph: when the induced subgraph is connected).
    assert (edges(full) == edges(induced)) == (_components(induced) == _components(full))
    if nx.is_connected(graph):
        assert (edges(full) == edges(induced)) == nx.is_connected(induced)
    for hops in (1, 2, 3):  # induced ⊆ auto ⊆ relay, connected exactly as relay
        auto = build_overlay("auto", graph, holders, hops)
        relay = build_overlay("relay", graph, holders, hops)
        assert set(induced.edges) <= set(auto.edges) <= set(relay.edges)
        assert _components(auto) == _components(relay)
        plans = handshake(graph, holders, hops)
        got = {(i, j): plans[i].paths["c"][j] for i in plans for j in plans[i].paths.get("c", {})
               if i < j}
        assert got == edges(auto)


BASE = ["data.name=synthetic_pid", "data.params={n_samples: 600}", "partition.name=iid",
        "mix={m1: 3, m2: 3, m1+m2: 2}", "model.dim=12", "model.encoder.params={hidden: [16]}",
        "train.local_steps=2", "topology.name=erdos_renyi", "topology.params={p: 0.3}",
        "overlay.name=auto", "overlay.hops=3", "device=cpu"]


def test_both_backends_bill_the_same_bytes_and_give_the_same_models():
    runs = {}
    for backend in ("reference", "vectorized"):
        exp = build_experiment(load_config(None, [*BASE, f"runtime.backend={backend}"]))
        stats = [exp.loop.step(r) for r in range(2)]
        exp.loop.sync()
        runs[backend] = exp, stats
    (ref, ref_stats), (vec, vec_stats) = runs["reference"], runs["vectorized"]
    assert [s.link_bytes for s in ref_stats] == [s.link_bytes for s in vec_stats]
    assert plan_links(ref.loop.plans) == plan_links(vec.loop.plans)
    for a, b in zip(ref.agents, vec.agents, strict=True):
        for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True):
            assert torch.allclose(p, q, atol=5e-4)
    graph = ref.loop.topology.at(0)
    for comp in {c for plan in ref.loop.plans.values() for c in plan.paths}:
        holders = {a.id for a in ref.agents if comp in a.capability().signatures}
        want = edges(build_overlay("auto", graph, holders, 3))
        got = {(i, j): p for i, plan in ref.loop.plans.items()
               for j, p in plan.paths.get(comp, {}).items() if i < j}
        assert got == want, comp


def test_launch_gives_the_simulator_numbers_and_overlay_report(tmp_path):
    overrides = [*BASE, "rounds=2", "eval_every=1", "diagnostics.gradient_cosine=false"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sim = run_experiment(load_config(None, overrides), tmp_path / "sim")
    finally:
        torch.set_num_threads(threads)
    dist = launch(None, overrides, nproc=2, out_dir=tmp_path / "dist", wall_timeout_s=120)
    assert dist["final"] == sim["final"] and dist["communication"] == sim["communication"]
    assert dist["diagnostics"]["overlay"] == sim["diagnostics"]["overlay"]
    assert any(s["relayed_links"] for s in sim["diagnostics"]["overlay"].values())
