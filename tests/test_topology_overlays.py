"""Overlays: the 6-ring by hand, path rules, and per-agent vs global agreement."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from parsefl.errors import ConfigError
from parsefl.overlays import build_overlay
from parsefl.registry import OVERLAYS, TOPOLOGIES
from parsefl.topology import build_topology, k_hop_paths

RING6 = nx.cycle_graph(6)
HOLDERS = {0, 2, 3}


def paths(overlay: nx.Graph) -> dict[tuple[int, int], tuple[int, ...]]:
    return {(min(u, v), max(u, v)): data["path"] for u, v, data in overlay.edges(data=True)}


def test_induced_on_six_ring() -> None:
    overlay = build_overlay("induced", RING6, HOLDERS, hops=2)  # hops is ignored by induced
    assert sorted(overlay.nodes) == [0, 2, 3]
    assert paths(overlay) == {(2, 3): (2, 3)}


def test_relay_two_hops_on_six_ring() -> None:
    overlay = build_overlay("relay", RING6, HOLDERS, hops=2)
    assert paths(overlay) == {(0, 2): (0, 1, 2), (2, 3): (2, 3)}
    assert not overlay.has_edge(0, 3)  # distance 3 either way round


def test_relay_three_hops_on_six_ring() -> None:
    overlay = build_overlay("relay", RING6, HOLDERS, hops=3)
    # Both ways round are 3 hops; the canonical path takes the smaller next node first.
    assert paths(overlay) == {(0, 2): (0, 1, 2), (2, 3): (2, 3), (0, 3): (0, 1, 2, 3)}


def test_k_hop_paths_on_six_ring() -> None:
    assert k_hop_paths(RING6, 0, 2) == {1: (0, 1), 2: (0, 1, 2), 4: (0, 5, 4), 5: (0, 5)}
    # Seen from 3 the paths to 0 are reversed canonical ones, not 3-4-5-0.
    assert k_hop_paths(RING6, 3, 3)[0] == (3, 2, 1, 0)


def test_paths_are_symmetric_shortest_and_lexicographically_smallest() -> None:
    graph = build_topology("small_world", 20, 4, {}).at(0)
    for u in range(20):
        for v, path in k_hop_paths(graph, u, 3).items():
            assert k_hop_paths(graph, v, 3)[u] == path[::-1]
            assert path[0] == u and path[-1] == v
            assert all(graph.has_edge(a, b) for a, b in zip(path, path[1:], strict=False))
            low, high = min(u, v), max(u, v)
            best = min(nx.all_shortest_paths(graph, low, high))
            assert (path if u < v else path[::-1]) == tuple(best)


@pytest.mark.parametrize("name", [n for n in TOPOLOGIES.names() if n != "edge_list"])
@pytest.mark.parametrize("hops", [1, 2, 3])
def test_relay_agrees_with_per_agent_view(name: str, hops: int) -> None:
    graph = build_topology(name, 12, 2, {}).at(0)
    rng = np.random.default_rng(hops)
    holders = set(rng.choice(12, size=7, replace=False).tolist())
    overlay = build_overlay("relay", graph, holders, hops)
    lengths = dict(nx.all_pairs_shortest_path_length(graph))
    for u in holders:
        local = {v: p for v, p in k_hop_paths(graph, u, hops).items() if v in holders}
        assert set(local) == set(overlay.adj[u])
        assert set(local) == {v for v in holders if v != u and lengths[u].get(v, hops + 1) <= hops}
        for v, path in local.items():
            stored = overlay.edges[u, v]["path"]
            assert stored[0] == min(u, v)
            assert path == (stored if u < v else stored[::-1])
    if hops == 1:
        assert paths(build_overlay("induced", graph, holders, 1)) == paths(overlay)


def test_empty_and_single_holder_overlays() -> None:
    for kind in OVERLAYS.names():
        assert build_overlay(kind, RING6, [], 2).number_of_nodes() == 0
        single = build_overlay(kind, RING6, [4], 2)
        assert list(single.nodes) == [4] and single.number_of_edges() == 0


def test_overlay_errors() -> None:
    with pytest.raises(ConfigError) as err:
        build_overlay("shortcut", RING6, HOLDERS, 2)
    assert err.value.field == "overlay.name" and "induced" in err.value.problem
    with pytest.raises(ConfigError) as err:
        build_overlay("relay", RING6, HOLDERS, 0)
    assert err.value.field == "overlay.hops"
    with pytest.raises(ValueError, match="node 9"):
        build_overlay("relay", RING6, {0, 9}, 2)


def test_rewire_links_each_holder_to_its_nearest_holders() -> None:
    # 8-ring, holders {0, 1, 4, 5, 6}; hops 3, degree 2: each holder keeps its two nearest
    # holders (ties by id).
    ring8 = nx.cycle_graph(8)
    overlay = build_overlay("rewire", ring8, [0, 1, 4, 5, 6], 3, degree=2)
    # 0: 1 (d1), 6 (d2); 1: 0 (d1), 4 (d3; 6 is also at d3, 4 wins by id); 4: 5 (d1), 6 (d2);
    # 5: 4, 6 (d1); 6: 5 (d1), 4 (d2). The overlay is the union of the picks:
    assert {tuple(sorted(e)) for e in overlay.edges} == {(0, 1), (0, 6), (1, 4), (4, 5),
                                                         (4, 6), (5, 6)}
    assert overlay.edges[1, 4]["path"] == (1, 2, 3, 4)
    assert max(d for _, d in overlay.degree) <= 3  # picks are 2; being picked adds at most 1 here
