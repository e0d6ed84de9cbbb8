"""The capability handshake from messages alone: discovery, peer choice, degrees, MH weights."""

from __future__ import annotations

import networkx as nx
import pytest

from parsefl.overlays import make_overlay
from parsefl.runtime.handshake import discover, overlay_radius, plan_gossip
from parsefl.runtime.transport import InMemoryTransport
from parsefl.sharing.base import Capability, SharingStrategy


def _caps(n: int, sig: str = "s") -> dict[int, Capability]:
    return {i: Capability(i, ("a",), {"c": sig}) for i in range(n)}


def _plans(graph, caps, kind, hops=2, degree=2, transport=None):
    transport = transport or InMemoryTransport()
    overlay = make_overlay(kind, hops, degree)
    known = discover(caps, graph, transport, overlay.radius)
    return plan_gossip(caps, known, SharingStrategy(), transport, 0, overlay, graph)


def test_discovery_learns_peers_and_paths_within_the_radius():
    caps = _caps(4)
    transport = InMemoryTransport()
    known = discover(caps, nx.path_graph(4), transport, 2)
    assert {j: path for j, (_, path) in known[0].items()} == {0: (0,), 1: (1, 0), 2: (2, 1, 0)}
    assert known[0][2][0] == caps[2]
    assert transport.take_link_bytes() == {}  # control messages are not billed


def test_relay_plans_paths_and_metropolis_hastings_weights():
    plans = _plans(nx.path_graph(3), _caps(3), "relay", hops=2)
    assert plans[0].paths["c"] == {1: (0, 1), 2: (0, 1, 2)}
    assert plans[2].paths["c"] == {0: (2, 1, 0), 1: (2, 1)}
    # Every agent has overlay degree 2: every weight is 1 / (1 + 2).
    assert plans[1].self_weight["c"] == pytest.approx(1 / 3)
    assert plans[1].weights["c"] == pytest.approx({0: 1 / 3, 2: 1 / 3})


def test_induced_links_only_direct_neighbours():
    plans = _plans(nx.path_graph(3), _caps(3), "induced", hops=3)
    assert plans[0].paths["c"] == {1: (0, 1)}
    assert plans[0].weights["c"] == pytest.approx({1: 1 / 3})  # degrees 1 and 2
    assert plans[0].self_weight["c"] == pytest.approx(2 / 3)


def test_rewire_choices_are_made_symmetric():
    # Path 0-1-2-3, degree 1: 0 picks 1, 1 picks 0 (tie with 2, smaller id), 2 picks 1,
    # 3 picks 2; the link exchange adds whoever picked an agent.
    plans = _plans(nx.path_graph(4), _caps(4), "rewire", hops=3, degree=1)
    assert {i: sorted(p.paths["c"]) for i, p in plans.items()} == {0: [1], 1: [0, 2],
                                                                   2: [1, 3], 3: [2]}


def test_different_signatures_never_link():
    caps = _caps(3)
    caps[1] = Capability(1, ("a",), {"c": "other"})
    plans = _plans(nx.complete_graph(3), caps, "induced")
    assert plans[1].paths == {} and set(plans[0].paths["c"]) == {2}


def test_a_peer_whose_degree_never_arrives_is_planned_without():
    class DropsDegreesOf2(InMemoryTransport):
        def exchange(self, messages):
            return super().exchange([m for m in messages
                                     if not (m.kind == "degree" and m.src == 2)])

    plans = _plans(nx.complete_graph(3), _caps(3), "induced", transport=DropsDegreesOf2())
    assert set(plans[0].paths["c"]) == {1}
    assert plans[0].weights["c"] == pytest.approx({1: 1 / 3})  # from the degree 1 reported


def test_overlay_radius_comes_from_the_registered_class():
    assert overlay_radius("induced", 3) == 1
    assert overlay_radius("relay", 3) == 3 and overlay_radius("rewire", 2) == 2
