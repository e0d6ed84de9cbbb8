"""The vectorized backend: agents with the same model signature train as one stacked model
(parameters stacked along an agent axis, one ``vmap`` over a functional call, one backward over
the sum of their losses), and each component's gossip runs the configured aggregator over the
stacked copies of its holders (``runtime.stacked_gossip``): one sparse mixing-matrix product
for a linear aggregator, one padded batched ``combine`` for a non-linear one. No Python loop
over agents in the hot path except drawing each agent's batch indices from its own seeded
stream (so both backends see the same batches).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.func import functional_call

from parsefl.compressors import like_of
from parsefl.config import LossConfig, TrainConfig
from parsefl.errors import ConfigError
from parsefl.model.base import signature
from parsefl.runtime.agent import Agent, make_optimizer
from parsefl.runtime.handshake import GossipPlan
from parsefl.runtime.meter import LinkMeter, payload_bytes
from parsefl.runtime.stacked_codec import make_codec
from parsefl.runtime.stacked_gossip import StackedMix, build_mix
from parsefl.runtime.vectorized_blocker import (  # noqa: F401  (re-exported)
    Blocker,
    vectorizable,
    vectorized_blocker,
)

if TYPE_CHECKING:
    from parsefl.runtime.loop import RoundEngine


class _LossOf(nn.Module):
    """``forward(x, y)`` = the wrapped model's training loss, so that ``functional_call`` can
    evaluate it with any (stacked-slice) parameters."""

    def __init__(self, model: nn.Module, cfg: LossConfig) -> None:
        super().__init__()
        self.model, self.cfg, self.phase = model, cfg, None

    def forward(self, x: dict[str, torch.Tensor], y: torch.Tensor) -> torch.Tensor:
        return self.model.loss(x, y, self.cfg, self.phase)[0]


class _Group:
    """Agents with identical models: stacked parameters, padded data, one optimizer."""

    def __init__(self, agents: list[Agent], train: TrainConfig) -> None:
        self.agents = agents
        first = agents[0]
        self.wrapper = _LossOf(first.model, first.loss_cfg)
        self.names = [n for n, _ in first.model.named_parameters()]
        per_agent = [dict(a.model.named_parameters()) for a in agents]
        self.params = {n: torch.stack([p[n].detach() for p in per_agent]).requires_grad_(
            per_agent[0][n].requires_grad) for n in self.names}  # frozen trunks stay frozen
        self.optimizer = make_optimizer(list(self.params.values()), train)
        n_max = max(a.n_samples for a in agents)
        self.x = {m: _pad([a.x[m] for a in agents], n_max) for m in first.held}
        self.y = _pad([a.y for a in agents], n_max)
        self.rows = torch.arange(len(agents), device=self.y.device)[:, None]
        self.loss = torch.vmap(self._one, randomness="different")
        self.grad_sum: dict[str, torch.Tensor] = {}

    def _one(self, params: dict, x: dict, y: torch.Tensor) -> torch.Tensor:
        return functional_call(self.wrapper, {"model." + k: v for k, v in params.items()},
                               (x, y))

    def train(self, phase: str | None, steps: list[int], batch: int,
              track: bool) -> torch.Tensor:
        """``max(steps)`` stacked steps, agent k taking part in its first ``steps[k]`` (0:
        offline): in a step an agent sits out, it draws no batch and its parameters and
        optimizer moments are put back afterwards (its row is masked out)."""
        self.wrapper.phase = phase
        self.wrapper.train()  # evaluation leaves the model in eval mode (dropout off)
        zero = torch.zeros(batch, dtype=torch.long)
        idx = torch.stack([torch.stack([a.stream.take(batch) if k < steps[j] else zero
                                        for j, a in enumerate(self.agents)])
                           for k in range(max(steps))]).to(self.y.device)  # (steps, G, B)
        total = torch.zeros(len(self.agents), device=self.y.device)
        self.grad_sum = {}
        for k in range(max(steps)):
            off = [j for j, n in enumerate(steps) if n <= k]
            saved = self._rows(off) if off else None
            xb = {m: v[self.rows, idx[k]] for m, v in self.x.items()}
            losses = self.loss(self.params, xb, self.y[self.rows, idx[k]])
            self.optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()  # agents are independent: each gets its own gradient
            if track:
                for n, p in self.params.items():
                    if p.grad is not None:
                        prev = self.grad_sum.get(n)
                        self.grad_sum[n] = p.grad.clone() if prev is None else prev + p.grad
            self.optimizer.step()
            if saved is not None:
                self._restore(off, saved)
            live = torch.tensor([n > k for n in steps], device=self.y.device)
            total += torch.where(live, losses.detach(), 0.0)
        return total / torch.tensor([max(1, n) for n in steps], device=self.y.device)

    def _rows(self, rows: list[int]) -> dict[str, tuple[torch.Tensor, dict]]:
        """Copies of ``rows`` of every stacked parameter and its per-agent optimizer tensors
        (a shared step counter has no rows: with Adam, a sitting-out agent's bias correction
        still advances with its group)."""
        out = {}
        for n, p in self.params.items():
            state = self.optimizer.state.get(p, {})
            out[n] = (p[rows].detach().clone(), {key: v[rows].clone() for key, v in state.items()
                                                 if self._per_agent(v)})
        return out

    def _per_agent(self, v: object) -> bool:
        return torch.is_tensor(v) and v.dim() > 0 and v.shape[0] == len(self.agents)

    def _restore(self, rows: list[int], saved: dict[str, tuple[torch.Tensor, dict]]) -> None:
        index = torch.tensor(rows, device=self.y.device)
        with torch.no_grad():
            for n, p in self.params.items():
                values, moments = saved[n]
                p.index_copy_(0, index, values)
                for key, v in self.optimizer.state.get(p, {}).items():
                    if self._per_agent(v):  # a moment created in this step starts at zero
                        v.index_copy_(0, index, moments.get(key, torch.zeros_like(v[rows])))


def _carry_optimizer(group: _Group, rows: list[tuple[_Group, int]]) -> None:
    """Restack the optimizer state of ``group``'s agents from their rows in old groups (a row
    without state yet starts from zero moments; a shared step counter takes the largest)."""
    for n in group.names:
        olds = [(src.optimizer.state.get(src.params[n], {}), src, k) for src, k in rows]
        template = next((st for st, _, _ in olds if st), None)
        if template is None:
            continue
        state = {}
        for key, first in template.items():
            per_row = [st.get(key) for st, _, _ in olds]
            if torch.is_tensor(first) and first.dim():
                state[key] = torch.stack([
                    v[k] if v is not None and src._per_agent(v) else torch.zeros_like(first[0])
                    for v, (_, src, k) in zip(per_row, olds, strict=True)])
            else:
                state[key] = max((v for v in per_row if v is not None), key=float)
                state[key] = state[key].clone() if torch.is_tensor(state[key]) else state[key]
        group.optimizer.state[group.params[n]] = state


def _pad(tensors: list[torch.Tensor], n: int) -> torch.Tensor:
    out = tensors[0].new_zeros((len(tensors), n, *tensors[0].shape[1:]))
    for k, t in enumerate(tensors):
        out[k, : t.shape[0]] = t
    return out


class VectorizedExecutor:
    """Stacked training and stacked gossip; the Agent objects are brought up to date by
    ``sync`` (before evaluation and checkpoints)."""

    def __init__(self, loop: RoundEngine, train: TrainConfig) -> None:
        agents = list(loop.agents.values())
        blocker = vectorized_blocker(agents, loop.aggregator, train,
                                     communication=loop.communication,
                                     attacked=bool(loop.attackers))
        if blocker:
            raise ConfigError("runtime.backend", f"vectorized backend unavailable: {blocker}")
        self.loop, self.train_cfg = loop, train
        self.groups: list[_Group] = []
        self._cache: tuple[int, list[StackedMix], Counter] | None = None
        self._recent: dict = {}  # earlier builds by version (periods alternate the plans)
        self._hats: dict = {}  # error feedback's public copies (runtime.stacked_codec)
        self._epoch: object = None
        self._regroup()

    def _held_key(self) -> tuple:
        return tuple(a.held for a in self.loop.agents.values())

    def _regroup(self) -> None:
        """Stack the agents with identical models *and* held modalities (an agent that lost
        a modality trains without it, so it leaves its group); per-agent optimizer state
        travels with each agent into its new group."""
        rows = {}
        if self.groups:
            self.sync()
            rows = {a.id: (g, k) for g in self.groups for k, a in enumerate(g.agents)}
        by_key: dict[tuple, list[Agent]] = {}
        for agent in self.loop.agents.values():
            names = [n for n, _ in agent.model.named_parameters()]
            key = (type(agent.model).__name__, agent.modalities, agent.held,
                   signature(agent.model, names))
            by_key.setdefault(key, []).append(agent)
        self.groups = [_Group(members, self.train_cfg) for members in by_key.values()]
        for g in self.groups:
            if rows:
                _carry_optimizer(g, [rows[a.id] for a in g.agents])
        self.where = {a.id: (g, k) for g in self.groups for k, a in enumerate(g.agents)}
        self._grouped = self._held_key()
        self._cache, self._recent, self._hats = None, {}, {}

    def reload(self, ids: Sequence[int]) -> None:
        """Take agents ``ids``' parameters (changed from outside: a warm start)."""
        with torch.no_grad():
            for i in ids:
                g, k = self.where[i]
                params = dict(self.loop.agents[i].model.named_parameters())
                for n in g.names:
                    g.params[n][k] = params[n]

    def train(self, phase: str | None) -> list[float]:
        if self._held_key() != self._grouped:
            self._regroup()
        track = any(a.track_gradients for a in self.loop.agents.values())
        batch, online = self.train_cfg.batch_size, self.loop.online
        losses: list[float] = []
        for g in self.groups:
            live = [a for a in g.agents if a.id in online]
            if not live:
                continue
            default = self.train_cfg.local_steps or 1
            steps = [(a.steps or default) if a.id in online else 0 for a in g.agents]
            per_agent = g.train(phase, steps, batch, track).tolist()
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
        if self._epoch != self.loop.plan_epoch:  # public copies restart with new plans
            self._hats, self._epoch = {}, self.loop.plan_epoch
        with torch.no_grad():
            for mix in mixes:
                mix.apply(self.loop.aggregator, self.loop.checks, self.loop.adversary,
                          self.loop.round, make_codec(comm, mix, self._hats))
        self.loop.transport.meter.add(link_bytes)

    def _build(self, plans: dict[int, GossipPlan]) -> tuple[list[StackedMix], Counter]:
        """One stacked gossip per (component, signature), and the bytes each round bills."""
        holders: dict[tuple[str, str], list[int]] = {}
        tariff = LinkMeter()  # what one round of these plans bills, by the meter's own rule
        comm = self.loop.communication
        for i, plan in plans.items():
            agent = self.loop.agents[i]
            for comp, peers in plan.paths.items():
                holders.setdefault((comp, agent.capability().signatures[comp]), []).append(i)
                tensors = {n: agent.model.get_parameter(n) for n in agent.component_params[comp]}
                size = payload_bytes(tensors) if comm is None or comm.plain else \
                    comm.bytes(comp, like_of(tensors))  # as encoded
                for path in peers.values():
                    tariff.record(path, size)
        mixes = []
        for (comp, _), ids in holders.items():
            order = sorted(ids, key=lambda i: (self.groups.index(self.where[i][0]),
                                               self.where[i][1]))
            parts: list[tuple[_Group, list[int]]] = []
            for g in self.groups:
                mine = [self.where[i][1] for i in order if self.where[i][0] is g]
                if mine:
                    parts.append((g, mine))
            names = self.loop.agents[order[0]].component_params[comp]
            mixes.append(build_mix(comp, names, order, parts, plans, self.loop.aggregator,
                                   self.loop.attackers))
        return mixes, tariff.take()

    def sync(self) -> None:
        with torch.no_grad():
            for g in self.groups:
                for k, agent in enumerate(g.agents):
                    params = dict(agent.model.named_parameters())
                    for n in g.names:
                        params[n].copy_(g.params[n][k])

    def checkpoint_state(self) -> dict[str, list]:
        """What resuming needs beyond the agents (whose parameters ``sync`` brought up to
        date): each group's stacked optimizer state."""
        return {"optimizers": [g.optimizer.state_dict() for g in self.groups]}

    def load_checkpoint_state(self, state: dict[str, list]) -> None:
        """Restack the (restored) agents' parameters and load each group's optimizer (grouped
        by the modalities the agents held when saved: the caller applies that round's
        schedules first)."""
        if self._held_key() != self._grouped:
            self.groups = []  # the agents hold the restored values: regroup without a sync
            self._regroup()
        with torch.no_grad():
            for g, opt in zip(self.groups, state["optimizers"], strict=True):
                per_agent = [dict(a.model.named_parameters()) for a in g.agents]
                for n in g.names:
                    g.params[n].copy_(torch.stack([p[n] for p in per_agent]))
                g.optimizer.load_state_dict(opt)
