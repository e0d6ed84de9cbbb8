"""A training group of the vectorized backend: agents with identical models, their parameters
stacked along an agent axis, their data read from one copy, one ``vmap`` over a functional call.

Memory: the group owns the only copy of its agents' parameters; each agent is a row of them
(``Agent.bind_rows``: its weights, and a module if one is ever made for it, are views of the
row, so evaluation and checkpoints need no copy back). Inputs are read from the one copy the
agents were built with (the dataset's tensors, through the group's index of their rows) or,
for agents built with their own tensors, from one joined copy. The optimizer
is a :class:`StackedOptimizer` (per-agent step counts, masked rows), not an object per agent.

Steps: each agent's batches are exactly those the reference backend draws (``Agent.batches``:
fixed ``local_steps`` from its batch stream, or ``local_epochs`` passes whose last batch may be
smaller). Batches are laid out on shared slots (epoch by epoch, the full batches first and each
epoch's short last batch on the epoch's last slot); a slot runs one call per batch size among
the agents that have a batch there, then one optimizer step of those agents' rows only.
Private training with Poisson sampling (batches of any size, one per step): a slot runs one
call over its largest batch, each agent's shorter batch padded and the padding masked out of
its clipped sum (parsefl.privacy.dpsgd).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.func import functional_call, vmap

from parsefl.config import TrainConfig
from parsefl.privacy.dpsgd import LossOf, clipped_sum, reached, sample_grads
from parsefl.runtime.agent import Agent
from parsefl.runtime.stacked_optim import StackedOptimizer

Batch = tuple[int, torch.Tensor]  # (row of the agent in its group, sample indices)


class StackedGroup:
    """Agents with identical models: stacked parameters, one flat data copy, one optimizer."""

    def __init__(self, agents: list[Agent], train: TrainConfig) -> None:
        self.agents = agents
        first = agents[0]
        self.train_cfg = train
        self.wrapper = LossOf(first.blueprint.model, first.loss_cfg)
        self.names = list(first.blueprint.names)
        self.params = _stack_weights(agents)
        for k, agent in enumerate(agents):
            agent.bind_rows(self.params, k)
        self.optimizer = StackedOptimizer(self.params, train)
        # The parameters as of the round's start while a screening aggregator merges (each
        # component is written as it is merged; the screen judges copies against the rest
        # of the receiver's model as the reference executor does: before any merge).
        self.before_gossip: dict[str, torch.Tensor] | None = None
        # That round's screening batches and own-copy losses (runtime.screening), made once.
        self.screening: tuple | None = None
        sizes = [a.n_samples for a in agents]
        device = first.y.device
        self.offsets = torch.tensor([0, *sizes[:-1]], device=device).cumsum(0)
        self.rows = torch.arange(len(agents), device=device)
        self.y = _joined([a.y for a in agents])
        # Rows of shared inputs (the dataset's): read through one index, no copy; otherwise
        # the agents' own inputs joined into one copy.
        shared = first.source is not None and all(
            a.source is not None and a.source.base is first.source.base for a in agents)
        self.index = _joined([a.source.index for a in agents]) if shared else None
        self.x = {m: first.source.base[m] if shared else _joined([a.x[m] for a in agents])
                  for m in first.modalities}
        self._rebind_data(sizes)
        self.loss = torch.vmap(self._one, randomness="different")
        self.grad_sum: dict[str, torch.Tensor] = {}
        self.private = first.privacy is not None  # DP-SGD (parsefl.privacy.dpsgd)
        self.poisson = self.private and first.privacy.expected is not None
        # Poisson: each agent's clipped sum is divided by its expected batch size.
        self.expected = torch.tensor([float(a.privacy.expected) if self.poisson else 1.0
                                      for a in agents], device=device)
        self._reached: dict[str | None, list[str]] = {}  # phase -> names a sample's loss reaches

    def _rebind_data(self, sizes: list[int]) -> None:
        """The agents see the group's data copy."""
        for k, agent in enumerate(self.agents):
            lo, hi = int(self.offsets[k]), int(self.offsets[k]) + sizes[k]
            x = None if self.index is not None else {m: v[lo:hi] for m, v in self.x.items()}
            agent.rebind_data(x, self.y[lo:hi])

    def _one(self, params: dict, x: dict, y: torch.Tensor) -> torch.Tensor:
        return functional_call(self.wrapper, {"model." + k: v for k, v in params.items()},
                               (x, y))

    def gather(self, rows: torch.Tensor, idx: torch.Tensor) -> tuple[dict, torch.Tensor]:
        """The held modalities' inputs and the labels of batches ``idx`` (R, B) of ``rows``."""
        at = self.offsets[rows][:, None] + idx
        held = self.agents[0].held
        inputs = at if self.index is None else self.index[at]
        return {m: self.x[m][inputs] for m in held}, self.y[at]

    def train(self, phase: str | None, batches: Sequence[list[torch.Tensor] | None],
              track: bool) -> torch.Tensor:
        """Agent k trains on ``batches[k]`` (None or empty: it sits the round out); returns
        each agent's mean loss (NaN without a batch)."""
        self.wrapper.phase = phase
        self.wrapper.train()  # evaluation leaves the model in eval mode (dropout off)
        device = self.y.device
        total = torch.zeros(len(self.agents), device=device)
        # Batches with samples (an empty Poisson batch is a step of noise alone, no loss).
        count = torch.tensor([sum(len(i) > 0 for i in b or ()) for b in batches],
                             device=device)
        self.grad_sum = {}
        for slot in _slots(self.agents, batches, self.train_cfg, self.poisson):
            self.optimizer.zero_grad()
            live = []
            parts = _padded(slot, device) if self.poisson else [
                (rows, idx, None) for rows, idx in _by_size(slot, device)]
            for rows, idx, mask in parts:
                live.append(rows)
                everyone = len(rows) == len(self.agents)
                params = self.params if everyone else {n: p[rows] for n, p in self.params.items()}
                if self.private:
                    losses = self._private_step(rows, idx, phase, mask)
                    total.index_add_(0, rows, losses)
                    continue
                xb, yb = self.gather(rows, idx)
                if len(rows) == 1 and not everyone:  # one agent: its plain call, no vmap
                    losses = self._one({n: p[0] for n, p in params.items()},
                                       {m: v[0] for m, v in xb.items()}, yb[0])[None]
                else:
                    losses = self.loss(params, xb, yb)
                losses.sum().backward()  # agents are independent: each gets its own gradient
                total.index_add_(0, rows, losses.detach())
            if track:
                self._track()
            rows = torch.cat(live)
            self.optimizer.step(None if len(rows) == len(self.agents) else rows)
        return torch.where(count > 0, total / count.clamp(min=1), float("nan"))

    def private_grads(self, rows: torch.Tensor, idx: torch.Tensor, phase: str | None,
                      mask: torch.Tensor | None = None,
                      ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """DP-SGD's clipped sums of per-sample gradients (R, ...) of the batches ``idx``
        (R, B) of ``rows``, over the parameters a sample's loss reaches, and the per-sample
        losses (R, B): one ``vmap`` over the agents of one over their samples. ``mask``
        (R, B): 0 marks padding, left out of the sums."""
        xb, yb = self.gather(rows, idx)
        if phase not in self._reached:  # the same for every row: one model, one held set
            first = self.agents[int(rows[0])]
            self._reached[phase] = reached(first.blueprint.model,
                                           {m: v[0, :1] for m, v in xb.items()},
                                           yb[0, :1], first.loss_cfg, phase)
        names = self._reached[phase]
        train = {n: self.params[n][rows].detach() for n in names}
        fixed = {n: self.params[n][rows].detach() for n in self.names if n not in train}
        grads, losses = vmap(lambda t, f, x, y: sample_grads(self._one, t, f, x, y),
                             randomness="different")(train, fixed, xb, yb)
        return clipped_sum(grads, self.agents[0].privacy.max_norm, 1, mask), losses

    def _private_step(self, rows: torch.Tensor, idx: torch.Tensor, phase: str | None,
                      mask: torch.Tensor | None = None) -> torch.Tensor:
        """Write the private gradients of ``rows`` (their clipped sums plus each agent's own
        noise, over the batch size, or under Poisson sampling the expected one) into their
        rows of ``.grad``; the mean losses (R,; 0 for an empty batch)."""
        summed, losses = self.private_grads(rows, idx, phase, mask)
        if mask is None:
            div, mean = torch.full((len(rows),), float(idx.shape[1]), device=idx.device), \
                losses.mean(1)
        else:
            div = self.expected[rows]
            mean = (losses * mask).sum(1) / mask.sum(1).clamp(min=1)
        shapes = [(n, self.params[n].shape[1:]) for n in summed]
        noise = [self.agents[r].privacy.draw(shapes, self.y.device) for r in rows.tolist()]
        for n, total in summed.items():
            p = self.params[n]
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            scale = div.view(-1, *[1] * (p.dim() - 1))
            p.grad.index_copy_(0, rows, (total + torch.stack([z[n] for z in noise])) / scale)
        return mean

    def bare_steps(self, steps: int, batch: int) -> None:
        """The compute floor the benchmarks compare a round against (benchmarks/floor.py,
        benchmarks/peers): ``steps`` stacked forward/backward/optimizer steps on random
        batches, with none of the federation machinery (no slots, masks or tracking). Kept
        here, beside the internals it uses, so that it changes with them."""
        n = min(a.n_samples for a in self.agents)
        for _ in range(steps):
            idx = torch.randint(0, n, (len(self.agents), batch), device=self.y.device)
            xb, yb = self.gather(self.rows, idx)
            losses = self.loss(self.params, xb, yb)
            self.optimizer.zero_grad()
            losses.sum().backward()
            self.optimizer.step()

    def _track(self) -> None:
        """Sum each agent's gradients over the round (rows that sat the slot out are zero)."""
        for n, p in self.params.items():
            if p.grad is not None:
                prev = self.grad_sum.get(n)
                self.grad_sum[n] = p.grad.clone() if prev is None else prev + p.grad


def _slots(agents: Sequence[Agent], batches: Sequence[list[torch.Tensor] | None],
           train: TrainConfig, poisson: bool = False) -> list[list[Batch]]:
    """Every agent's batches on shared slots, each agent's in its own order. Fixed steps: the
    k-th batch on slot k. Epochs (the n // b full batches, then a last one of n % b samples if
    that is more than one): epoch e's i-th full batch on slot e (F + 1) + i, its last short
    batch on slot e (F + 1) + F, F being the group's most full batches per epoch. Poisson
    steps (``poisson``): the k-th on slot k, as fixed steps."""
    batch = train.batch_size
    shape = []
    for agent, mine in zip(agents, batches, strict=True):
        if not mine or agent.steps or train.local_steps or poisson:
            shape.append(None)
            continue
        b = min(batch, agent.n_samples)
        full = agent.n_samples // b
        shape.append((full, full + (agent.n_samples - full * b > 1)))
    most = max((s[0] for s in shape if s is not None), default=0)
    slots: dict[int, list[Batch]] = {}
    for row, (mine, s) in enumerate(zip(batches, shape, strict=True)):
        for t, idx in enumerate(mine or ()):
            if s is None:
                at = t
            else:
                epoch, i = divmod(t, s[1])
                at = epoch * (most + 1) + (i if i < s[0] else most)
            slots.setdefault(at, []).append((row, idx))
    return [slots[k] for k in sorted(slots)]


def _by_size(slot: list[Batch], device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A slot's batches as one (rows, (R, B) indices) pair per batch size B."""
    sizes: dict[int, list[Batch]] = {}
    for row, idx in slot:
        sizes.setdefault(len(idx), []).append((row, idx))
    return [(torch.tensor([r for r, _ in part], device=device),
             torch.stack([i for _, i in part]).to(device)) for part in sizes.values()]


def _padded(slot: list[Batch], device: torch.device
            ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """A slot of Poisson batches as one (rows, (R, B) indices, (R, B) mask): each batch padded
    to the slot's largest B (at least 1) with its agent's sample 0, masked out (0)."""
    width = max(1, max(len(idx) for _, idx in slot))
    idx = torch.zeros(len(slot), width, dtype=torch.long, device=device)
    mask = torch.zeros(len(slot), width, device=device)
    for k, (_, i) in enumerate(slot):
        idx[k, : len(i)] = i.to(device)
        mask[k, : len(i)] = 1.0
    return [(torch.tensor([r for r, _ in slot], device=device), idx, mask)]


def _stack_weights(agents: Sequence[Agent]) -> dict[str, torch.Tensor]:
    """The agents' parameters stacked along a first axis. Agents that still hold their common
    blueprint's initial values (a fresh build) are rows of one expanded copy, made at once;
    others are stacked one tensor at a time (each agent's own copy goes at once)."""
    bp = agents[0].blueprint
    fresh = all(a.blueprint is bp and not a.materialized and a.rows is None for a in agents)
    params = {}
    for n in bp.names:
        if fresh:
            value = bp.params[n].detach()
            stacked = value.expand(len(agents), *value.shape).clone()
        else:
            stacked = torch.stack([a.weights()[n].detach() for a in agents])
        params[n] = stacked.requires_grad_(n in bp.trains)
    return params


def _joined(parts: Sequence[torch.Tensor]) -> torch.Tensor:
    """``torch.cat(parts)``, or, when the parts are consecutive slices of one tensor (a build
    that gathered a group's data at once), that tensor's span itself: one copy of the data."""
    first = parts[0]
    base = first._base if first._base is not None else first
    step = first[0].numel() * first.element_size() if first.dim() and len(first) else 0
    at = first.data_ptr()
    for part in parts:
        if (part._base if part._base is not None else part) is not base or \
                part.data_ptr() != at or not part.is_contiguous():
            return torch.cat(parts)
        at += len(part) * step
    n = sum(len(p) for p in parts)
    return first.as_strided((n, *first.shape[1:]), first.stride()) if step else torch.cat(parts)
