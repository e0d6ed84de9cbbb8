"""CS+-RG: robust gossip with the CS+ clipped sum, Gaucher, Dieuleveut & Hendrikx, "Unified
Breakdown Analysis for Byzantine Robust Gossip" (ICML 2025, arXiv 2410.10418), with the
adaptive threshold of its public code (renaudgaucher/Byzantine-Robust-Gossip,
``aggregators/robust_gossip.py``: ``cs_plus`` inside ``make_defense``)."""

from __future__ import annotations

import torch

from parsefl.aggregation.base import StackedAggregator
from parsefl.aggregation.clipped import clipped_sum
from parsefl.errors import ConfigError
from parsefl.registry import AGGREGATION

EPS = 1e-9  # cumulative weights are sums of floats: 1 - 2/3 must still count as 1/3


@AGGREGATION.register("cs_plus_rg", "CS+-RG: clip neighbour differences at the weighted "
                      "quantile that leaves the 2b heaviest-distance weight clipped")
class CSPlusRG(StackedAggregator):
    """F-RG with F = CS+ (Gaucher et al. 2025, eq. of the F-RG step and Def. of CS+):

        ``x_i <- x_i + eta * sum_j w_ij CLIP(x_j - x_i, tau_i)``

    over the copies that arrived (own copy included, distance 0). ``tau_i`` is a weighted
    quantile of the distances ``d_j = ||x_j - x_i||``: sort the copies by ``d`` ascending,
    with cumulative weights ``C_(k)``; with ``b_w`` the Byzantine weight to tolerate and
    ``W`` the total weight, ``tau_i = max { d_(k) : C_(k) <= W - 2 b_w }`` (0 if no copy
    qualifies; no clipping when ``b_w = 0``). So the copies holding the farthest ``2 b_w``
    of weight are clipped to the distance of the next one — twice ClippedGossip's one
    neighbour, which is what gives CS+-RG its near-optimal breakdown point. As in the public
    code ``b_w = byzantine * w_B`` with ``w_B`` a Byzantine neighbour's weight; not knowing
    which neighbour that is, the receiver takes its largest peer weight. ``eta`` is the
    communication step (1: the MH gossip step; the public code's Laplacian step ``1 /
    lambda_max`` plays the same role there).

    Few holders: alone, the own copy. With MH weights on a ring (1/3 each) and ``byzantine
    = 1``, ``W - 2 b_w = 1/3`` is the own copy's weight: ``tau = 0`` and nothing moves — the
    ring is past the rule's breakdown point for one Byzantine neighbour, and CS+-RG says so
    by not mixing; with ``byzantine = 0`` it is the gossip mean.
    """

    name = "cs_plus_rg"

    def __init__(self, byzantine: int = 1, eta: float = 1.0) -> None:
        if byzantine < 0:
            raise ConfigError("aggregation.params.byzantine", f"expected >= 0, got {byzantine}")
        if not 0 < eta <= 1:
            raise ConfigError("aggregation.params.eta", f"expected 0 < eta <= 1, got {eta}")
        self.byzantine, self.eta = int(byzantine), float(eta)

    def combine(self, values: torch.Tensor, mask: torch.Tensor,
                weights: torch.Tensor) -> torch.Tensor:
        return self.clip(values, mask, weights)[0]

    def clip(self, values: torch.Tensor, mask: torch.Tensor,
             weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The merged copies and the factor each copy's offset was scaled by."""
        own = values[:, 0]
        out, scale = clipped_sum(values, mask, weights, self.radius)
        if self.eta != 1.0:
            out = own + self.eta * (out - own)
        return out, scale

    def radius(self, dist: torch.Tensor, peer: torch.Tensor,
               weights: torch.Tensor) -> torch.Tensor:
        """``(H, 1)``: the CS+ threshold (see the class docstring)."""
        real = peer.clone()
        real[:, 0] = True  # the own copy counts, at distance 0
        w = torch.where(real, weights, torch.zeros_like(weights)).double()
        d = dist.double().masked_fill(~real, float("inf"))
        order = d.argsort(dim=1, stable=True)
        sorted_d, cum = d.gather(1, order), w.gather(1, order).cumsum(dim=1)
        b_w = self.byzantine * torch.where(peer, w, torch.zeros_like(w)).amax(dim=1,
                                                                              keepdim=True)
        target = w.sum(dim=1, keepdim=True) - 2 * b_w
        ok = (cum <= target + EPS) & sorted_d.isfinite()
        tau = torch.where(ok, sorted_d, torch.zeros_like(sorted_d)).amax(dim=1, keepdim=True)
        tau = torch.where(b_w > 0, tau, torch.full_like(tau, float("inf")))
        return tau.to(dist.dtype)
