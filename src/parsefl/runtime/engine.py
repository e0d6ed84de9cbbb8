"""The round engine: one round at a time, handshake, local training, exchange, merge. It talks
to the network only through the transport, decides nothing about what travels (the sharing
strategy does, keyed by its plan key) or how copies are merged (the aggregator does), and
leaves *how* agents are executed to an executor (``runtime.reference``: one agent at a time, or
stacked agents in the vectorized backend). The loop over rounds belongs to the caller (the run
driver). The contracts it keeps and relies on: ``runtime.protocols``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from parsefl.aggregation import Aggregator, build_aggregator
from parsefl.errors import ConfigError
from parsefl.overlays import make_overlay
from parsefl.overlays.base import Overlay
from parsefl.runtime.agent import Agent
from parsefl.runtime.checks import ReceiveChecks
from parsefl.runtime.diagnostics import gradient_cosine
from parsefl.runtime.handshake import GossipPlan, discover, plan_gossip
from parsefl.runtime.protocols import Executor, RoundStats
from parsefl.runtime.reference import ReferenceExecutor
from parsefl.runtime.schedules import (
    AlwaysOnline,
    ConstantModalities,
    MembershipSchedule,
    ModalitySchedule,
)
from parsefl.runtime.transport import Transport
from parsefl.runtime.warm_start import warm_start
from parsefl.sharing.base import Capability, SharingStrategy
from parsefl.topology import GraphSchedule

if TYPE_CHECKING:
    from parsefl.attacks import Adversary
    from parsefl.compressors import Communication

__all__ = ["RoundEngine", "RoundStats"]


class RoundEngine:
    """Runs one round of the local agents at a time (:meth:`step`). With the in-memory
    transport every agent is local; a distributed runtime hosts a subset per process behind
    the same engine.

    ``overlay`` is a registered overlay name (configured with ``hops`` and ``degree``) or an
    :class:`~parsefl.overlays.base.Overlay`; ``aggregator`` defaults to the gossip mean;
    ``modalities`` and ``membership`` default to constant schedules.
    """

    # Reuse gossip plans while the plan key stays the same. A runtime whose peers can vanish
    # mid-run turns this off, so that every process re-plans (and calls the transport) in
    # lockstep every round.
    cache_plans = True

    def __init__(
        self,
        agents: Sequence[Agent],
        strategy: SharingStrategy,
        topology: GraphSchedule,
        transport: Transport,
        overlay: str | Overlay = "induced",
        hops: int = 2,
        executor: Executor | None = None,
        degree: int = 2,
        *,
        aggregator: Aggregator | None = None,
        modalities: ModalitySchedule | None = None,
        membership: MembershipSchedule | None = None,
        checks: ReceiveChecks | None = None,
        adversary: Adversary | None = None,
        communication: Communication | None = None,
    ) -> None:
        if callable(getattr(strategy, "merge", None)):  # a rule written before aggregators
            raise ConfigError("method", f"strategy {strategy.name!r} defines merge(): merging "
                              "is an aggregator's job now (parsefl.aggregation, "
                              "aggregation.name)")
        self.agents = {a.id: a for a in agents}
        self.strategy = strategy
        self.topology = topology
        self.transport = transport
        self.overlay = overlay if isinstance(overlay, Overlay) else make_overlay(overlay, hops,
                                                                                 degree)
        self.aggregator = aggregator or build_aggregator("mean")
        self.modalities = modalities or ConstantModalities(
            {i: a.modalities for i, a in self.agents.items()})
        self.membership = membership or AlwaysOnline(self.agents)
        # Receive-side checks are always on; the adversary (None: nobody attacks) rewrites
        # what its agents send, in the send path of every executor.
        self.checks = checks or ReceiveChecks()
        self.adversary = adversary
        if adversary is not None:
            adversary.capture(list(self.agents.values()))
        # Compression and periods (None: every component as is, every round).
        self.communication = communication
        self.round = 0
        self.executor: Executor = executor or ReferenceExecutor(self)
        self._known: dict | None = None
        self._handshake_key: Hashable = None
        self._plan_key: Hashable = None
        self.plans: dict[int, GossipPlan] = {}
        self.plan_version = 0  # bumped whenever the plans are rebuilt (runtime.protocols)
        self.online: frozenset[int] = frozenset(self.agents)  # local agents online this round
        # Stragglers: (agent, round) -> local steps (None: the training config's).
        self.local_steps: Callable[[int, int], int | None] | None = None
        self._active: dict[int, frozenset[str]] = {}  # components at each agent's last round
        self._started = False

    @classmethod
    def from_engine(cls, template: RoundEngine, agents: Sequence[Agent],
                    transport: Transport) -> RoundEngine:
        """An engine with ``template``'s strategy, graph, overlay, aggregator and schedules
        over other ``agents`` and ``transport`` (e.g. one process's share of a built run)."""
        engine = cls(agents, template.strategy, template.topology, transport, template.overlay,
                     aggregator=template.aggregator, modalities=template.modalities,
                     membership=template.membership, checks=template.checks,
                     adversary=template.adversary, communication=template.communication)
        engine.local_steps = template.local_steps
        return engine

    @property
    def attackers(self) -> frozenset[int]:
        """Agents whose sent copies the adversary replaces (none for data poisoning)."""
        adv = self.adversary
        return adv.agents if adv is not None and not adv.attack.data_poisoning else frozenset()

    @property
    def plan_key(self) -> Hashable:
        """The key the plans were last made under: the handshake key and the strategy's
        ``plan_key(r)`` (the same in every process; see ``runtime.protocols``)."""
        return self._plan_key

    @property
    def radius(self) -> int:
        return self.overlay.radius

    def step(self, r: int) -> RoundStats:
        """Round ``r``: handshake (when a schedule or the plan key changed), local training,
        gossip; the bytes billed to the transport's meter this round."""
        self.prepare(r)
        self.round = r
        losses = self.executor.train(self.strategy.phase(r))
        tracked = any(a.track_gradients for a in self.agents.values())
        trained = [a for i, a in self.agents.items() if i in self.online]  # offline: stale
        cosine = gradient_cosine(trained, self.strategy, r) if tracked else {}
        self.gossip()
        loss = float(np.nanmean(losses)) if losses else float("nan")
        return RoundStats(r, loss, self.transport.take_link_bytes(), cosine)

    def handshake_key(self, r: int) -> Hashable:
        """Changes exactly when discovery must run again: a new graph, a change in the
        modalities the agents hold, or in who is online."""
        graph = None if self.topology.static else r
        return graph, self.modalities.key(r), self.membership.key(r)

    def prepare(self, r: int) -> None:
        """Handshake for round ``r``: discovery when the handshake key changed, then the gossip
        plans when it or the strategy's plan key changed (the strategy's answers depend on
        nothing else, so plans are reused otherwise)."""
        self.apply_schedules(r)
        caps = self.capabilities(r)
        hkey = self.handshake_key(r)
        new = self._known is None or hkey != self._handshake_key
        if new:
            # epoch r: a signed run's entries are made for this handshake (no replays)
            self._known = discover(caps, self.topology.at(r), self.transport, self.radius, r)
            self._handshake_key = hkey
        key = (hkey, self.strategy.plan_key(r))
        if new or key != self._plan_key or not self.plans or not self.cache_plans:
            self.plans = plan_gossip(caps, self._known, self.strategy, self.transport, r,
                                     self.overlay, self.topology.at(r))
            self._plan_key = key
            self.plan_version += 1
            self.planned()
        if new:  # every process sees the same keys: this exchange runs in lockstep
            warm_start(self, caps, self._known)  # runtime/warm_start.py
        self._active.update({i: frozenset(c.signatures) for i, c in caps.items()})
        self._started = True

    def planned(self) -> None:
        """Called when new plans are made, before anything is sent under them (a runtime that
        checks who may send what, e.g. the distributed one, learns the plans here)."""

    def apply_schedules(self, r: int) -> None:
        """Round ``r``'s modalities, online agents and local steps, onto the local agents."""
        held = self.modalities.at(r)
        self.online = self.membership.at(r) & frozenset(self.agents)
        for i, agent in self.agents.items():
            if tuple(held.get(i, agent.held)) != agent.held:
                agent.set_held(held[i])
            agent.steps = self.local_steps(i, r) if self.local_steps else None

    def arrive(self) -> None:
        """These agents join a run that is going on: every component they announce in their
        first round is new (``warming``), so they start it from their neighbours' copies."""
        self._started, self._active = True, {}

    def replay_schedules(self, rounds: int) -> None:
        """Resuming after ``rounds`` rounds: the agents hold what they held in the last one,
        and the engine knows what each had at its last round online (for warm starts)."""
        for t in range(rounds):
            self.apply_schedules(t)
            self._active.update({i: frozenset(self.agents[i].capability().signatures)
                                 for i in self.online})
            self._started = True

    def capabilities(self, r: int) -> dict[int, Capability]:
        """What the online local agents announce in round ``r``: the components they use with
        the modalities they hold, and which of them are new since their last round online
        (``warming``; an agent not online in the engine's first round is new entirely)."""
        caps = {}
        for i in sorted(self.membership.at(r) & frozenset(self.agents)):
            cap = self.agents[i].capability()
            before = self._active.get(i, frozenset() if self._started else None)
            warm = tuple(sorted(set(cap.signatures) - before)) if before is not None else ()
            caps[i] = replace(cap, warming=warm) if warm else cap
        return caps

    def gossip(self) -> None:
        """Exchange and merge the planned components (see ``prepare``) that are due this
        round (``communication`` periods: the others stay local and cost nothing)."""
        plans, version = self.plans, self.plan_version
        if self.communication is not None:
            plans, version = self.communication.due_plans(plans, version, self.round)
        self.executor.gossip(plans, version)

    def sync(self) -> None:
        self.executor.sync()
