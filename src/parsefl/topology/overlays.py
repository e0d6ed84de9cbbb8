"""Per-component overlays: which holders of a component average it together, and along which path.

An overlay is an ``nx.Graph`` on the holders of one component (the agents holding it with the
same signature). Each edge carries ``path``: the physical nodes from the smaller endpoint to
the larger one along a shortest physical path, so ``len(path) - 1`` hops, each of which
carries (and is billed for) the component's bytes.

The overlay kinds are registered classes (``parsefl.overlays``, one file each) that the
handshake calls; this module holds the path rule they share and :func:`build_overlay`, the
*global reference form*. An agent computes its own side with :func:`k_hop_paths`; both use one
deterministic path rule, so the two views agree edge for edge and path for path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import networkx as nx
import numpy as np

from parsefl.types import HopPath

Distances = Callable[[int], dict[int, int]]


def k_hop_paths(graph: nx.Graph, source: int, hops: int) -> dict[int, HopPath]:
    """Every other node within ``hops`` of ``source``, with the canonical shortest path to it.

    The canonical path between ``a < b`` is the lexicographically smallest shortest path
    from ``a`` to ``b`` (at every step, the smallest-labelled neighbour one step closer). It
    depends only on the graph's edge set and its endpoints, never on which of them asks: the
    path from ``v`` to ``u`` is exactly the reverse of the path from ``u`` to ``v``.

    Args:
        graph: The physical graph.
        source: The asking node (not included in the result).
        hops: The largest distance included (>= 1).

    Returns:
        Node -> path, a tuple starting at ``source`` and ending at that node; sorted by node.
    """
    _check_node(graph, source)
    hops = check_hops(hops)
    return paths_from(graph, source, bfs_distances(graph, hops))


def bfs_distances(graph: nx.Graph, hops: int) -> Distances:
    """Distances from a node to everything within ``hops`` of it, computed on demand."""
    return lambda node: nx.single_source_shortest_path_length(graph, node, cutoff=hops)


def paths_from(graph: nx.Graph, source: int, distances: Distances) -> dict[int, HopPath]:
    """:func:`k_hop_paths` with the distance maps supplied (so a caller can cache them)."""
    from_source = distances(source)
    paths: dict[int, HopPath] = {}
    for target in sorted(from_source):
        if target == source:
            continue
        low, high = min(source, target), max(source, target)
        # The canonical path always walks from the smaller end towards the larger one.
        to_high = from_source if high == source else distances(high)
        path = _greedy_path(graph, low, to_high)
        paths[target] = path if low == source else path[::-1]
    return paths


def _greedy_path(graph: nx.Graph, start: int, to_end: dict[int, int]) -> HopPath:
    """From ``start``, step to the smallest neighbour one hop closer until distance 0."""
    path = [start]
    node = start
    while to_end[node] > 0:
        closer = to_end[node] - 1
        node = min(w for w in graph.adj[node] if to_end.get(w) == closer)
        path.append(node)
    return tuple(path)






def check_hops(hops: int) -> int:
    if isinstance(hops, bool) or not isinstance(hops, int | np.integer) or hops < 1:
        raise ValueError(f"hops must be an integer >= 1, got {hops!r}")
    return int(hops)


def _check_node(graph: nx.Graph, node: int) -> None:
    if node not in graph:
        raise ValueError(f"node {node!r} is not in the physical graph")


def check_holders(graph: nx.Graph, holders: Iterable[int]) -> set[int]:
    members = set(holders)
    for node in members:
        _check_node(graph, node)
    return members


def empty_overlay(members: set[int]) -> nx.Graph:
    overlay = nx.Graph()
    overlay.add_nodes_from(sorted(members))  # sorted: iteration order is part of the result
    return overlay
