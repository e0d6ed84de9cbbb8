"""Geometric median by smoothed Weiszfeld iterations (RFA, Pillutla, Kakade & Harchaoui 2022)."""

from __future__ import annotations

import torch

from parsefl.aggregation._stack import workspace
from parsefl.aggregation.base import StackedAggregator
from parsefl.errors import ConfigError
from parsefl.registry import AGGREGATION

# RFA converges in a few iterations; each costs a (H, K, K) product per component per round,
# so a count past this is a typo (1e9 would hang the first merge), not more accuracy.
MAX_ITERS = 1_000


@AGGREGATION.register("geomed", "weighted geometric median (smoothed Weiszfeld, RFA)")
class GeometricMedian(StackedAggregator):
    """The MH-weighted geometric median of the copies (own copy included), whole component
    as one vector: ``z <- sum_k b_k x_k / sum_k b_k``, ``b_k = w_k / max(||x_k - z||, nu)``,
    ``iters`` times from the weighted mean (smoothed Weiszfeld, as RFA; ``nu`` keeps a copy
    that ``z`` reaches from dividing by zero).

    Few holders: alone, the own copy; with two copies the geometric median of two points is
    the heavier one (any point between them for equal weights: the iteration then stays at the
    weighted mean), so one neighbour with weight below the own copy's is pulled toward the own
    copy; with three copies it is the point minimising the weighted sum of distances, which
    one far-away copy moves only by a bounded amount.
    """

    name = "geomed"

    def __init__(self, iters: int = 8, nu: float = 1e-6) -> None:
        if not 1 <= iters <= MAX_ITERS:
            raise ConfigError("aggregation.params.iters",
                              f"expected 1 <= iters <= {MAX_ITERS}, got {iters}")
        if not nu > 0:
            raise ConfigError("aggregation.params.nu", f"expected nu > 0, got {nu}")
        self.iters, self.nu = int(iters), float(nu)

    def combine(self, values: torch.Tensor, mask: torch.Tensor,
                weights: torch.Tensor) -> torch.Tensor:
        # z stays a convex combination of the copies, z = own + sum_j a_j (x_j - own), so
        # every distance follows from the Gram matrix of the offsets: the iterations run on
        # (H, K) coefficients and the (H, K, numel) stack is read twice, not twice per
        # iteration.
        own, k = values[:, 0], values.shape[1]
        if k == 1:
            return own.clone()
        w = torch.where(mask, weights, torch.zeros_like(weights)).double()
        offsets = workspace(k, own)  # (K, H, numel); the own copy's offset is 0
        offsets[0].zero_()
        for j in range(1, k):
            torch.sub(values[:, j], own, out=offsets[j])
        per_holder = offsets.transpose(0, 1)  # (H, K, numel), a view
        gram = torch.bmm(per_holder, per_holder.transpose(1, 2)).double()  # (H, K, K)
        a = w / w.sum(dim=1, keepdim=True)
        for _ in range(self.iters):
            ga = torch.bmm(gram, a[..., None]).squeeze(2)  # (H, K)
            sq = gram.diagonal(dim1=1, dim2=2) - 2 * ga + (a * ga).sum(dim=1, keepdim=True)
            beta = w / sq.clamp_min(0.0).sqrt().clamp_min(self.nu)
            a = beta / beta.sum(dim=1, keepdim=True)
        a = a.to(values.dtype)
        out = own.clone()
        for j in range(1, k):
            out.addcmul_(offsets[j], a[:, j : j + 1])
        return out
