"""Auto overlay: every direct link between holders, plus the fewest relayed hops that join the
components the direct links leave apart.

Relayed links only forward (a relay does not aggregate), so a link always joins two holders
and costs its path's hop count in bytes, once per hop, each way, each round. Among such link
sets the cheapest one that connects the holders keeps every direct link (they cost one hop and
are part of the induced overlay anyway) and adds the minimum spanning tree of the metric
closure between the induced subgraph's connected components: Kruskal over the holder pairs in
the order (hops, smaller id, larger id), where a relayed pair is kept exactly when no path of
lighter pairs already joins its ends (the cycle property; one pass of union-find).

Each agent decides its own relayed links from what it knows: the holders its capability
discovery found within ``hops`` (the same knowledge as ``relay``; holders further away are
never learnt) and the physical graph, which every process already builds from the config. Its
view is part of the global one, so a link of the global minimum spanning forest (over pairs at
most ``hops`` apart) has no lighter path in any view and is kept by both ends; a link that only
looks necessary from one end's partial view is kept too (``symmetrize``: either end's choice
makes the link). Hence, on every graph: ``induced`` ⊆ ``auto`` ⊆ ``relay`` (same hops), and
``auto`` connects the holders exactly when ``relay`` does. With ``hops`` at least the graph's
diameter every view is global: ``auto`` is then exactly that spanning forest, and equals
``induced`` whenever the induced subgraph is connected.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import networkx as nx

from parsefl.overlays.base import Overlay
from parsefl.registry import OVERLAYS
from parsefl.topology.overlays import check_holders, empty_overlay, k_hop_paths
from parsefl.types import HopPath


@OVERLAYS.register("auto", "direct links between holders, plus the relayed links (at most k "
                           "hops) with the fewest hops that join what the direct links leave "
                           "apart (minimum spanning tree between the induced components)")
class Auto(Overlay):
    """Direct links wherever holders are neighbours; relayed paths only between the induced
    subgraph's components, as few hops as possible (see the module docstring)."""

    name = "auto"
    symmetrize = True  # a link kept by one end's view is made mutual by the link exchange

    def select(self, me: int, candidates: Mapping[int, HopPath],
               graph: nx.Graph | None) -> dict[int, HopPath]:
        if graph is None:
            raise ValueError("the auto overlay needs the physical graph (plan_gossip(graph=))")
        kept = kept_links(graph, me, {me, *candidates}, self.hops, {})
        return {j: candidates[j] for j in sorted(kept)}

    def build(self, graph: nx.Graph, holders: Iterable[int]) -> nx.Graph:
        members = check_holders(graph, holders)
        cache: dict[int, dict[int, int]] = {}
        overlay = empty_overlay(members)
        for u in sorted(members):
            view = {v for v in _distances(graph, u, self.hops, cache) if v in members}
            for v in kept_links(graph, u, view, self.hops, cache):
                a, b = min(u, v), max(u, v)
                if not overlay.has_edge(a, b):
                    overlay.add_edge(a, b, path=k_hop_paths(graph, a, self.hops)[b])
        return overlay


def kept_links(graph: nx.Graph, me: int, view: set[int], hops: int,
               cache: dict[int, dict[int, int]]) -> set[int]:
    """The holders of ``view`` (``me`` among them) that ``me`` links to: every one at one
    hop, and each one further away (at most ``hops``) whose pair with ``me`` no lighter pairs
    of the view already join. ``cache``: distance maps, shared between calls on one graph."""
    pairs = sorted(
        (d, a, b)
        for a in view
        for b, d in _distances(graph, a, hops, cache).items()
        if a < b and b in view
    )
    parent = {v: v for v in view}

    def find(v: int) -> int:
        while parent[v] != v:
            parent[v] = parent[parent[v]]  # path halving
            v = parent[v]
        return v

    kept: set[int] = set()
    for d, a, b in pairs:
        ra, rb = find(a), find(b)
        if me in (a, b) and (d == 1 or ra != rb):
            kept.add(b if a == me else a)
        parent[ra] = rb
    return kept


def _distances(graph: nx.Graph, node: int, hops: int,
               cache: dict[int, dict[int, int]]) -> dict[int, int]:
    if node not in cache:
        cache[node] = nx.single_source_shortest_path_length(graph, node, cutoff=hops)
    return cache[node]
