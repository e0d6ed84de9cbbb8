"""The built-in topologies, each one registered factory ``(n, seed, **params) -> GraphSchedule``.

Every factory validates its own parameters (a ConfigError names ``topology.params.<key>``) and
returns a connected graph — except ``random_matching``, whose rounds are connected only in
union. Randomness comes from ``seed`` alone, so a seed always gives the same schedule.
"""

from __future__ import annotations

import math

import networkx as nx
import numpy as np

from parsefl.errors import ConfigError
from parsefl.registry import TOPOLOGIES
from parsefl.topology.graphs import (
    MAX_TRIES,
    GraphSchedule,
    StaticGraph,
    TimeVaryingGraph,
    check_n,
    connected_sample,
    int_param,
    param_field,
    prob_param,
    sub_seed,
)


@TOPOLOGIES.register("ring", "cycle 0-1-...-(n-1)-0 (n=2: a single edge)")
def ring(n: int, seed: int) -> GraphSchedule:
    """Cycle through the agents in id order; with two agents it is a single edge."""
    return StaticGraph(nx.cycle_graph(check_n(n)))


@TOPOLOGIES.register("chordal_ring", "ring plus chords i -- i+chord mod n (default chord n//2)")
def chordal_ring(n: int, seed: int, *, chord: int | None = None) -> GraphSchedule:
    """Ring plus one chord ``i -- (i + chord) mod n`` from every agent.

    The default chord is ``n // 2`` (a diameter), the chord that shortens the ring's
    distances most: for even n every agent gains one neighbour (degree 3), for odd n two
    (degree 4). For n < 4 there is no chord that is not already a ring edge, so the
    default gives a plain ring there; an explicit chord must lie in ``2..n-2``.
    """
    n = check_n(n)
    graph = nx.cycle_graph(n)
    if chord is None and n < 4:
        return StaticGraph(graph)
    if chord is None:
        chord = n // 2
    elif n < 4:
        raise ConfigError(param_field("chord"), f"chords need at least 4 agents, got n={n}")
    chord = int_param("chord", chord, 2, n - 2)
    graph.add_edges_from((i, (i + chord) % n) for i in range(n))
    return StaticGraph(graph)


@TOPOLOGIES.register("torus", "2-D wrap-around grid, rows x n/rows (default: squarest)")
def torus(n: int, seed: int, *, rows: int | None = None) -> GraphSchedule:
    """2-D grid with wrap-around in both directions; agent ``r * cols + c`` sits at (r, c).

    ``rows`` defaults to the largest divisor of n that is at most sqrt(n), i.e. the squarest
    grid (12 agents: 3 x 4, every degree 4). When rows is 1 (n prime) or n, the torus
    degenerates to a ring. A side of length 2 wraps onto the same neighbour, so 2 x k grids
    have degree 3.
    """
    n = check_n(n)
    if rows is None:
        rows = max(d for d in range(1, math.isqrt(n) + 1) if n % d == 0)
    rows = int_param("rows", rows, 1, n)
    if n % rows:
        raise ConfigError(param_field("rows"), f"must divide n={n}, got {rows}")
    cols = n // rows
    graph = nx.empty_graph(n)
    for r in range(rows):
        for c in range(cols):
            node = r * cols + c
            # A side of length 1 would wrap onto the node itself: no self loops.
            for other in (r * cols + (c + 1) % cols, ((r + 1) % rows) * cols + c):
                if other != node:
                    graph.add_edge(node, other)
    return StaticGraph(graph)


@TOPOLOGIES.register("random_regular", "connected random d-regular graph (default d=3; 4 if n odd)")
def random_regular(n: int, seed: int, *, degree: int | None = None) -> GraphSchedule:
    """Uniform random ``degree``-regular graph, resampled until connected.

    n * degree must be even, so the default degree is 3 for even n and 4 for odd n (capped
    at n - 1 for tiny n). Degree 1 is a perfect matching, connected only for n = 2.
    """
    n = check_n(n)
    if degree is None:
        degree = min(3, n - 1)
        degree += (n * degree) % 2  # odd n * odd degree: step up; degree + 1 <= n - 1 then
    degree = int_param("degree", degree, 1, n - 1)
    if (n * degree) % 2:
        raise ConfigError(param_field("degree"), f"n * degree must be even (n={n}, got {degree})")
    if degree == 1 and n > 2:
        raise ConfigError(param_field("degree"), "degree 1 is a matching: connected only for n=2")
    graph = connected_sample(
        lambda s: nx.random_regular_graph(degree, n, seed=s), seed, "degree", "use a larger degree"
    )
    return StaticGraph(graph)


@TOPOLOGIES.register("erdos_renyi", "connected G(n, p) random graph (default p=0.3)")
def erdos_renyi(n: int, seed: int, *, p: float = 0.3) -> GraphSchedule:
    """Erdős–Rényi G(n, p), resampled until connected (at most 100 samples)."""
    n = check_n(n)
    p = prob_param("p", p)
    # Above ln(n)/n a G(n, p) graph is connected with high probability.
    hint = f"use a larger p (connectivity needs roughly p > ln(n)/n = {math.log(n) / n:.3f})"
    graph = connected_sample(lambda s: nx.gnp_random_graph(n, p, seed=s), seed, "p", hint)
    return StaticGraph(graph)


@TOPOLOGIES.register("small_world", "connected Watts-Strogatz graph (default k=4, p=0.2)")
def small_world(n: int, seed: int, *, k: int | None = None, p: float = 0.2) -> GraphSchedule:
    """Connected Watts–Strogatz graph: a ring lattice to k nearest agents, rewired with p.

    ``k`` must be even (k/2 neighbours on each side); the default 4 is capped at the
    largest even number <= n - 1 for small n. Needs n >= 3.
    """
    n = check_n(n, 3)
    if k is None:
        k = min(4, n - 1) // 2 * 2
    k = int_param("k", k, 2, n - 1)
    if k % 2:
        raise ConfigError(param_field("k"), f"must be even (k/2 neighbours per side), got {k}")
    p = prob_param("p", p)
    try:
        graph = nx.connected_watts_strogatz_graph(n, k, p, tries=MAX_TRIES, seed=sub_seed(seed, 0))
    except nx.NetworkXError as exc:
        raise ConfigError(
            param_field("p"),
            f"the graph stayed disconnected in {MAX_TRIES} rewirings; use a smaller p",
        ) from exc
    return StaticGraph(graph)


@TOPOLOGIES.register("complete", "every pair of agents linked")
def complete(n: int, seed: int) -> GraphSchedule:
    """Complete graph: every agent is every other agent's neighbour."""
    return StaticGraph(nx.complete_graph(check_n(n)))


@TOPOLOGIES.register("star", "agent 0 is the hub, linked to every other agent")
def star(n: int, seed: int) -> GraphSchedule:
    """Star with agent 0 as the hub and agents 1..n-1 as leaves."""
    return StaticGraph(nx.star_graph(check_n(n) - 1))


@TOPOLOGIES.register("uneven", "Barabasi-Albert graph: a few hubs, many low-degree agents (m=1)")
def uneven(n: int, seed: int, *, m: int = 1) -> GraphSchedule:
    """Barabási–Albert preferential attachment: each new agent links to ``m`` existing ones.

    Degrees are very uneven (a few hubs); the graph is connected by construction, and with
    the default m = 1 it is a tree.
    """
    n = check_n(n)
    m = int_param("m", m, 1, n - 1)
    return StaticGraph(nx.barabasi_albert_graph(n, m, seed=sub_seed(seed, 0)))


@TOPOLOGIES.register("random_matching", "time-varying: a fresh random maximal matching each round")
def random_matching(n: int, seed: int) -> GraphSchedule:
    """Each round links the agents in disjoint pairs (one agent idles when n is odd).

    Round r's matching is uniform over maximal matchings of the n agents and depends only on
    (seed, r). A single round is disconnected (n >= 3), but the union of a few rounds is
    connected with overwhelming probability.
    """
    n = check_n(n)

    def make(round: int) -> nx.Graph:
        # Pairing consecutive entries of a uniform permutation gives a uniform matching.
        order = np.random.default_rng([seed, round]).permutation(n).tolist()
        graph = nx.empty_graph(n)
        # With odd n the last agent has no partner: zip drops it on purpose.
        graph.add_edges_from(zip(order[0::2], order[1::2], strict=False))
        return graph

    return TimeVaryingGraph(n, make)
