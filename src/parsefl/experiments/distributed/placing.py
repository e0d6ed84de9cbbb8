"""What a distributed worker decides before its first exchange: which process hosts each agent
(``runtime.placement``, :mod:`parsefl.topology.placement`) and how its agents are executed
(stacked, when the simulator would stack them)."""

from __future__ import annotations

import networkx as nx

from parsefl.aggregation import build_aggregator
from parsefl.attacks import build_attack
from parsefl.attacks.select import choose_adversaries
from parsefl.config import RunConfig
from parsefl.errors import ConfigError
from parsefl.experiments.run.build import Experiment, build_communication
from parsefl.experiments.run.roster import agent_count, agent_groups
from parsefl.registry import SHARING
from parsefl.runtime.distributed import DistributedEngine
from parsefl.runtime.distributed_vectorized import DistributedVectorizedExecutor
from parsefl.runtime.vectorized import VectorizedExecutor
from parsefl.runtime.vectorized_blocker import vectorized_blocker
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
    if world > 1 and SHARING.get(cfg.method, field="method").centralized:
        raise ConfigError("--nproc", f"{cfg.method} pools every agent's data into one model, "
                          "which runs in one process: use --nproc 1 or parsefl run")
    if world > 1 and cfg.adversary is not None and \
            build_attack(cfg.adversary.attack, cfg.adversary.params).omniscient:
        # The simulator's attacker reads its recipients' honest copies of the same round; a
        # worker holds only its own process's, so the attack would silently be weaker.
        raise ConfigError("adversary.attack", f"{cfg.adversary.attack!r} is omniscient (it "
                          "reads the honest copies of the round it attacks), which only one "
                          "process can give it: use parsefl run or --nproc 1, or a "
                          "non-omniscient attack")
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


def refuse_unstackable(cfg: RunConfig) -> None:
    """``runtime.backend: vectorized`` with what the vectorized backend refuses for the whole
    config (error feedback with an adversary, an aggregator with no stacked form), refused
    before any process starts: each worker would refuse it only after starting. Rules that
    need the built agents (``imperfect``) stay with the workers; ``auto`` needs nothing here
    (the workers take the simulator's choice and ``distributed.backend`` records it)."""
    if cfg.runtime.backend != "vectorized":
        return
    blocker = vectorized_blocker([], build_aggregator(cfg.aggregation.name,
                                                      cfg.aggregation.params),
                                 cfg.train, communication=build_communication(cfg),
                                 attacked=_attacked(cfg))
    if blocker:
        raise ConfigError("runtime.backend", f"vectorized backend unavailable: {blocker}")


def _attacked(cfg: RunConfig) -> bool:
    """Whether an adversary replaces some agents' sent copies (as ``RoundEngine.attackers``)."""
    adv = cfg.adversary
    if adv is None or SHARING.get(cfg.method, field="method").centralized or \
            build_attack(adv.attack, adv.params).data_poisoning:
        return False
    return bool(choose_adversaries(adv, agent_groups(cfg), cfg.seed))
