"""Time-varying topologies beyond ``random_matching``: a base graph whose links fail at random
each round (``edge_dropout``), and agents that move (``mobility``: a random geometric graph
whose points take a random step every round). Both are pure functions of (seed, round), so
every agent and every process sees the same graph for a round, in any order of asking."""

from __future__ import annotations

import math
from typing import Any

import networkx as nx
import numpy as np

from parsefl.errors import ConfigError
from parsefl.registry import TOPOLOGIES
from parsefl.topology.graphs import (
    GraphSchedule,
    TimeVaryingGraph,
    check_n,
    param_field,
    prob_param,
    sub_seed,
)


@TOPOLOGIES.register("edge_dropout", "time-varying: a base topology whose links each fail "
                                     "for a round with probability p")
def edge_dropout(n: int, seed: int, p: float = 0.1, base: str = "ring",
                 base_params: dict[str, Any] | None = None) -> GraphSchedule:
    """Round r keeps each link of the (static) ``base`` graph independently with probability
    1 - p, drawn from (seed, r): a round may be disconnected, their union is the base."""
    from parsefl.topology.graphs import build_topology

    p = prob_param("p", p)
    if base in ("edge_dropout", "mobility"):
        raise ConfigError(param_field("base"), f"must be a static topology, got {base!r}")
    graph = build_topology(base, check_n(n), seed, base_params or {}).at(0)
    edges = sorted(graph.edges())

    def make(round: int) -> nx.Graph:
        keep = np.random.default_rng([sub_seed(seed, 11), round]).random(len(edges)) >= p
        out = nx.empty_graph(n)
        out.add_edges_from(e for e, k in zip(edges, keep, strict=True) if k)
        return out

    return TimeVaryingGraph(n, make)


@TOPOLOGIES.register("mobility", "time-varying: agents move in the unit torus, linked when "
                                 "closer than radius (random geometric graph)")
def mobility(n: int, seed: int, radius: float = 0.35, speed: float = 0.05) -> GraphSchedule:
    """Points start uniform in the unit square (a torus: no walls) and each round every point
    steps ``speed`` in a direction drawn from (seed, round); two agents are linked while
    closer than ``radius``."""
    n = check_n(n)
    for key, value in (("radius", radius), ("speed", speed)):
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(param_field(key), f"must be a number >= 0, got {value!r}")
    start = np.random.default_rng(sub_seed(seed, 12)).random((n, 2))
    cache = [start]

    def position(round: int) -> np.ndarray:
        while len(cache) <= round:
            angle = np.random.default_rng([sub_seed(seed, 13), len(cache)]).random(n)
            step = speed * np.stack([np.cos(2 * math.pi * angle),
                                     np.sin(2 * math.pi * angle)], 1)
            cache.append((cache[-1] + step) % 1.0)
        return cache[round]

    def make(round: int) -> nx.Graph:
        pos = position(round)
        delta = np.abs(pos[:, None, :] - pos[None, :, :])
        dist = np.hypot(*np.moveaxis(np.minimum(delta, 1.0 - delta), -1, 0))
        out = nx.empty_graph(n)
        out.add_edges_from((int(i), int(j)) for i, j in zip(*np.nonzero(dist < radius),
                                                             strict=True) if i < j)
        return out

    return TimeVaryingGraph(n, make)
