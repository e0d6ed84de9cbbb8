"""The one round loop: handshake, local training, exchange, merge. It talks to the network
only through the transport, decides nothing about what travels (the sharing strategy does),
and leaves *how* agents are executed to an executor (per-agent reference loop, or stacked
agents in the vectorized backend)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from parsefl.runtime.agent import Agent
from parsefl.runtime.diagnostics import gradient_cosine
from parsefl.runtime.handshake import GossipPlan, discover, overlay_radius, plan_gossip
from parsefl.runtime.transport import Message, Transport
from parsefl.sharing.base import SharingStrategy
from parsefl.topology import GraphSchedule


@dataclass(frozen=True)
class RoundStats:
    round: int
    loss: float
    link_bytes: Counter  # (u, v) -> payload bytes that crossed that physical link this round
    gradient_cosine: dict[str, float] = field(default_factory=dict)  # see runtime.diagnostics


class Executor(Protocol):
    """How the local agents train and merge; the loop decides when."""

    def train(self, phase: str | None) -> list[float]: ...

    def gossip(self, plans: dict[int, GossipPlan]) -> None: ...

    def sync(self) -> None:
        """Make every Agent object's model current (before evaluation or checkpoints)."""


class RoundLoop:
    """Drives the local agents through rounds. With the in-memory transport every agent is
    local; a distributed runtime hosts a subset per process behind the same loop."""

    # Reuse gossip plans while the graph and the strategy's phase stay the same. A runtime
    # whose peers can vanish mid-run turns this off, so that every process re-plans (and
    # calls the transport) in lockstep every round.
    cache_plans = True

    def __init__(
        self,
        agents: Sequence[Agent],
        strategy: SharingStrategy,
        topology: GraphSchedule,
        transport: Transport,
        overlay: str = "induced",
        hops: int = 2,
        executor: Executor | None = None,
        degree: int = 2,
    ) -> None:
        self.agents = {a.id: a for a in agents}
        self.strategy = strategy
        self.topology = topology
        self.transport = transport
        self.radius = overlay_radius(overlay, hops)
        self.degree = degree if overlay == "rewire" else None
        self.executor = executor or ReferenceExecutor(self)
        self._known: dict | None = None
        self._plan_key: object = None
        self.plans: dict[int, GossipPlan] = {}

    def step(self, r: int) -> RoundStats:
        """Round ``r``: handshake (when the graph or phase is new), local training, gossip."""
        self.prepare(r)
        losses = self.executor.train(self.strategy.phase(r))
        tracked = any(a.track_gradients for a in self.agents.values())
        cosine = gradient_cosine(self.agents.values(), self.strategy, r) if tracked else {}
        self.gossip()
        loss = float(np.nanmean(losses)) if losses else float("nan")
        return RoundStats(r, loss, self.transport.take_link_bytes(), cosine)

    def prepare(self, r: int) -> None:
        """Handshake for round ``r``: discovery when the graph is new, then the gossip plans.
        A strategy's offer may change only with its ``phase``, so plans are reused while the
        graph and the phase stay the same."""
        caps = {i: a.capability() for i, a in self.agents.items()}
        new_graph = self._known is None or not self.topology.static
        if new_graph:
            self._known = discover(caps, self.topology.at(r), self.transport, self.radius)
        key = self.strategy.phase(r)
        if new_graph or key != self._plan_key or not self.plans or not self.cache_plans:
            self.plans = plan_gossip(caps, self._known, self.strategy, self.transport, r,
                                     self.degree)
            self._plan_key = key

    def gossip(self) -> None:
        """Exchange and merge the planned components (see ``prepare``)."""
        self.executor.gossip(self.plans)

    def sync(self) -> None:
        self.executor.sync()


class ReferenceExecutor:
    """One agent at a time; every component travels as a message through the transport."""

    def __init__(self, loop: RoundLoop) -> None:
        self.loop = loop

    def train(self, phase: str | None) -> list[float]:
        losses = []
        for agent in self.loop.agents.values():
            agent.phase = phase
            losses.append(agent.train_local())
        return losses

    def gossip(self, plans: dict[int, GossipPlan]) -> None:
        """Send each planned component, then merge what arrived (all merges are computed from
        the pre-round values before any agent overwrites its own)."""
        agents, strategy = self.loop.agents, self.loop.strategy
        own = {(i, comp): agents[i].get_component(comp)
               for i, plan in plans.items() for comp in plan.paths}
        # Tensors are never modified in place after this point, so peers may share one copy.
        msgs = [
            Message(i, j, "params", own[i, comp], path, comp)
            for i, plan in plans.items()
            for comp, peers in plan.paths.items()
            for j, path in peers.items()
        ]
        inbox = self.loop.transport.exchange(msgs)
        updates = []
        for i, plan in plans.items():
            received: dict[str, dict[int, dict]] = {}
            for msg in inbox.get(i, []):
                received.setdefault(msg.component, {})[msg.src] = msg.body
            for comp in plan.paths:
                merged = strategy.merge(
                    own[i, comp], received.get(comp, {}),
                    plan.self_weight[comp], plan.weights[comp],
                )
                updates.append((agents[i], comp, merged))
        for agent, comp, merged in updates:
            agent.set_component(comp, merged)

    def sync(self) -> None:
        """Agents are always current here."""
