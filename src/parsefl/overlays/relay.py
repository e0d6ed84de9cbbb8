"""Relay overlay: holders within k physical hops average together; relays pay the bytes."""

from __future__ import annotations

from collections.abc import Iterable

import networkx as nx

from parsefl.overlays.base import Overlay
from parsefl.registry import OVERLAYS
from parsefl.topology.overlays import bfs_distances, check_holders, empty_overlay, paths_from


@OVERLAYS.register("relay", "holders linked when within k physical hops; relays pay the bytes")
class Relay(Overlay):
    """Holders linked iff their physical distance is at most ``hops``. Paths may pass through
    non-holders, which relay the component without using it."""

    name = "relay"

    def build(self, graph: nx.Graph, holders: Iterable[int]) -> nx.Graph:
        members = check_holders(graph, holders)
        cache: dict[int, dict[int, int]] = {}
        bfs = bfs_distances(graph, self.hops)

        def distances(node: int) -> dict[int, int]:
            # Each holder's distances serve both its own search and every smaller holder's.
            if node not in cache:
                cache[node] = bfs(node)
            return cache[node]

        overlay = empty_overlay(members)
        for u in sorted(members):
            for v, path in paths_from(graph, u, distances).items():
                if v > u and v in members:
                    overlay.add_edge(u, v, path=path)
        return overlay
