"""The reference executor: one agent at a time, every component a message through the
transport (its send path: ``runtime.send_path``). The vectorized backend is checked against it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from parsefl.aggregation import ScreeningAggregator
from parsefl.compressors import Choco
from parsefl.runtime.handshake import GossipPlan
from parsefl.runtime.screening import screened_merge
from parsefl.runtime.send_path import decode_message, encode_messages, tamper_messages
from parsefl.runtime.transport import Message

if TYPE_CHECKING:
    from parsefl.runtime.protocols import Engine


class ReferenceExecutor:
    """One agent at a time; every component travels as a message through the transport."""

    backend_name: ClassVar[str] = "ReferenceExecutor"

    def __init__(self, loop: Engine) -> None:
        self.loop = loop
        comm = loop.communication
        self.comm = None if comm is None or comm.plain else comm  # None: copies as they are
        self.choco = Choco(comm) if comm is not None and comm.error_feedback else None

    def train(self, phase: str | None) -> list[float]:
        losses = []
        for agent in self.loop.agents.values():
            if agent.id not in self.loop.online:  # offline agents neither train nor gossip
                continue
            agent.phase = phase
            losses.append(agent.train_local())
        return losses

    def gossip(self, plans: dict[int, GossipPlan], version: int = 0) -> None:
        """Send each planned component, then merge what arrived (all merges are computed from
        the pre-round values before any agent overwrites its own)."""
        agents, aggregator = self.loop.agents, self.loop.aggregator
        own = {(i, comp): agents[i].get_component(comp)
               for i, plan in plans.items() for comp in plan.paths}
        # Tensors are never modified in place after this point, so peers may share one copy.
        msgs = [
            Message(i, j, "params", own[i, comp], path, comp)
            for i, plan in plans.items()
            for comp, peers in plan.paths.items()
            for j, path in peers.items()
        ]
        adversary, checks = self.loop.adversary, self.loop.checks
        if adversary is not None and adversary.active(self.loop.round):
            msgs = tamper_messages(adversary, msgs, own, plans, self.loop.round)
        if self.comm is not None:
            msgs = encode_messages(self.comm, self.choco, msgs, own, self.loop.round,
                                   self.loop.plan_key)
        inbox = self.loop.transport.exchange(msgs)
        updates = []
        for i, plan in plans.items():
            received: dict[str, dict[int, dict]] = {}
            for msg in inbox.get(i, []):
                body = msg.body if self.comm is None else decode_message(self.comm, msg, own,
                                                                          checks)
                if (i, msg.component) in own and body is not None and checks.check(
                        own[i, msg.component], body, f"{msg.component} {msg.src}->{i}"):
                    received.setdefault(msg.component, {})[msg.src] = body
            for comp in plan.paths:
                args = (own[i, comp], received.get(comp, {}), plan.self_weight[comp],
                        plan.weights[comp])
                if isinstance(aggregator, ScreeningAggregator):  # config refuses choco here
                    merged = screened_merge(aggregator, agents[i], comp, *args, self.loop.round)
                else:
                    merge = aggregator.merge if self.choco is None else self.choco.merger(
                        aggregator, i, comp)  # error feedback: merges the public copies
                    merged = merge(*args)
                updates.append((agents[i], comp, merged))
        for agent, comp, merged in updates:
            agent.set_component(comp, merged)
        aggregator.end_round()

    def sync(self) -> None:
        """Agents are always current here."""

    def reload(self, ids: Sequence[int]) -> None:
        """Agents are the only copy here: nothing to reload."""

    def checkpoint_state(self) -> dict[str, list]:
        """Nothing beyond the agents (each keeps its own optimizer)."""
        return {"optimizers": []}

    def load_checkpoint_state(self, state: dict[str, list]) -> None:
        """Nothing to take back: the agents were restored whole."""
