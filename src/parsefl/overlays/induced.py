"""Induced overlay: holders linked only to physical neighbours that also hold the component."""

from __future__ import annotations

from collections.abc import Iterable

import networkx as nx

from parsefl.overlays.base import Overlay
from parsefl.registry import OVERLAYS
from parsefl.topology.overlays import check_holders, empty_overlay


@OVERLAYS.register("induced", "holders linked only to physical neighbours that also hold")
class Induced(Overlay):
    """The holders' induced subgraph of the physical graph; every path is the direct edge.
    One hop by definition (``hops`` is ignored; the same as ``relay`` with hops = 1)."""

    name = "induced"

    @property
    def radius(self) -> int:
        return 1

    def build(self, graph: nx.Graph, holders: Iterable[int]) -> nx.Graph:
        members = check_holders(graph, holders)
        overlay = empty_overlay(members)
        edges = sorted((min(u, v), max(u, v)) for u, v in graph.subgraph(members).edges())
        for u, v in edges:
            overlay.add_edge(u, v, path=(u, v))
        return overlay
