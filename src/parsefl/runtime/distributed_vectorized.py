"""The vectorized backend inside a distributed worker: the process's agents train stacked (as
in the simulator's vectorized backend), components between two agents of this process mix in
stacked form, and components that cross a process boundary travel through the transport
(gloo or gRPC) as ordinary ``params`` messages, one per (sender, receiver, component).

A component's gossip is the simulator's stacked gossip (``runtime.stacked_gossip.build_mix``)
over the local holders *plus* one extra row per remote sender: the copies that arrived are
stacked into those rows (an ``_Inbox``), which keep their own value (an identity row), so the
local holders' rows see exactly the simulator's weighted sum. A planned remote copy that did
not arrive (lost process, rejected message) gives its weight back by the aggregator's rule,
as the reference executor does; that round's mix is built for the copies that arrived.
Every message is billed once: by the transport when its receiver is remote, here otherwise.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from parsefl.aggregation import Aggregator, LinearAggregator, fold_missing
from parsefl.config import TrainConfig
from parsefl.runtime.handshake import GossipPlan
from parsefl.runtime.meter import LinkMeter, payload_bytes
from parsefl.runtime.stacked_gossip import StackedMix, build_mix
from parsefl.runtime.transport import Message
from parsefl.runtime.vectorized import VectorizedExecutor

if TYPE_CHECKING:
    from parsefl.runtime.loop import RoundEngine


class _Inbox:
    """The remote copies of one component, stacked (``stacked_gossip.Stacked``)."""

    def __init__(self, like: Mapping[str, torch.Tensor], senders: list[int]) -> None:
        self.senders = senders
        self.params = {n: t.new_zeros((len(senders), *t.shape)) for n, t in like.items()}

    def fill(self, copies: Mapping[int, Mapping[str, torch.Tensor]]) -> None:
        for k, j in enumerate(self.senders):
            body = copies.get(j)
            for n, t in self.params.items():
                if body is None:
                    t[k].zero_()  # not arrived: its weight goes back to the receivers' own
                else:
                    t[k].copy_(body[n])


@dataclass
class _Component:
    """One (component, signature)'s gossip in this process."""

    comp: str
    names: list[str]
    order: list[int]  # local holders (group-major), then the remote senders
    parts: list  # (group or inbox, rows), as build_mix wants them
    inbox: _Inbox
    mix: StackedMix
    degraded: tuple[frozenset, StackedMix] | None = None  # the mix for some missing copies


class DistributedVectorizedExecutor(VectorizedExecutor):
    """Stacked training of one process's agents; stacked gossip in memory, messages across
    processes. ``loop`` is the process's engine (its transport is the distributed one)."""

    backend_name = "VectorizedExecutor"  # records (results.json dynamics) name the backend

    def __init__(self, loop: RoundEngine, train: TrainConfig) -> None:
        super().__init__(loop, train)
        self._plans: dict[int, GossipPlan] | None = None
        self._parts: list[_Component] = []
        self._out: list[tuple[int, str, int, tuple[int, ...]]] = []  # (src, comp, dst, path)
        self._local_bytes: Counter = Counter()

    def _regroup(self) -> None:
        super()._regroup()
        self._plans = None  # the mixes point at the old groups' stacked rows

    def gossip(self, plans: dict[int, GossipPlan], version: int) -> None:
        # The distributed engine re-plans every round (lost peers): rebuild only when the
        # plans' content changed, not their version.
        if self._plans != plans:
            self._build_all(plans)
            self._plans = {i: plans[i] for i in plans}
        with torch.no_grad():
            sent = [Message(i, j, "params", self._body(i, comp), path, comp)
                    for i, comp, j, path in self._out]
            inbox = self.loop.transport.exchange(sent)
            for part in self._parts:
                self._mix_one(part, plans, inbox)
        self.loop.transport.meter.add(self._local_bytes)

    def _body(self, i: int, comp: str) -> dict[str, torch.Tensor]:
        g, k = self.where[i]
        return {n: g.params[n][k] for n in self.loop.agents[i].component_params[comp]}

    def _mix_one(self, part: _Component, plans: Mapping[int, GossipPlan],
                 inbox: Mapping[int, list[Message]]) -> None:
        copies: dict[int, dict[str, torch.Tensor]] = {}
        arrived: dict[int, set[int]] = {}
        for i in part.order[: len(part.order) - len(part.inbox.senders)]:
            for msg in inbox.get(i, ()):
                if msg.component == part.comp:
                    copies.setdefault(msg.src, msg.body)
                    arrived.setdefault(i, set()).add(msg.src)
        part.inbox.fill(copies)
        missing = frozenset((i, j) for i in part.order if i in plans
                            for j in plans[i].weights[part.comp]
                            if j in part.inbox.senders and j not in arrived.get(i, ()))
        mix = part.mix if not missing else self._degraded(part, plans, arrived, missing)
        mix.apply(self.loop.aggregator, self.loop.checks, None, self.loop.round)

    def _degraded(self, part: _Component, plans: Mapping[int, GossipPlan],
                  arrived: Mapping[int, set[int]], missing: frozenset) -> StackedMix:
        """The mix when some planned remote copies did not arrive (cached while the same
        ones are missing, e.g. a lost process)."""
        if part.degraded is None or part.degraded[0] != missing:
            view = _folded(plans, part.comp, part.order, {i for i, _ in missing}, arrived,
                           set(part.inbox.senders), self.loop.aggregator)
            mix = build_mix(part.comp, part.names, part.order, part.parts, view,
                            self.loop.aggregator)
            part.degraded = (missing, mix)
        return part.degraded[1]

    def _build_all(self, plans: dict[int, GossipPlan]) -> None:
        """Per (component, signature): the local holders' stacked mix with remote rows; the
        messages to send across processes; the bytes billed here (local receivers)."""
        holders: dict[tuple[str, str], list[int]] = {}
        tariff, out = LinkMeter(), []
        for i, plan in plans.items():
            agent = self.loop.agents[i]
            for comp, peers in plan.paths.items():
                holders.setdefault((comp, agent.capability().signatures[comp]), []).append(i)
                size = payload_bytes({n: agent.model.get_parameter(n)
                                      for n in agent.component_params[comp]})
                for j, path in peers.items():
                    if j in self.loop.agents:
                        tariff.record(path, size)
                    else:  # the transport bills it when it sends it
                        out.append((i, comp, j, path))
        self._out, self._local_bytes = out, tariff.take()
        self._parts = [self._component(comp, ids, plans) for (comp, _), ids in holders.items()]

    def _component(self, comp: str, ids: list[int],
                   plans: Mapping[int, GossipPlan]) -> _Component:
        order = sorted(ids, key=lambda i: (self.groups.index(self.where[i][0]),
                                           self.where[i][1]))
        parts: list = []
        for g in self.groups:
            mine = [self.where[i][1] for i in order if self.where[i][0] is g]
            if mine:
                parts.append((g, mine))
        names = list(self.loop.agents[order[0]].component_params[comp])
        senders = sorted({j for i in order for j in plans[i].weights[comp]
                          if j not in self.loop.agents})
        g, k = self.where[order[0]]
        inbox = _Inbox({n: g.params[n][k] for n in names}, senders)
        if senders:
            parts.append((inbox, list(range(len(senders)))))
        full = {**{i: plans[i] for i in order}, **{j: _self_only(comp) for j in senders}}
        mix = build_mix(comp, names, order + senders, parts, full, self.loop.aggregator)
        return _Component(comp, names, order + senders, parts, inbox, mix)


def _self_only(comp: str) -> GossipPlan:
    """A remote sender's row: it keeps its own copy (its merge happens in its own process)."""
    return GossipPlan({comp: {}}, {comp: 1.0}, {comp: {}})


def _folded(plans: Mapping[int, GossipPlan], comp: str, order: list[int], short: set[int],
            arrived: Mapping[int, set[int]], remote: set[int],
            aggregator: Aggregator) -> dict[int, GossipPlan]:
    """Plans over the copies that arrived: for each local holder in ``short``, the weights
    the aggregator gives when only those remote copies came (local copies always come)."""
    rule = aggregator.mixing_weights if isinstance(aggregator, LinearAggregator) \
        else fold_missing
    view = {}
    for i in order:
        if i not in plans:
            view[i] = _self_only(comp)
            continue
        plan = plans[i]
        if i in short:
            came: Collection[int] = {j for j in plan.weights[comp]
                                     if j not in remote or j in arrived.get(i, ())}
            own, w = rule(plan.self_weight[comp], plan.weights[comp], came)
            plan = GossipPlan({comp: {j: plan.paths[comp][j] for j in w}}, {comp: own},
                              {comp: dict(w)})
        view[i] = plan
    return view
