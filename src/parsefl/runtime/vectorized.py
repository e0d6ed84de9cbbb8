"""The vectorized backend: agents with the same model signature train as one stacked model
(parameters stacked along an agent axis, one ``vmap`` over a functional call, one backward over
the sum of their losses), and each component's gossip runs the configured aggregator over the
stacked copies of its holders (``runtime.stacked_gossip``): one sparse mixing-matrix product
for a linear aggregator, one padded batched ``combine`` for a non-linear one. No Python loop
over agents in the hot path except drawing each agent's batch indices from its own seeded
generator (so both backends see the same batches: fixed local steps or whole local epochs, whose
agents of unequal data size take unequal numbers of steps, see ``runtime.stacked_group``).
"""

from __future__ import annotations

import contextlib
import ctypes
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, ClassVar

import torch

from parsefl.aggregation import ScreeningAggregator
from parsefl.compressors import like_of
from parsefl.config import TrainConfig
from parsefl.errors import ConfigError
from parsefl.runtime.agent import Agent
from parsefl.runtime.handshake import GossipPlan
from parsefl.runtime.meter import LinkMeter, payload_bytes
from parsefl.runtime.stacked_codec import make_codec
from parsefl.runtime.stacked_gossip import StackedMix, build_mix, pairwise
from parsefl.runtime.stacked_group import StackedGroup
from parsefl.runtime.vectorized_blocker import vectorized_blocker

if TYPE_CHECKING:
    from parsefl.runtime.protocols import Engine


def _trim_heap() -> None:
    """Hand back to the system the heap that stacking freed (the old groups' rows after a
    regroup, agents' own copies when they had any): glibc keeps freed small blocks otherwise."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _carry_optimizer(group: StackedGroup, rows: list[tuple[StackedGroup, int]]) -> None:
    """Restack the optimizer state of ``group``'s agents from their rows in old groups (a row
    without state yet starts from zero moments and a zero step count)."""
    for n in group.names:
        olds = [(src.optimizer.state.get(n), k) for src, k in rows]
        template = next((st for st, _ in olds if st), None)
        if template is None:
            continue
        group.optimizer.state[n] = {key: torch.stack([
            st[key][k].clone() if st else torch.zeros_like(first[0]) for st, k in olds])
            for key, first in template.items()}


class VectorizedExecutor:
    """Stacked training and stacked gossip; each Agent is a row of its group (its weights are
    views of the group's rows, always current; ``runtime.blueprint``)."""

    backend_name: ClassVar[str] = "VectorizedExecutor"

    def __init__(self, loop: Engine, train: TrainConfig) -> None:
        agents = list(loop.agents.values())
        blocker = vectorized_blocker(agents, loop.aggregator, train,
                                     communication=loop.communication,
                                     attacked=bool(loop.attackers))
        if blocker:
            raise ConfigError("runtime.backend", f"vectorized backend unavailable: {blocker}")
        self.loop, self.train_cfg = loop, train
        self.groups: list[StackedGroup] = []
        self._cache: tuple[int, list[StackedMix], Counter] | None = None
        self._recent: dict = {}  # earlier builds by version (periods alternate the plans)
        self._hats: dict = {}  # error feedback's public copies (runtime.stacked_codec)
        self._hats_key: object = None  # the plan key the public copies were made under
        self._regroup()

    def _held_key(self) -> tuple:
        return tuple(a.held for a in self.loop.agents.values())

    def _regroup(self) -> None:
        """Stack the agents with identical models *and* held modalities (an agent that lost
        a modality trains without it, so it leaves its group); per-agent optimizer state
        travels with each agent into its new group."""
        rows = {}
        if self.groups:
            rows = {a.id: (g, k) for g in self.groups for k, a in enumerate(g.agents)}
        by_key: dict[tuple, list[Agent]] = {}
        for agent in self.loop.agents.values():
            key = (agent.blueprint.key, agent.held)
            by_key.setdefault(key, []).append(agent)
        self.groups = [StackedGroup(members, self.train_cfg) for members in by_key.values()]
        for g in self.groups:
            if rows:
                _carry_optimizer(g, [rows[a.id] for a in g.agents])
        self.where = {a.id: (g, k) for g in self.groups for k, a in enumerate(g.agents)}
        self._grouped = self._held_key()
        self._cache, self._recent, self._hats = None, {}, {}
        _trim_heap()

    def reload(self, ids: Sequence[int]) -> None:
        """Nothing to take: agents' parameters changed from outside (a warm start) are views
        of their group's rows, written in place."""

    def train(self, phase: str | None) -> list[float]:
        if self._held_key() != self._grouped:
            self._regroup()
        track = any(a.track_gradients for a in self.loop.agents.values())
        online = self.loop.online
        losses: list[float] = []
        for g in self.groups:
            live = [a for a in g.agents if a.id in online]
            if not live:
                continue
            # Each agent's own batches, drawn exactly as the reference backend draws them.
            batches = [[idx for _, idx in a.batches()] if a.id in online else None
                       for a in g.agents]
            per_agent = g.train(phase, batches, track).tolist()
            for k, agent in enumerate(g.agents):
                if agent.id in online:
                    agent.record_training(per_agent[k], {n: v[k] for n, v in g.grad_sum.items()})
                    losses.append(per_agent[k])
        return losses

    def gossip(self, plans: dict[int, GossipPlan], version: int) -> None:
        if self._cache is None or self._cache[0] != version:
            if len(self._recent) > 16:
                self._recent = {}
            self._cache = self._recent.get(version) or (version, *self._build(plans))
            self._recent[version] = self._cache
        _, mixes, link_bytes = self._cache
        comm = self.loop.communication
        if self._hats_key != self.loop.plan_key:  # public copies restart with new plans
            self._hats, self._hats_key = {}, self.loop.plan_key
        screening = isinstance(self.loop.aggregator, ScreeningAggregator) and \
            self.loop.aggregator.batch > 0  # losses on the round's starting parameters
        for g in self.groups:
            g.before_gossip = {n: p.detach().clone() for n, p in g.params.items()} \
                if screening else None
        with torch.no_grad():
            for mix in mixes:
                mix.apply(self.loop.aggregator, self.loop.checks, self.loop.adversary,
                          self.loop.round, make_codec(comm, mix, self._hats))
        self.loop.aggregator.end_round()
        for g in self.groups:
            g.before_gossip, g.screening = None, None
        self.loop.transport.meter.add(link_bytes)

    def _build(self, plans: dict[int, GossipPlan]) -> tuple[list[StackedMix], Counter]:
        """One stacked gossip per (component, signature), and the bytes each round bills."""
        holders: dict[tuple[str, str], list[int]] = {}
        tariff = LinkMeter()  # what one round of these plans bills, by the meter's own rule
        comm = self.loop.communication
        for i, plan in plans.items():
            agent = self.loop.agents[i]
            weights = agent.weights()
            for comp, peers in plan.paths.items():
                holders.setdefault((comp, agent.capability().signatures[comp]), []).append(i)
                tensors = {n: weights[n] for n in agent.component_params[comp]}
                size = payload_bytes(tensors) if comm is None or comm.plain else \
                    comm.bytes(comp, like_of(tensors))  # as encoded
                for path in peers.values():
                    tariff.record(path, size)
        mixes = []
        for (comp, _), ids in holders.items():
            order, parts = self.holder_rows(ids)
            names = self.loop.agents[order[0]].component_params[comp]
            mixes.append(build_mix(comp, names, order, parts, plans, self.loop.aggregator,
                                   self.loop.attackers, padded=pairwise(self.loop.checks)))
        return mixes, tariff.take()

    def holder_rows(self, ids: Iterable[int]) -> tuple[list[int], list[tuple[StackedGroup,
                                                                           list[int]]]]:
        """A component's holders ``ids`` group-major (the stacked merge's row order), and per
        training group the rows of its stacked parameters they occupy."""
        order = sorted(ids, key=lambda i: (self.groups.index(self.where[i][0]),
                                           self.where[i][1]))
        parts = [(g, rows) for g in self.groups
                 if (rows := [self.where[i][1] for i in order if self.where[i][0] is g])]
        return order, parts

    def sync(self) -> None:
        """Nothing to copy: each agent's parameters are views of its group's rows."""

    def checkpoint_state(self) -> dict[str, list]:
        """What resuming needs beyond the agents (whose parameters are their group's rows):
        each group's stacked optimizer state."""
        return {"optimizers": [g.optimizer.state_dict() for g in self.groups]}

    def load_checkpoint_state(self, state: dict[str, list]) -> None:
        """Restack the (restored) agents' parameters and load each group's optimizer (grouped
        by the modalities the agents held when saved: the caller applies that round's
        schedules first)."""
        if self._held_key() != self._grouped:
            self.groups = []  # the agents hold the restored values: regroup without a sync
            self._regroup()
        for g, opt in zip(self.groups, state["optimizers"], strict=True):
            g.optimizer.load_state_dict(opt)  # the parameters: views, restored in place
