"""Per-component overlays: which holders of a component average it together, and along which path.

An overlay is an ``nx.Graph`` on the holders of one component (the agents holding it with the
same signature). Each edge carries ``path``: the physical nodes from the smaller endpoint to
the larger one along a shortest physical path, so ``len(path) - 1`` hops, each of which
carries (and is billed for) the component's bytes.

This module is the *global reference form*. An agent computes its own side with
:func:`k_hop_paths`; both use one deterministic path rule, so the two views agree edge for
edge and path for path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import networkx as nx
import numpy as np

from parsefl.errors import ConfigError
from parsefl.registry import OVERLAYS

HopPath = tuple[int, ...]
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
    hops = _check_hops(hops)
    return _paths_from(graph, source, _bfs(graph, hops))


def _bfs(graph: nx.Graph, hops: int) -> Distances:
    """Distances from a node to everything within ``hops`` of it, computed on demand."""
    return lambda node: nx.single_source_shortest_path_length(graph, node, cutoff=hops)


def _paths_from(graph: nx.Graph, source: int, distances: Distances) -> dict[int, HopPath]:
    """:func:`k_hop_paths` with the distance maps supplied (so :func:`relay` can cache them)."""
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


@OVERLAYS.register("induced", "holders linked only to physical neighbours that also hold")
def induced(graph: nx.Graph, holders: Iterable[int], hops: int = 1) -> nx.Graph:
    """The holders' induced subgraph of the physical graph; every path is the direct edge.

    ``hops`` is accepted for a uniform overlay signature and ignored: induced overlays are
    one hop by definition (the same as ``relay`` with hops = 1).
    """
    members = _check_holders(graph, holders)
    overlay = _empty_overlay(members)
    edges = sorted((min(u, v), max(u, v)) for u, v in graph.subgraph(members).edges())
    for u, v in edges:
        overlay.add_edge(u, v, path=(u, v))
    return overlay


@OVERLAYS.register("relay", "holders linked when within k physical hops; relays pay the bytes")
def relay(graph: nx.Graph, holders: Iterable[int], hops: int = 2) -> nx.Graph:
    """Holders linked iff their physical distance is at most ``hops``.

    Paths may pass through non-holders, which relay the component without using it. Each
    path is the one :func:`k_hop_paths` gives, so agents computing their own neighbourhood
    find the same overlay.
    """
    members = _check_holders(graph, holders)
    hops = _check_hops(hops)
    cache: dict[int, dict[int, int]] = {}
    bfs = _bfs(graph, hops)

    def distances(node: int) -> dict[int, int]:
        # Each holder's distances serve both its own search and every smaller holder's.
        if node not in cache:
            cache[node] = bfs(node)
        return cache[node]

    overlay = _empty_overlay(members)
    for u in sorted(members):
        for v, path in _paths_from(graph, u, distances).items():
            if v > u and v in members:
                overlay.add_edge(u, v, path=path)
    return overlay


@OVERLAYS.register("rewire", "each holder links to its `degree` nearest holders found within k "
                             "hops (peer sampling), links made symmetric")
def rewire(graph: nx.Graph, holders: Iterable[int], hops: int = 3, degree: int = 2) -> nx.Graph:
    """Every holder picks the ``degree`` holders nearest to it among those within ``hops``
    (ties by id); an edge joins u and v when either picked the other. Degrees stay small
    however dense the holders are, and distant holders still meet through relayed paths."""
    members = _check_holders(graph, holders)
    hops = _check_hops(hops)
    bfs = _bfs(graph, hops)
    overlay = _empty_overlay(members)
    for u in sorted(members):
        near = sorted((d, v) for v, d in bfs(u).items() if v in members and v != u)
        for _, v in near[:degree]:
            a, b = min(u, v), max(u, v)
            overlay.add_edge(a, b, path=k_hop_paths(graph, a, hops)[b])
    return overlay


def build_overlay(
    kind: str, graph: nx.Graph, holders: Iterable[int], hops: int, degree: int = 2
) -> nx.Graph:
    """The overlay of registered kind ``kind`` on ``holders`` of one component.

    Raises:
        ConfigError: ``overlay.name`` is unknown or ``overlay.hops`` is not an integer >= 1.
    """
    factory = OVERLAYS.get(kind, field="overlay.name")
    try:
        hops = _check_hops(hops)
    except ValueError as exc:
        raise ConfigError("overlay.hops", str(exc)) from None
    if kind == "rewire":
        return factory(graph, holders, hops=hops, degree=degree)
    return factory(graph, holders, hops=hops)


def _check_hops(hops: int) -> int:
    if isinstance(hops, bool) or not isinstance(hops, int | np.integer) or hops < 1:
        raise ValueError(f"hops must be an integer >= 1, got {hops!r}")
    return int(hops)


def _check_node(graph: nx.Graph, node: int) -> None:
    if node not in graph:
        raise ValueError(f"node {node!r} is not in the physical graph")


def _check_holders(graph: nx.Graph, holders: Iterable[int]) -> set[int]:
    members = set(holders)
    for node in members:
        _check_node(graph, node)
    return members


def _empty_overlay(members: set[int]) -> nx.Graph:
    overlay = nx.Graph()
    overlay.add_nodes_from(sorted(members))  # sorted: iteration order is part of the result
    return overlay
