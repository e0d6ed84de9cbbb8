"""Fusion operators for the synergy slices of a multimodal agent.

Each takes a list of k tensors of shape (batch, d) and returns (batch, out_features). The
synergy head is linear, so every operator must be able to express a non-additive interaction
(XOR of two modalities): an additive fusion followed by a linear head cannot.
"""

from __future__ import annotations

import torch
from torch import nn

from parsefl.errors import ConfigError
from parsefl.registry import FUSIONS


class Fusion(nn.Module):
    out_features: int


@FUSIONS.register("concat", "concatenate, then linear + ReLU")
class ConcatFusion(Fusion):
    def __init__(self, k: int, d: int) -> None:
        super().__init__()
        self.proj = nn.Linear(k * d, 2 * d)
        self.out_features = 2 * d

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return torch.relu(self.proj(torch.cat(xs, dim=-1)))


@FUSIONS.register("sum", "element-wise sum, then linear + ReLU")
class SumFusion(Fusion):
    def __init__(self, k: int, d: int) -> None:
        super().__init__()
        self.proj = nn.Linear(d, 2 * d)
        self.out_features = 2 * d

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return torch.relu(self.proj(torch.stack(xs).sum(0)))


@FUSIONS.register("product", "element-wise product of per-modality projections")
class ProductFusion(Fusion):
    def __init__(self, k: int, d: int) -> None:
        super().__init__()
        # A learned projection per modality first: the raw slices need not share a basis.
        self.proj = nn.ModuleList(nn.Linear(d, d) for _ in range(k))
        self.out_features = d

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        out = self.proj[0](xs[0])
        for p, x in zip(self.proj[1:], xs[1:], strict=True):
            out = out * p(x)
        return out


@FUSIONS.register("gated", "sigmoid-gated sum of per-modality projections")
class GatedFusion(Fusion):
    def __init__(self, k: int, d: int) -> None:
        super().__init__()
        self.gate = nn.Linear(k * d, k * d)
        self.proj = nn.ModuleList(nn.Linear(d, d) for _ in range(k))
        self.k, self.out_features = k, d

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        gates = torch.sigmoid(self.gate(torch.cat(xs, dim=-1))).chunk(self.k, dim=-1)
        return sum(g * torch.tanh(p(x)) for g, p, x in zip(gates, self.proj, xs, strict=True))


@FUSIONS.register("attention", "one-head self-attention over modality tokens, mean-pooled")
class AttentionFusion(Fusion):
    def __init__(self, k: int, d: int) -> None:
        super().__init__()
        self.qkv = nn.Linear(d, 3 * d)
        self.pos = nn.Parameter(torch.zeros(k, d))
        self.out = nn.Linear(d, d)
        self.out_features = d

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.pos)

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        tokens = torch.stack(xs, dim=1) + self.pos  # (batch, k, d)
        q, k, v = self.qkv(tokens).chunk(3, dim=-1)
        att = torch.softmax(q @ k.transpose(1, 2) / q.shape[-1] ** 0.5, dim=-1)
        return torch.relu(self.out((att @ v).mean(1)))


@FUSIONS.register("low_rank", "low-rank tensor fusion (LMF, rank 4)")
class LowRankFusion(Fusion):
    def __init__(self, k: int, d: int, rank: int = 4) -> None:
        super().__init__()
        # One factor per modality over [x; 1], so that the product keeps every lower-order
        # interaction (unimodal and pairwise) as in tensor fusion.
        self.factors = nn.Parameter(torch.empty(k, rank, d + 1, d))
        self.mix = nn.Parameter(torch.empty(rank))
        self.out_features = d
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.factors.normal_(0.0, (self.factors.shape[2]) ** -0.5)
            self.mix.fill_(1.0 / self.mix.numel())

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        out = None
        for factor, x in zip(self.factors, xs, strict=True):
            x1 = torch.cat([x, torch.ones_like(x[:, :1])], dim=-1)
            z = torch.einsum("bi,rio->bro", x1, factor)
            out = z if out is None else out * z
        return torch.einsum("bro,r->bo", out, self.mix)


def build_fusion(name: str, k: int, d: int) -> Fusion:
    """The registered fusion operator ``name`` for ``k`` synergy slices of width ``d``."""
    if k < 2:
        raise ConfigError("model.fusion", f"fusion needs at least 2 modalities, got {k}")
    return FUSIONS.get(name, field="model.fusion")(k, d)
