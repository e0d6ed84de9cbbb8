"""Screening on own data: the receiver's loss with each received copy of a component in place of
its own (a :class:`~parsefl.aggregation.ScreeningAggregator` judges the copies by it). Both
backends call :func:`copy_losses`, the same nested ``vmap`` (holders, then copies) over one
functional call of the receiver's model: the reference executor with one holder
(:func:`screened_merge`), the vectorized backend with a training group's holders at once
(:func:`stacked_losses`), so both see the same numbers.

The screening batch is ``batch`` of the receiver's own training samples, drawn from
(seed, agent, round) by a generator of its own: it never moves the agent's training batches.
The score is the cross-entropy of the agent's prediction (``model.logits`` on the modalities
it holds), in eval mode, without gradients.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn
from torch.func import functional_call

from parsefl.aggregation import ScreeningAggregator, flatten, fold_missing, unflatten
from parsefl.runtime.agent import Agent

if TYPE_CHECKING:
    from parsefl.runtime.stacked_group import StackedGroup

Batch = tuple[dict[str, torch.Tensor], torch.Tensor]


class _Score(nn.Module):
    """``forward(x, y)``: the wrapped model's cross-entropy on ``(x, y)``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: dict[str, torch.Tensor], y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.model.logits(x), y)


def screening_batch(agent: Agent, seed: int, r: int, size: int) -> Batch:
    """``size`` of the agent's own samples (repeated in order when it has fewer), drawn from
    (seed, agent id, round r) alone."""
    gen = torch.Generator().manual_seed((seed * 1_000_003 + agent.id) * 1_000_033 + r)
    perm = torch.randperm(agent.n_samples, generator=gen)
    idx = perm[torch.arange(size) % agent.n_samples].to(agent.y.device)
    return {m: agent.x[m][idx] for m in agent.held}, agent.y[idx]


def copy_losses(model: nn.Module, base: Mapping[str, torch.Tensor], names: Sequence[str],
                copies: torch.Tensor, x: Mapping[str, torch.Tensor],
                y: torch.Tensor) -> torch.Tensor:
    """``(R, K)``: holder r's loss on its batch (``x``, ``y``: ``(R, B, ...)``) with its
    parameters ``base`` (each ``(R, ...)``) and copy k (``copies[r, k]``, the component's
    tensors ``names`` flattened in order) in place of its component."""
    shapes = [base[n].shape[1:] for n in names]
    score = _Score(model)

    def one(params: dict, copy: torch.Tensor, xr: dict, yr: torch.Tensor) -> torch.Tensor:
        p, start = dict(params), 0
        for n, shape in zip(names, shapes, strict=True):
            size = math.prod(shape)
            p[n] = copy[start : start + size].view(shape)
            start += size
        return functional_call(score, {"model." + k: v for k, v in p.items()}, (xr, yr))

    per_holder = torch.vmap(one, in_dims=(None, 0, None, None))
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return torch.vmap(per_holder)(dict(base), copies, dict(x), y).double()
    finally:
        model.train(training)


def own_losses(model: nn.Module, base: Mapping[str, torch.Tensor],
                x: Mapping[str, torch.Tensor], y: torch.Tensor) -> torch.Tensor:
    """``(R,)``: holder r's loss on its batch with its own parameters ``base`` (the same for
    every component it merges in a round: computed once per round, not once per copy set)."""
    score = _Score(model)

    def one(params: dict, xr: dict, yr: torch.Tensor) -> torch.Tensor:
        return functional_call(score, {"model." + k: v for k, v in params.items()}, (xr, yr))

    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return torch.vmap(one)(dict(base), dict(x), y).double()
    finally:
        model.train(training)


def _losses(model: nn.Module, base: Mapping[str, torch.Tensor], names: Sequence[str],
            values: torch.Tensor, x: Mapping[str, torch.Tensor], y: torch.Tensor,
            own: torch.Tensor | None = None) -> torch.Tensor:
    """``(R, K)``: column 0 the own copy's loss (``own``, or computed), then each peer copy's
    (:func:`copy_losses` over ``values[:, 1:]``)."""
    if own is None:
        own = own_losses(model, base, x, y)
    if values.shape[1] == 1:
        return own[:, None]
    return torch.cat([own[:, None], copy_losses(model, base, names, values[:, 1:], x, y)], 1)


def screened_merge(aggregator: ScreeningAggregator, agent: Agent, comp: str,
                   own: Mapping[str, torch.Tensor], received: Mapping[int, Mapping],
                   self_weight: float, weights: Mapping[int, float],
                   r: int) -> dict[str, torch.Tensor]:
    """The reference executor's merge of ``comp`` at ``agent`` (as ``StackedAggregator.merge``,
    one holder), with the screening losses."""
    w_own, w = fold_missing(self_weight, weights, received.keys())
    senders = sorted(received)
    values = torch.stack([flatten(own)] + [flatten(received[j]) for j in senders])[None]
    mask = torch.ones(values.shape[:2], dtype=torch.bool, device=values.device)
    wts = torch.tensor([[w_own, *(w[j] for j in senders)]], dtype=values.dtype,
                       device=values.device)
    if senders and aggregator.batch > 0:
        x, y = screening_batch(agent, aggregator.seed, r, aggregator.batch)
        base = {n: p.detach()[None] for n, p in agent.weights().items()}
        losses = _losses(agent.blueprint.model, base, list(own), values,
                         {m: v[None] for m, v in x.items()}, y[None])
    else:  # no peer copy, or no loss screen (batch 0)
        losses = torch.zeros(1, values.shape[1], dtype=torch.float64)
    out = aggregator.combine_screened(values, mask, wts, losses, [agent.id], [senders])
    return unflatten(out[0], own)


def stacked_losses(parts: Sequence[tuple[StackedGroup, torch.Tensor]], names: Sequence[str],
                   values: torch.Tensor, aggregator: ScreeningAggregator, r: int
                   ) -> torch.Tensor:
    """``(H, K)`` screening losses of a stacked mix's padded copies of the parameters
    ``names``, one :func:`copy_losses` per training group among the holders (``parts``: each
    group with its rows in the mix). A group's screening batches and own-copy losses
    are made once per round (``group.screening``, cleared by the executor each round)."""
    if aggregator.batch == 0:  # no loss screen
        return torch.zeros(values.shape[:2], dtype=torch.float64, device=values.device)
    out, start = [], 0
    for group, rows in parts:
        if not hasattr(group, "agents"):  # a worker's extra rows (runtime.remote_rows): no
            n = len(rows)                 # receiver, no peer copy there to judge
            out.append(torch.zeros(n, values.shape[1], dtype=torch.float64,
                                   device=values.device))
            start += n
            continue
        params = group.params if group.before_gossip is None else group.before_gossip
        cached = getattr(group, "screening", None)
        if cached is None or cached[0] != (r, aggregator.seed, aggregator.batch):
            batches = [screening_batch(a, aggregator.seed, r, aggregator.batch)
                       for a in group.agents]
            x = {m: torch.stack([b[0][m] for b in batches]) for m in batches[0][0]}
            y = torch.stack([b[1] for b in batches])
            own = own_losses(group.agents[0].blueprint.model,
                             {n: p.detach() for n, p in params.items()}, x, y)
            cached = ((r, aggregator.seed, aggregator.batch), x, y, own)
            group.screening = cached
        _, x, y, own = cached
        n = len(rows)
        if n == len(group.agents) and bool((rows == torch.arange(n, device=rows.device)).all()):
            base = {k: p.detach() for k, p in params.items()}  # every row: no copy
        else:
            base = {k: p.detach()[rows] for k, p in params.items()}
            x, y, own = {m: v[rows] for m, v in x.items()}, y[rows], own[rows]
        out.append(_losses(group.agents[0].blueprint.model, base, names, values[start : start + n],
                           x, y, own))
        start += n
    return torch.cat(out)
