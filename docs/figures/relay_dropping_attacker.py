"""A diagnostic plugin for docs/robustness.md ("A second path"): the `relay` overlay as it is
when the attackers drop every copy they should relay (with signed frames a relay cannot alter
a copy, but it can drop it). Each holder links only to the holders within ``overlay.hops``
whose path has no attacker strictly inside it; the attackers come from the environment
variable ``PARSEFL_RELAY_DROPPERS`` (comma-separated agent ids), so the attackers' seats must
be fixed (``adversary.agents``) and the same in the environment:

    PARSEFL_RELAY_DROPPERS=2 parsefl sweep configs/studies/byzantine25_relay_dropping.yaml \
        --plugin docs/figures/relay_dropping_attacker.py --out runs/byz25_relay_drop
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

import networkx as nx

from parsefl.overlays.relay import Relay
from parsefl.registry import OVERLAYS
from parsefl.types import HopPath


def droppers() -> set[int]:
    text = os.environ.get("PARSEFL_RELAY_DROPPERS", "")
    return {int(i) for i in text.split(",") if i.strip()}


@OVERLAYS.register("relay_dropping", "relay, with no path through an agent in "
                   "PARSEFL_RELAY_DROPPERS (attackers that drop what they relay)")
class RelayDropping(Relay):
    name = "relay_dropping"

    def choose(self, candidates: Mapping[int, HopPath]) -> dict[int, HopPath]:
        bad = droppers()
        return {p: path for p, path in candidates.items() if not bad & set(path[1:-1])}

    def build(self, graph: nx.Graph, holders: Iterable[int]) -> nx.Graph:
        overlay = super().build(graph, holders)
        bad = droppers()
        overlay.remove_edges_from([(u, v) for u, v, path in overlay.edges(data="path")
                                   if bad & set(path[1:-1])])
        return overlay
