"""Rewire overlay: each holder links to its ``degree`` nearest holders (peer sampling)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import networkx as nx

from parsefl.overlays.base import Overlay
from parsefl.registry import OVERLAYS
from parsefl.topology.overlays import bfs_distances, check_holders, empty_overlay, k_hop_paths
from parsefl.types import HopPath


@OVERLAYS.register("rewire", "each holder links to its `degree` nearest holders found within k "
                             "hops (peer sampling), links made symmetric")
class Rewire(Overlay):
    """Every holder picks the ``degree`` holders nearest to it among those within ``hops``
    (ties by id); u and v link when either picked the other. Degrees stay small however
    dense the holders are, and distant holders still meet through relayed paths."""

    name = "rewire"
    symmetrize = True

    def choose(self, candidates: Mapping[int, HopPath]) -> dict[int, HopPath]:
        nearest = sorted(candidates, key=lambda j: (len(candidates[j]), j))[: self.degree]
        return {j: candidates[j] for j in nearest}

    def build(self, graph: nx.Graph, holders: Iterable[int]) -> nx.Graph:
        members = check_holders(graph, holders)
        bfs = bfs_distances(graph, self.hops)
        overlay = empty_overlay(members)
        for u in sorted(members):
            near = sorted((d, v) for v, d in bfs(u).items() if v in members and v != u)
            for _, v in near[: self.degree]:
                a, b = min(u, v), max(u, v)
                overlay.add_edge(a, b, path=k_hop_paths(graph, a, self.hops)[b])
        return overlay
