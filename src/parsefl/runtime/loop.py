"""The one round loop: local training, exchange, merge. It talks to the network only through
the transport and decides nothing about what travels (the sharing strategy does)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

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


class RoundLoop:
    """Drives the local agents through rounds. With the in-memory transport every agent is
    local; a distributed runtime hosts a subset per process behind the same loop."""

    def __init__(
        self,
        agents: Sequence[Agent],
        strategy: SharingStrategy,
        topology: GraphSchedule,
        transport: Transport,
        overlay: str = "induced",
        hops: int = 2,
    ) -> None:
        self.agents = {a.id: a for a in agents}
        self.strategy = strategy
        self.topology = topology
        self.transport = transport
        self.radius = overlay_radius(overlay, hops)
        self._known: dict | None = None
        self.plans: dict[int, GossipPlan] = {}

    def step(self, r: int) -> RoundStats:
        """Round ``r``: handshake (when the graph is new), local training, gossip."""
        self.prepare(r)
        phase = self.strategy.phase(r)
        for agent in self.agents.values():
            agent.phase = phase
        losses = [a.train_local() for a in self.agents.values()]
        cosine = gradient_cosine(self.agents.values(), self.strategy, r)
        self.gossip()
        loss = float(np.nanmean(losses)) if losses else float("nan")
        return RoundStats(r, loss, self.transport.take_link_bytes(), cosine)

    def prepare(self, r: int) -> None:
        """Handshake for round ``r``: discovery when the graph is new, then this round's plans
        (a strategy may offer different components in different rounds)."""
        caps = {i: a.capability() for i, a in self.agents.items()}
        if self._known is None or not self.topology.static:
            self._known = discover(caps, self.topology.at(r), self.transport, self.radius)
        self.plans = plan_gossip(caps, self._known, self.strategy, self.transport, r)

    def gossip(self) -> None:
        """Send each planned component, then merge what arrived (all merges are computed from
        the pre-round values before any agent overwrites its own)."""
        msgs = [
            Message(i, j, "params", self.agents[i].get_component(comp), path, comp)
            for i, plan in self.plans.items()
            for comp, peers in plan.paths.items()
            for j, path in peers.items()
        ]
        inbox = self.transport.exchange(msgs)
        updates = []
        for i, plan in self.plans.items():
            received: dict[str, dict[int, dict]] = {}
            for msg in inbox.get(i, []):
                received.setdefault(msg.component, {})[msg.src] = msg.body
            agent = self.agents[i]
            for comp in plan.paths:
                merged = self.strategy.merge(
                    agent.get_component(comp), received.get(comp, {}),
                    plan.self_weight[comp], plan.weights[comp],
                )
                updates.append((agent, comp, merged))
        for agent, comp, merged in updates:
            agent.set_component(comp, merged)
