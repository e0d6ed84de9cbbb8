"""Physical communication graphs: round schedules, parameter checks and the topology builder.

A topology is a registered factory ``(n, seed, **params) -> GraphSchedule``; the factories live
in :mod:`parsefl.topology.generators` and :mod:`parsefl.topology.edgelist`. Every graph a
schedule hands out has nodes exactly ``0..n-1`` and is frozen (read-only), because a static
schedule returns one shared graph object to every agent and every round.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import networkx as nx
import numpy as np

from parsefl.errors import ConfigError
from parsefl.registry import TOPOLOGIES

N_FIELD = "mix"
"""Config field reported when the number of agents is unusable (n is the sum of ``mix``)."""

SEED_FIELD = "seed"
"""Config field reported when the seed is unusable."""

MAX_TRIES = 100
"""Samples a random topology may draw before giving up on getting a connected graph."""


class GraphSchedule:
    """The physical graph of every round.

    Attributes:
        n: Number of agents; every graph has nodes exactly ``0..n-1``.
        static: True when every round uses the same graph object, so callers may compute
            per-graph state (overlays, mixing weights) once and reuse it.
    """

    static: bool = True

    def __init__(self, n: int) -> None:
        self.n = n

    def at(self, round: int) -> nx.Graph:
        """The (frozen) physical graph used in round ``round`` (0-based)."""
        raise NotImplementedError


class StaticGraph(GraphSchedule):
    """The same graph in every round."""

    static = True

    def __init__(self, graph: nx.Graph) -> None:
        """Wraps ``graph``, whose nodes must be exactly ``0..n-1`` (n = its node count)."""
        canonical = canonical_graph(graph, graph.number_of_nodes())
        super().__init__(canonical.number_of_nodes())
        self._graph = nx.freeze(canonical)

    def at(self, round: int) -> nx.Graph:
        _check_round(round)
        return self._graph


class TimeVaryingGraph(GraphSchedule):
    """A graph drawn afresh for every round by a pure function of the round number."""

    static = False

    def __init__(self, n: int, make: Callable[[int], nx.Graph]) -> None:
        """Wraps a per-round graph generator.

        Args:
            n: Number of agents; ``make`` must return graphs on nodes ``0..n-1``.
            make: Maps a round to that round's graph; must be deterministic, since agents
                may ask for the same round more than once and must all see one graph.
        """
        super().__init__(n)
        self._make = make
        # Every agent asks for the current round in turn; remembering the last one avoids
        # rebuilding it n times per round without holding every past round in memory.
        self._last: tuple[int, nx.Graph] | None = None

    def at(self, round: int) -> nx.Graph:
        _check_round(round)
        last = self._last
        if last is None or last[0] != round:
            last = (round, nx.freeze(canonical_graph(self._make(round), self.n)))
            self._last = last
        return last[1]


def canonical_graph(graph: nx.Graph, n: int) -> nx.Graph:
    """A plain undirected copy of ``graph`` with nodes inserted as ``0..n-1`` and sorted edges.

    Insertion order decides iteration order in networkx, so normalising it makes everything
    computed downstream independent of how a generator happened to build its graph.

    Raises:
        ValueError: The nodes are not exactly ``0..n-1`` or an edge is a self loop.
    """
    if set(graph.nodes) != set(range(n)):
        raise ValueError(f"graph nodes must be exactly 0..{n - 1}")
    edges = sorted((min(u, v), max(u, v)) for u, v in graph.edges())
    if any(u == v for u, v in edges):
        raise ValueError("graph has a self loop")
    result = nx.Graph()
    result.add_nodes_from(range(n))
    result.add_edges_from(edges)
    return result


def _check_round(round: int) -> None:
    if isinstance(round, bool) or not isinstance(round, int | np.integer) or round < 0:
        raise ValueError(f"round must be an integer >= 0, got {round!r}")


def param_field(key: str) -> str:
    """The config field of topology parameter ``key``."""
    return f"topology.params.{key}"


def check_n(n: int, minimum: int = 2) -> int:
    """``n`` as an int, or a ConfigError when it is not an integer >= ``minimum``."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < minimum:
        raise ConfigError(N_FIELD, f"need at least {minimum} agents in total, got n={n!r}")
    return int(n)


def int_param(key: str, value: Any, low: int, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]``, or a ConfigError naming the parameter."""
    span = f"between {low} and {high}" if high is not None else f">= {low}"
    ok = not isinstance(value, bool) and isinstance(value, int | np.integer)
    if not ok or value < low or (high is not None and value > high):
        raise ConfigError(param_field(key), f"must be an integer {span}, got {value!r}")
    return int(value)


def prob_param(key: str, value: Any) -> float:
    """``value`` as a float in ``[0, 1]``, or a ConfigError naming the parameter."""
    ok = not isinstance(value, bool) and isinstance(value, int | float | np.number)
    if not ok or not 0.0 <= float(value) <= 1.0:
        raise ConfigError(param_field(key), f"must be a probability in [0, 1], got {value!r}")
    return float(value)


def sub_seed(seed: int, *keys: int) -> int:
    """An independent 32-bit seed derived from ``seed`` and ``keys`` (e.g. an attempt number)."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0])


def connected_sample(make: Callable[[int], nx.Graph], seed: int, key: str, hint: str) -> nx.Graph:
    """The first connected graph among ``make(s)`` for up to MAX_TRIES derived seeds ``s``.

    Args:
        make: Draws one random graph from an integer seed.
        seed: The topology seed; attempt ``a`` uses ``sub_seed(seed, a)``.
        key: The parameter blamed when no connected graph turns up.
        hint: How to fix that, appended to the error message.
    """
    for attempt in range(MAX_TRIES):
        graph = make(sub_seed(seed, attempt))
        if nx.is_connected(graph):
            return graph
    raise ConfigError(
        param_field(key), f"the graph stayed disconnected in {MAX_TRIES} samples; {hint}"
    )


def build_topology(
    name: str, n: int, seed: int, params: Mapping[str, Any] | None = None
) -> GraphSchedule:
    """The graph schedule of registered topology ``name`` for ``n`` agents.

    Args:
        name: A name in ``TOPOLOGIES`` (``parsefl list topology``).
        n: Number of agents (>= 2).
        seed: Non-negative seed; the same seed always gives the same schedule.
        params: The topology's own parameters (``topology.params`` in the config).

    Raises:
        ConfigError: Unknown name or parameter, missing required parameter, or a value the
            topology cannot use; the field names the culprit.
    """
    factory = TOPOLOGIES.get(name, field="topology.name")
    check_n(n)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(SEED_FIELD, f"must be an integer >= 0, got {seed!r}")
    kwargs = dict(params or {})
    _check_param_names(factory, kwargs)
    try:
        schedule = factory(int(n), int(seed), **kwargs)
    except ConfigError:
        raise
    except (nx.NetworkXException, ValueError) as exc:
        # A generator rejected a value our own checks let through: still one clear line.
        raise ConfigError("topology.params", f"{name}: {exc}") from exc
    if schedule.n != n:
        raise RuntimeError(f"topology {name!r} built {schedule.n} agents instead of {n}")
    return schedule


def _check_param_names(factory: Callable[..., GraphSchedule], kwargs: dict[str, Any]) -> None:
    """Reject parameters the factory does not take and report required ones left out."""
    accepted = [
        p
        for p in list(inspect.signature(factory).parameters.values())[2:]  # after n, seed
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    names = [p.name for p in accepted]
    for key in kwargs:
        if key not in names:
            allowed = ", ".join(names) or "none (this topology takes no parameters)"
            raise ConfigError(param_field(str(key)), f"unknown parameter; allowed: {allowed}")
    for p in accepted:
        if p.default is p.empty and p.name not in kwargs:
            raise ConfigError(param_field(p.name), "required parameter is missing")
