"""Geometric median by smoothed Weiszfeld iterations (RFA, Pillutla, Kakade & Harchaoui 2022)."""

from __future__ import annotations

import torch

from parsefl.aggregation.base import StackedAggregator
from parsefl.errors import ConfigError
from parsefl.registry import AGGREGATION


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
        if iters < 1 or nu <= 0:
            raise ConfigError("aggregation.params",
                              f"expected iters >= 1 and nu > 0, got {iters}, {nu}")
        self.iters, self.nu = int(iters), float(nu)

    def combine(self, values: torch.Tensor, mask: torch.Tensor,
                weights: torch.Tensor) -> torch.Tensor:
        w = torch.where(mask, weights, torch.zeros_like(weights))
        z = (w[..., None] * values).sum(dim=1) / w.sum(dim=1, keepdim=True)
        for _ in range(self.iters):
            dist = torch.linalg.vector_norm(values - z[:, None], dim=2).clamp_min(self.nu)
            beta = w / dist
            z = (beta[..., None] * values).sum(dim=1) / beta.sum(dim=1, keepdim=True)
        return z
