"""Placement: which process hosts each agent of a multi-process run (``runtime.placement``).

A placement is a registered function ``(graph, world, seed) -> owner`` (``owner[i]`` is the
rank hosting agent i; every rank gets ``n // world`` or one more agents). Gossip between agents
of one process is a stacked product in memory; every edge whose ends sit in two processes is a
message through the transport, so a good placement keeps graph neighbours together:

- ``block``: contiguous id ranges; on rings, chordal rings and tori (ids run along the graph)
  only the block boundaries are cut.
- ``partition``: recursive Kernighan–Lin bisection of the graph (networkx, seeded), sizes kept
  balanced; for general graphs (Erdős–Rényi, small world, edge-list files).
- ``round_robin``: agent i on rank ``i % world`` (spreads neighbours apart: a baseline).
- ``auto`` (the default): ``block`` unless ``partition`` cuts fewer edges.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import networkx as nx
from networkx.algorithms.community import kernighan_lin_bisection

from parsefl.errors import ConfigError
from parsefl.registry import PLACEMENTS

Placement = Callable[[nx.Graph, int, int], list[int]]

KL_MAX_ITER = 10  # Kernighan–Lin passes per bisection (networkx's default)


def sizes(n: int, world: int) -> list[int]:
    """Agents per rank: the first ``n % world`` ranks get one more."""
    if not 1 <= world <= n:
        raise ValueError(f"need 1 <= processes <= agents, got {world} processes, {n} agents")
    base, extra = divmod(n, world)
    return [base + (r < extra) for r in range(world)]


@PLACEMENTS.register("block")
def block(graph: nx.Graph, world: int, seed: int = 0) -> list[int]:
    """Contiguous id ranges (agents 0..k-1 on rank 0, ...): few cut edges on rings and tori."""
    counts = sizes(graph.number_of_nodes(), world)
    return [r for r, c in enumerate(counts) for _ in range(c)]


@PLACEMENTS.register("round_robin")
def round_robin(graph: nx.Graph, world: int, seed: int = 0) -> list[int]:
    """Agent i on rank i % world (neighbours spread over processes)."""
    n = graph.number_of_nodes()
    sizes(n, world)  # the same bounds check
    return [i % world for i in range(n)]


@PLACEMENTS.register("partition")
def partition(graph: nx.Graph, world: int, seed: int = 0) -> list[int]:
    """Recursive Kernighan–Lin bisection (balanced, seeded): few cut edges on any graph."""
    counts = sizes(graph.number_of_nodes(), world)
    owner = [0] * graph.number_of_nodes()
    _split(graph, sorted(graph.nodes), list(range(world)), counts, owner, seed)
    return owner


def _split(graph: nx.Graph, nodes: list[int], ranks: list[int], counts: list[int],
           owner: list[int], seed: int) -> None:
    """Assign ``nodes`` to ``ranks`` (``counts[r]`` each) by bisecting until one rank is left."""
    if len(ranks) == 1:
        for i in nodes:
            owner[i] = ranks[0]
        return
    half = len(ranks) // 2
    left_size = sum(counts[r] for r in ranks[:half])
    # KL swaps pairs, so the starting split's sizes are kept: start from id order (the block
    # split, already good on rings) and let KL improve the cut.
    start = (set(nodes[:left_size]), set(nodes[left_size:]))
    sub = graph.subgraph(nodes)
    one, two = kernighan_lin_bisection(sub, start, max_iter=KL_MAX_ITER, seed=seed)
    # Which returned set is which side is not documented (networkx 3.6 returns the second
    # side first): take the one of the left side's size.
    left, right = (one, two) if len(one) == left_size else (two, one)
    _split(graph, sorted(left), ranks[:half], counts, owner, seed)
    _split(graph, sorted(right), ranks[half:], counts, owner, seed)


@PLACEMENTS.register("auto")
def auto(graph: nx.Graph, world: int, seed: int = 0) -> list[int]:
    """``block`` unless ``partition`` cuts fewer edges (rings and tori stay ``block``)."""
    first = block(graph, world, seed)
    if world == 1 or cut_share(graph, first) == 0.0:
        return first
    second = partition(graph, world, seed)
    return second if cut_edges(graph, second) < cut_edges(graph, first) else first


def cut_edges(graph: nx.Graph, owner: Sequence[int]) -> int:
    """Edges whose two ends are hosted by different processes."""
    return sum(owner[u] != owner[v] for u, v in graph.edges)


def cut_share(graph: nx.Graph, owner: Sequence[int]) -> float:
    """The share of the graph's edges that cross processes (0 without edges)."""
    edges = graph.number_of_edges()
    return cut_edges(graph, owner) / edges if edges else 0.0


def place(name: str, graph: nx.Graph, world: int, seed: int = 0,
          field: str = "runtime.placement") -> list[int]:
    """The owner list of placement ``name`` (a ConfigError for an unknown name or a process
    count outside 1..agents)."""
    how: Placement = PLACEMENTS.get(name, field=field)
    try:
        return how(graph, world, seed)
    except ValueError as err:
        raise ConfigError("--nproc", str(err)) from None
