"""DP-SGD's gradient, shared by both backends: each sample's gradient (``torch.func``: ``vmap``
of ``grad`` over the samples; the vectorized backend adds one ``vmap`` over its stacked
agents) clipped to ``max_grad_norm`` over all the parameters it reaches, summed, plus Gaussian
noise of std ``noise_multiplier * max_grad_norm``, divided by the batch size.

A sample's gradient is that of the model's loss on the sample alone. Loss terms that couple
the samples of a batch therefore vanish under privacy: InfoNCE alignment (a sample against no
negatives: zero) and the decorrelation term (skipped for one sample); cosine alignment, the
auxiliary heads and the unimodal path are per sample and stay (README "Privacy").

Noise: agent ``i``'s ``t``-th private step draws from a generator seeded by (run seed, ``i``,
``t``) alone, on the CPU, parameter by parameter in the model's order: the same numbers in both
backends, on any device, after a resume (the step count is checkpointed), and independent of
the batch streams.

Sampling (``privacy.sampling``): ``poisson`` (the default, what the accountant analyses) puts
each of an agent's samples in each step's batch independently with probability
``q = min(batch, n) / n``, from the agent's own batch generator; batches have variable size
(possibly zero: the step still adds noise and counts) and the clipped sum is divided by the
*expected* batch size ``q n``, as Opacus does. ``shuffle``: fixed-size batches of seeded
shuffles, divided by their size. The vectorized backend runs a Poisson step of several agents
as one call over the slot's largest batch, each agent's padding masked out of its sum.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad_and_value, vmap

from parsefl.types import Tensors

LossFn = Callable[[Tensors, Tensors, torch.Tensor], torch.Tensor]


class LossOf(nn.Module):
    """``forward(x, y)`` = the wrapped model's training loss, so that ``functional_call`` can
    evaluate it with any parameters (a stacked row, a per-sample copy)."""

    def __init__(self, model: nn.Module, cfg: object) -> None:
        super().__init__()
        self.model, self.cfg, self.phase = model, cfg, None

    def forward(self, x: Tensors, y: torch.Tensor) -> torch.Tensor:
        return self.model.loss(x, y, self.cfg, self.phase)[0]


def sample_rate(batch: int, n: int) -> float:
    """The accountant's sampling rate of an agent with ``n`` samples (``batch``: the
    configured batch size, the expected one under Poisson sampling)."""
    return min(batch, n) / n if n else 1.0


def poisson_steps(batch: int, n: int, epochs: int) -> int:
    """Poisson steps in ``epochs`` epochs: ceil(n / expected batch) each (Opacus's loader's
    length)."""
    return epochs * -(-n // min(batch, n)) if n else 0


class PrivateSteps:
    """One agent's DP-SGD settings and noise stream; ``steps`` counts its private steps.
    ``expected``: under Poisson sampling, the expected batch size the clipped sum is divided
    by (None: shuffled fixed-size batches, divided by their size)."""

    def __init__(self, agent: int, noise: float, max_norm: float, seed: int,
                 expected: int | None = None) -> None:
        self.agent, self.noise, self.max_norm, self.seed = agent, noise, max_norm, seed
        self.expected = expected
        self.steps = 0
        self.reached: dict[tuple, list[str]] = {}  # (modalities, phase) -> parameter names

    def draw(self, shapes: Sequence[tuple[str, torch.Size]], device: torch.device) -> Tensors:
        """The noise of this agent's next step (std ``noise * max_norm``), one tensor per
        parameter; counts the step."""
        words = np.random.SeedSequence([self.seed, self.agent, self.steps, 0xD9]) \
            .generate_state(2, np.uint32)
        gen = torch.Generator().manual_seed(int(words[0]) << 32 | int(words[1]))
        self.steps += 1
        std = self.noise * self.max_norm
        return {n: (torch.randn(s, generator=gen) * std).to(device) for n, s in shapes}


def reached(model: nn.Module, x1: Tensors, y1: torch.Tensor, loss_cfg: object,
            phase: str | None) -> list[str]:
    """The trainable parameters one sample's loss reaches (a frozen trunk, Harmony's stage-2
    encoders or an idle head get neither a gradient nor noise: as without privacy, they do
    not move)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    loss = model.loss(x1, y1, loss_cfg, phase)[0]
    grads = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
    return [n for (n, _), g in zip(named, grads, strict=True) if g is not None]


def sample_grads(loss_fn: LossFn, train: Tensors, fixed: Tensors, x: Tensors,
                 y: torch.Tensor) -> tuple[Tensors, torch.Tensor]:
    """Per-sample gradients (B, ...) of ``loss_fn`` with respect to ``train`` (``fixed``:
    the other parameters), and the per-sample losses (B,)."""
    def one(t: Tensors, f: Tensors, xs: Tensors, ys: torch.Tensor) -> torch.Tensor:
        return loss_fn({**f, **t}, {m: v.unsqueeze(0) for m, v in xs.items()}, ys.unsqueeze(0))

    return vmap(grad_and_value(one), in_dims=(None, None, 0, 0),
                randomness="different")(train, fixed, x, y)


def clipped_sum(grads: Mapping[str, torch.Tensor], max_norm: float, axis: int,
                mask: torch.Tensor | None = None) -> Tensors:
    """Each sample's gradient (samples along ``axis``; the axes before it: stacked agents)
    scaled to L2 norm at most ``max_norm`` over all its tensors, summed over the samples
    (``mask``, shaped like the sample axes: 0 drops a padding sample)."""
    sq = sum(g.flatten(axis + 1).pow(2).sum(-1) for g in grads.values())
    scale = (max_norm / (sq.sqrt() + 1e-6)).clamp(max=1.0)
    if mask is not None:
        scale = scale * mask
    return {n: (g * scale.view(*scale.shape, *[1] * (g.dim() - scale.dim()))).sum(axis)
            for n, g in grads.items()}


def private_step(model: nn.Module, priv: PrivateSteps, x: Tensors, y: torch.Tensor,
                 loss_cfg: object, phase: str | None,
                 probe: tuple[Tensors, torch.Tensor] | None = None) -> torch.Tensor | None:
    """The reference backend's step: sets ``.grad`` of the reached parameters of ``model``
    (None elsewhere) to the private gradient of batch (``x``, ``y``); returns the mean
    per-sample loss (None for an empty Poisson batch: its gradient is the noise alone).
    ``probe``: one sample of the agent's, to find the reached parameters from when the
    batch is empty."""
    key = (tuple(sorted(x)), phase)
    if key not in priv.reached:
        x1, y1 = ({m: v[:1] for m, v in x.items()}, y[:1]) if len(y) else probe
        priv.reached[key] = reached(model, x1, y1, loss_cfg, phase)
    names = priv.reached[key]
    params = dict(model.named_parameters())
    wrapper = LossOf(model, loss_cfg)
    wrapper.phase = phase

    def loss_fn(p: Tensors, xb: Tensors, yb: torch.Tensor) -> torch.Tensor:
        return functional_call(wrapper, {"model." + k: v for k, v in p.items()}, (xb, yb))

    train = {n: params[n].detach() for n in names}
    fixed = {n: p.detach() for n, p in params.items() if n not in train}
    if len(y):
        grads, losses = sample_grads(loss_fn, train, fixed, x, y)
        summed = clipped_sum(grads, priv.max_norm, 0)
    else:
        summed, losses = {n: torch.zeros_like(t) for n, t in train.items()}, None
    noise = priv.draw([(n, params[n].shape) for n in names], y.device)
    for p in params.values():
        p.grad = None
    for n in names:
        params[n].grad = (summed[n] + noise[n]) / (priv.expected or len(y))
    return None if losses is None else losses.mean()
