"""The vectorized backend: agents with the same model signature train as one stacked model
(parameters stacked along an agent axis, one ``vmap`` over a functional call, one backward over
the sum of their losses), and each component's gossip is one sparse mixing-matrix product over
the stacked copies of its holders. No Python loop over agents in the hot path except drawing
each agent's batch indices from its own seeded stream (so both backends see the same batches).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.func import functional_call

from parsefl.config import LossConfig, TrainConfig
from parsefl.errors import ConfigError
from parsefl.model.base import signature
from parsefl.runtime.agent import Agent, make_optimizer
from parsefl.runtime.handshake import GossipPlan
from parsefl.runtime.transport import path_links
from parsefl.sharing.base import SharingStrategy

if TYPE_CHECKING:
    from parsefl.runtime.loop import RoundLoop


def vectorizable(agents: Sequence[Agent], strategy: SharingStrategy, train: TrainConfig) -> str:
    """Why the vectorized backend cannot run this setup ("" when it can)."""
    if train.local_steps is None:
        return "it needs train.local_steps (agents of unequal data size step together)"
    if any(len(a.views) > 1 for a in agents):
        return "an agent trains on several modality views (pooled data or missing modalities)"
    if any(not a.views or len(a.views[0][1]) != a.n_samples for a in agents):
        return "an agent trains on a subset of its samples (missing labels)"
    if type(strategy).merge is not SharingStrategy.merge:
        return f"strategy {strategy.name!r} merges with its own rule, not a mixing matrix"
    return ""


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
        self.params = {n: torch.stack([p[n].detach() for p in per_agent]).requires_grad_(True)
                       for n in self.names}
        self.optimizer = make_optimizer(list(self.params.values()), train)
        n_max = max(a.n_samples for a in agents)
        self.x = {m: _pad([a.x[m] for a in agents], n_max) for m in first.modalities}
        self.y = _pad([a.y for a in agents], n_max)
        self.rows = torch.arange(len(agents), device=self.y.device)[:, None]
        self.loss = torch.vmap(self._one, randomness="different")
        self.grad_sum: dict[str, torch.Tensor] = {}

    def _one(self, params: dict, x: dict, y: torch.Tensor) -> torch.Tensor:
        return functional_call(self.wrapper, {"model." + k: v for k, v in params.items()},
                               (x, y))

    def train(self, phase: str | None, steps: int, batch: int, track: bool) -> torch.Tensor:
        self.wrapper.phase = phase
        idx = torch.stack([torch.stack([a.stream.take(batch) for a in self.agents])
                           for _ in range(steps)]).to(self.y.device)  # (steps, G, B), one copy
        total = torch.zeros(len(self.agents), device=self.y.device)
        self.grad_sum = {}
        for k in range(steps):
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
            total += losses.detach()
        return total / max(1, steps)


def _pad(tensors: list[torch.Tensor], n: int) -> torch.Tensor:
    out = tensors[0].new_zeros((len(tensors), n, *tensors[0].shape[1:]))
    for k, t in enumerate(tensors):
        out[k, : t.shape[0]] = t
    return out


@dataclass
class _Mix:
    """One component's gossip: the holders' (group, rows) and their sparse mixing matrix."""

    names: list[str]
    parts: list[tuple[_Group, torch.Tensor]]  # holders, group-major order
    matrix: torch.Tensor  # sparse (H, H)


class VectorizedExecutor:
    """Stacked training and matrix gossip; the Agent objects are brought up to date by
    ``sync`` (before evaluation and checkpoints)."""

    def __init__(self, loop: RoundLoop, train: TrainConfig) -> None:
        agents = list(loop.agents.values())
        why = vectorizable(agents, loop.strategy, train)
        if why:
            raise ConfigError("runtime.backend", f"vectorized backend unavailable: {why}")
        self.loop, self.train_cfg = loop, train
        by_key: dict[tuple, list[Agent]] = {}
        for agent in agents:
            names = [n for n, _ in agent.model.named_parameters()]
            key = (type(agent.model).__name__, agent.modalities, signature(agent.model, names))
            by_key.setdefault(key, []).append(agent)
        self.groups = [_Group(members, train) for members in by_key.values()]
        self.where = {a.id: (g, k) for g in self.groups for k, a in enumerate(g.agents)}
        self._cache: tuple[int, list[_Mix], Counter] | None = None

    def train(self, phase: str | None) -> list[float]:
        track = any(a.track_gradients for a in self.loop.agents.values())
        steps, batch = self.train_cfg.local_steps or 1, self.train_cfg.batch_size
        losses: list[float] = []
        for g in self.groups:
            per_agent = g.train(phase, steps, batch, track).tolist()  # one host sync per group
            for k, agent in enumerate(g.agents):
                agent.last_loss = per_agent[k]
                agent.grad_sum = {n: v[k] for n, v in g.grad_sum.items()}
            losses += per_agent
        return losses

    def gossip(self, plans: dict[int, GossipPlan]) -> None:
        if self._cache is None or self._cache[0] != id(plans):
            self._cache = (id(plans), *self._build(plans))
        _, mixes, link_bytes = self._cache
        with torch.no_grad():
            for mix in mixes:
                for name in mix.names:
                    x = torch.cat([g.params[name][rows].flatten(1) for g, rows in mix.parts])
                    y = torch.sparse.mm(mix.matrix, x)
                    start = 0
                    for g, rows in mix.parts:
                        block = y[start : start + len(rows)]
                        shape = g.params[name].shape[1:]
                        g.params[name].index_copy_(0, rows, block.view(-1, *shape))
                        start += len(rows)
        self.loop.transport.link_bytes.update(link_bytes)

    def _build(self, plans: dict[int, GossipPlan]) -> tuple[list[_Mix], Counter]:
        """Mixing matrices per (component, signature) and the bytes each round moves."""
        holders: dict[tuple[str, str], list[int]] = {}
        link_bytes: Counter = Counter()
        for i, plan in plans.items():
            agent = self.loop.agents[i]
            for comp, peers in plan.paths.items():
                holders.setdefault((comp, agent.capability().signatures[comp]), []).append(i)
                size = sum(agent.model.get_parameter(n).numel() * agent.model.get_parameter(n)
                           .element_size() for n in agent.component_params[comp])
                for path in peers.values():
                    for link in path_links(path):
                        link_bytes[link] += size
        return [self._mix(comp, ids, plans) for (comp, _), ids in holders.items()], link_bytes

    def _mix(self, comp: str, ids: list[int], plans: dict[int, GossipPlan]) -> _Mix:
        order = sorted(ids, key=lambda i: (self.groups.index(self.where[i][0]), self.where[i][1]))
        pos = {i: k for k, i in enumerate(order)}
        rows, cols, vals = [], [], []
        for i in order:
            rows.append(pos[i]), cols.append(pos[i]), vals.append(plans[i].self_weight[comp])
            for j, w in plans[i].weights[comp].items():
                rows.append(pos[i]), cols.append(pos[j]), vals.append(w)
        device = self.groups[0].y.device
        matrix = torch.sparse_coo_tensor(
            torch.tensor([rows, cols]), torch.tensor(vals), (len(order), len(order)),
            check_invariants=True,
        ).coalesce().to(device)
        parts: list[tuple[_Group, torch.Tensor]] = []
        for g in self.groups:
            mine = [self.where[i][1] for i in order if self.where[i][0] is g]
            if mine:
                parts.append((g, torch.tensor(mine, device=device)))
        names = self.loop.agents[order[0]].component_params[comp]
        return _Mix(names, parts, matrix.to(next(iter(parts[0][0].params.values())).dtype))

    def sync(self) -> None:
        with torch.no_grad():
            for g in self.groups:
                for k, agent in enumerate(g.agents):
                    params = dict(agent.model.named_parameters())
                    for n in g.names:
                        params[n].copy_(g.params[n][k])
