"""Contract of every registered overlay class, and a new overlay as one class."""

from __future__ import annotations

import networkx as nx
import pytest
from conftest import make_agent

from parsefl.config import load_config
from parsefl.errors import ConfigError
from parsefl.overlays import Overlay, build_overlay, make_overlay
from parsefl.registry import OVERLAYS, SHARING
from parsefl.runtime import InMemoryTransport, RoundEngine
from parsefl.runtime.handshake import discover, plan_gossip
from parsefl.sharing.base import Capability, SharingStrategy
from parsefl.topology import StaticGraph, build_topology


@pytest.mark.parametrize("name", OVERLAYS.names())
def test_registered_overlays_are_overlay_classes(name):
    overlay = make_overlay(name, hops=3, degree=2)
    assert isinstance(overlay, Overlay) and overlay.radius >= 1
    candidates = {1: (0, 1), 5: (0, 4, 5), 2: (0, 1, 2)}
    chosen = overlay.choose(candidates)
    assert chosen.items() <= candidates.items()


@pytest.mark.parametrize("name", OVERLAYS.names())
@pytest.mark.parametrize("topology", ["ring", "small_world", "star"])
def test_handshake_agrees_with_the_reference_form(name, topology):
    graph = build_topology(topology, 10, 3).at(0)
    holders = {0, 2, 3, 4, 6, 8, 9}
    caps = {i: Capability(i, ("a",), {"c": "s"} if i in holders else {}) for i in range(10)}
    overlay = make_overlay(name, hops=2, degree=2)
    transport = InMemoryTransport()
    known = discover(caps, graph, transport, overlay.radius)
    plans = plan_gossip(caps, known, SharingStrategy(), transport, 0, overlay, graph)
    ref = build_overlay(name, graph, holders, 2, degree=2)
    got = {(i, j) for i, p in plans.items() for j in p.paths.get("c", {}) if i < j}
    assert got == {tuple(sorted(e)) for e in ref.edges}
    for i, j in got:
        assert plans[i].paths["c"][j] == ref.edges[i, j]["path"]


def test_an_unregistered_overlay_fails_validation_listing_the_choices():
    with pytest.raises(ConfigError) as err:
        load_config(None, ["overlay.name=shortcut"])
    assert err.value.field == "overlay.name"
    assert "induced, relay, rewire" in err.value.problem


class Hermit(Overlay):
    """Test-only: discovers direct neighbours, links to nobody."""

    name = "test_hermit"

    @property
    def radius(self) -> int:
        return 1

    def choose(self, candidates):
        return {}

    def build(self, graph, holders):
        overlay = nx.Graph()
        overlay.add_nodes_from(sorted(holders))
        return overlay


def test_a_new_overlay_is_one_class_and_the_engine_uses_it():
    agents = [make_agent(i, "a") for i in range(3)]
    with OVERLAYS.registered("test_hermit", Hermit):
        engine = RoundEngine(agents, SHARING.get("parse")(), StaticGraph(nx.cycle_graph(3)),
                             InMemoryTransport(), "test_hermit")
    assert "test_hermit" not in OVERLAYS
    assert isinstance(engine.overlay, Hermit)
    engine.prepare(0)
    engine.gossip()
    assert all(p.paths == {} for p in engine.plans.values())
    assert engine.transport.take_link_bytes() == {}
