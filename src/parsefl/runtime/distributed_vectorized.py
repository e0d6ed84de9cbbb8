"""The vectorized backend inside a distributed worker: the process's agents train stacked (as
in the simulator's vectorized backend), components between two agents of this process mix in
stacked form, and components that cross a process boundary travel through the transport
(gloo or gRPC) as ordinary ``params`` messages, one per (sender, receiver, component).

A component's gossip is the simulator's stacked gossip (``runtime.stacked_gossip.build_mix``)
over the local holders *plus* extra rows (``runtime.remote_rows``): the copies that arrived
from remote senders, and while an adversary is active, each attacker's crafted copy per
receiver. Extra rows keep their own value (an identity row), so the local holders' rows see
exactly the reference receiver's weighted sum. A planned remote copy that did not arrive
(lost process, rejected message) gives its weight back by the aggregator's rule, as the
reference executor does; that round's mix is built for the copies that arrived.

What crosses processes is what the reference sender sends (``runtime.reference.ReferenceExecutor``):
an attacker's copy crafted from what this process sends the same receiver, then encoded by the
``communication:`` policy (with error feedback: the difference to the sender's public copy,
the stacked codec's row). The local mix encodes the local holders' rows (``make_codec``) and
takes the extra rows as decoded. Every message is billed once: by the transport when its
receiver is remote, here otherwise.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import torch

from parsefl.aggregation import Aggregator, ScreeningAggregator
from parsefl.compressors import like_of
from parsefl.runtime.handshake import GossipPlan
from parsefl.runtime.meter import LinkMeter, payload_bytes
from parsefl.runtime.remote_rows import Inbox, Row, routes, row_plans, split
from parsefl.runtime.send_path import tamper_messages
from parsefl.runtime.stacked_codec import make_codec
from parsefl.runtime.stacked_gossip import StackedMix, build_mix, pairwise
from parsefl.runtime.stacked_merge import rule_of
from parsefl.runtime.transport import Message
from parsefl.runtime.vectorized import VectorizedExecutor
from parsefl.types import Tensors

Crafted = dict[tuple[int, str, int], Tensors]  # (attacker, component, receiver) -> its copy
RECENT = 4  # builds kept (periods alternate the plans; the engine re-plans every round)


@dataclass
class _Component:
    """One (component, signature)'s gossip in this process."""

    comp: str
    names: list[str]
    holders: list[int]  # the local holders, group-major (the mix's first rows)
    parts: list  # (group or inbox, rows), as build_mix wants them
    plans: dict[int, GossipPlan]  # the local holders' plans over row ids
    route: dict[tuple[int, int], Row]  # (sender, local holder) -> row of its copy
    remote: frozenset[Row]  # rows filled from messages (the others are local)
    inbox: Inbox | None
    mix: StackedMix
    degraded: tuple[frozenset, StackedMix] | None = None  # the mix for some missing copies

    @property
    def order(self) -> list[Row]:
        return self.holders + (self.inbox.rows if self.inbox is not None else [])


@dataclass
class _Build:
    """What one set of plans derives: the mixes, what to send, the bytes billed here."""

    parts: list[_Component]
    out: list[tuple[int, str, int, tuple[int, ...]]]  # (src, comp, dst, path) to send
    local_bytes: Counter
    row: dict[tuple[int, str], tuple[_Component, int]] = field(default_factory=dict)


class DistributedVectorizedExecutor(VectorizedExecutor):
    """Stacked training of one process's agents; stacked gossip in memory, messages across
    processes. ``loop`` is the process's engine (its transport is the distributed one)."""

    _built: list[tuple[dict[int, GossipPlan], bool, _Build]]  # recent builds, newest last

    def _regroup(self) -> None:
        super()._regroup()
        self._built = []  # the mixes point at the old groups' stacked rows

    def gossip(self, plans: dict[int, GossipPlan], version: int) -> None:
        if self._hats_key != self.loop.plan_key:  # public copies restart with new plans
            self._hats, self._hats_key = {}, self.loop.plan_key
        adversary = self.loop.adversary
        attacking = bool(self.loop.attackers) and adversary.active(self.loop.round)
        build = self._build_for(plans, attacking)
        aggregator = self.loop.aggregator
        screening = isinstance(aggregator, ScreeningAggregator) and aggregator.batch > 0
        for g in self.groups:  # the screen's losses use the round's starting parameters
            g.before_gossip = {n: p.detach().clone() for n, p in g.params.items()} \
                if screening else None
        with torch.no_grad():
            crafted = self._crafted(plans) if attacking else {}
            honest: dict[tuple[int, str], Tensors] = {}
            sent = [Message(i, j, "params", self._sent(build, i, comp, j, crafted, honest),
                            path, comp) for i, comp, j, path in build.out]
            inbox = self.loop.transport.exchange(sent)
            for part in build.parts:
                self._mix_one(part, inbox, crafted)
        aggregator.end_round()  # trust: this process's receivers, as in the simulator
        for g in self.groups:
            g.before_gossip, g.screening = None, None
        self.loop.transport.meter.add(build.local_bytes)

    def _build_for(self, plans: dict[int, GossipPlan], attacking: bool) -> _Build:
        """The build for these plans' *content* (the distributed engine re-plans every round,
        so versions always differ)."""
        for old, was, build in self._built:
            if was == attacking and old == plans:
                return build
        build = self._build_all(plans, attacking)
        self._built = [*self._built[-(RECENT - 1):], ({i: plans[i] for i in plans}, attacking,
                                                       build)]
        return build

    def _body(self, i: int, comp: str) -> dict[str, torch.Tensor]:
        g, k = self.where[i]
        return {n: g.params[n][k] for n in self.loop.agents[i].component_params[comp]}

    def _crafted(self, plans: Mapping[int, GossipPlan]) -> Crafted:
        """Each local attacker's copy for each receiver, crafted as the reference sender
        crafts it: over the receiver's own copy (when local) and the copies this process
        sends that receiver."""
        attackers = self.loop.attackers
        hit = {(j, c) for i, p in plans.items() if i in attackers
               for c, peers in p.paths.items() for j in peers}
        own = {(i, c): self._body(i, c) for i, p in plans.items() for c in p.paths}
        msgs = [Message(i, j, "params", own[i, c], path, c) for i, p in plans.items()
                for c, peers in p.paths.items() for j, path in peers.items() if (j, c) in hit]
        out = tamper_messages(self.loop.adversary, msgs, own, plans, self.loop.round)
        return {(m.src, m.component, m.dst): m.body for m in out if m.src in attackers}

    def _sent(self, build: _Build, i: int, comp: str, j: int, crafted: Crafted,
              honest: dict[tuple[int, str], Tensors]) -> Tensors:
        """What ``i`` sends ``j`` of ``comp``, as the reference sender encodes it (an honest
        copy once per (sender, component); error feedback: its difference to the public
        copy, before this round moves it)."""
        comm, r = self.loop.communication, self.loop.round
        plain = comm is None or comm.plain
        if (i, comp, j) in crafted:
            body = crafted[i, comp, j]
            return body if plain else comm.encode(comp, i, r, body)
        if (i, comp) not in honest:
            x = self._body(i, comp)
            if not plain and comm.error_feedback:
                part, row = build.row[i, comp]
                hat = make_codec(comm, part.mix, self._hats).hat
                x = {n: t - hat[n][row].view_as(t) for n, t in x.items()}
            honest[i, comp] = x if plain else comm.encode(comp, i, r, x)
        return honest[i, comp]

    def _mix_one(self, part: _Component, inbox: Mapping[int, list[Message]],
                 crafted: Crafted) -> None:
        bodies: dict[Row, Tensors] = {}
        arrived: dict[int, set[Row]] = {}
        for i in part.holders:
            for msg in inbox.get(i, ()):
                row = part.route.get((msg.src, i))
                if msg.component == part.comp and row in part.remote:
                    bodies.setdefault(row, msg.body)
                    arrived.setdefault(i, set()).add(row)
        for (j, comp, i), body in crafted.items():
            if comp == part.comp and (j, i) in part.route and i in self.loop.agents:
                bodies[part.route[j, i]] = self._decoded(comp, j, body)
        if part.inbox is not None:
            part.inbox.fill(bodies)
        missing = frozenset((i, row) for i in part.holders
                            for row in part.plans[i].weights[part.comp]
                            if row in part.remote and row not in arrived.get(i, ()))
        mix = part.mix if not missing else self._degraded(part, arrived, missing)
        codec = make_codec(self.loop.communication, mix, self._hats)
        mix.apply(self.loop.aggregator, self.loop.checks, None, self.loop.round,
                  split(codec, len(part.holders), part.inbox))

    def _decoded(self, comp: str, sender: int, body: Tensors) -> Tensors:
        """A local attacker's copy as its (local) receiver decodes it."""
        comm = self.loop.communication
        if comm is None or comm.plain:
            return body
        return comm.decode(comp, comm.encode(comp, sender, self.loop.round, body),
                           like_of(body))

    def _degraded(self, part: _Component, arrived: Mapping[int, set[Row]],
                  missing: frozenset) -> StackedMix:
        """The mix when some planned remote copies did not arrive (cached while the same
        ones are missing, e.g. a lost process)."""
        if part.degraded is None or part.degraded[0] != missing:
            view = _folded(part.plans, part.comp, part.order, {i for i, _ in missing},
                           arrived, set(part.remote), self.loop.aggregator)
            mix = build_mix(part.comp, part.names, part.order, part.parts, view,
                            self.loop.aggregator, padded=pairwise(self.loop.checks))
            part.degraded = (missing, mix)
        return part.degraded[1]

    def _build_all(self, plans: dict[int, GossipPlan], attacking: bool) -> _Build:
        """Per (component, signature): the local holders' stacked mix with extra rows; the
        messages to send across processes; the bytes billed here (local receivers)."""
        holders: dict[tuple[str, str], list[int]] = {}
        tariff, out = LinkMeter(), []
        comm = self.loop.communication
        for i, plan in plans.items():
            agent = self.loop.agents[i]
            weights = agent.weights()
            for comp, peers in plan.paths.items():
                holders.setdefault((comp, agent.capability().signatures[comp]), []).append(i)
                tensors = {n: weights[n] for n in agent.component_params[comp]}
                size = payload_bytes(tensors) if comm is None or comm.plain else \
                    comm.bytes(comp, like_of(tensors))  # as encoded
                for j, path in peers.items():
                    if j in self.loop.agents:
                        tariff.record(path, size)
                    else:  # the transport bills it when it sends it
                        out.append((i, comp, j, path))
        per_pair = self.loop.attackers if attacking else frozenset()
        parts = [self._component(comp, ids, plans, per_pair) for (comp, _), ids in holders.items()]
        build = _Build(parts, out, tariff.take())
        build.row = {(i, p.comp): (p, k) for p in parts for k, i in enumerate(p.holders)}
        return build

    def _component(self, comp: str, ids: list[int], plans: Mapping[int, GossipPlan],
                   per_pair: frozenset[int]) -> _Component:
        order, holders = self.holder_rows(ids)
        parts: list = list(holders)
        names = list(self.loop.agents[order[0]].component_params[comp])
        route = routes(plans, comp, order, per_pair, len(self.loop.transport.owner))
        extra = sorted(set(route.values()) - set(order))
        remote = frozenset(row for (j, _), row in route.items() if j not in self.loop.agents)
        inbox = None
        if extra:
            g, k = self.where[order[0]]
            inbox = Inbox({n: g.params[n][k] for n in names}, extra)
            parts.append((inbox, list(range(len(extra)))))
        mine_plans = row_plans(plans, comp, order, route)
        full = {**mine_plans, **{row: _self_only(comp) for row in extra}}
        mix = build_mix(comp, names, order + extra, parts, full, self.loop.aggregator,
                        padded=pairwise(self.loop.checks))
        return _Component(comp, names, order, parts, mine_plans, route, remote, inbox, mix)


def _self_only(comp: str) -> GossipPlan:
    """A remote sender's row: it keeps its own copy (its merge happens in its own process)."""
    return GossipPlan({comp: {}}, {comp: 1.0}, {comp: {}})


def _folded(plans: Mapping[int, GossipPlan], comp: str, order: list[int], short: set[int],
            arrived: Mapping[int, set[int]], remote: set[int],
            aggregator: Aggregator) -> dict[int, GossipPlan]:
    """Plans over the copies that arrived: for each local holder in ``short``, the weights
    the aggregator gives when only those remote copies came (local copies always come)."""
    rule = rule_of(aggregator)
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
