"""What a distributed worker decides before its first exchange: which process hosts each agent
(``runtime.placement``, :mod:`parsefl.topology.placement`) and how its agents are executed
(stacked, when the simulator would stack them)."""

from __future__ import annotations

import networkx as nx

from parsefl.config import RunConfig
from parsefl.experiments.build import Experiment, agent_count
from parsefl.registry import SHARING
from parsefl.runtime.distributed import DistributedEngine
from parsefl.runtime.distributed_vectorized import DistributedVectorizedExecutor
from parsefl.runtime.vectorized import VectorizedExecutor
from parsefl.topology import build_topology
from parsefl.topology.placement import cut_share, place


def placement_graph(cfg: RunConfig) -> nx.Graph:
    """The graph placement works on: round 0's physical graph (built without the data; a
    centralized run has one agent and no edges)."""
    n = agent_count(cfg)
    if SHARING.get(cfg.method, field="method").centralized:
        return nx.empty_graph(n)
    return build_topology(cfg.topology.name, n, cfg.seed, cfg.topology.params).at(0)


def placement(cfg: RunConfig, name: str | None, world: int) -> tuple[str, list[int], float]:
    """(placement name, rank of each agent, share of round 0's edges that cross processes);
    ``name`` None: ``runtime.placement``."""
    name = name or cfg.runtime.placement
    graph = placement_graph(cfg)
    owner = place(name, graph, world, cfg.seed)
    return name, owner, cut_share(graph, owner)


def choose_executor(exp: Experiment, loop: DistributedEngine, cfg: RunConfig) -> str:
    """The simulator's backend choice for these agents (``build_experiment`` made it, and
    refused what its vectorized backend cannot run): stacked agents when it chose the
    vectorized backend (adversaries, compression and periods included: senders tamper and
    encode in their own process, ``runtime.distributed_vectorized``), else one agent at a
    time. Returns the backend's name; ``exp.loop`` drops its own executor (one stacked copy
    of the agents)."""
    if isinstance(exp.loop.executor, VectorizedExecutor):
        loop.executor = DistributedVectorizedExecutor(loop, cfg.train)
    exp.loop.executor = loop.executor
    return "vectorized" if isinstance(loop.executor, VectorizedExecutor) else "reference"

