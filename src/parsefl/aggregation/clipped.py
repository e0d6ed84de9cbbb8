"""Self-centred clipping (ClippedGossip), He, Karimireddy & Jaggi, "Byzantine-robust
decentralized learning via ClippedGossip" (2022), with the adaptive radius of its public code
(epfml/byzantine-robust-decentralized-optimizer, ``SelfCenteredClipping``)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from parsefl.aggregation._stack import workspace
from parsefl.aggregation.base import StackedAggregator
from parsefl.errors import ConfigError
from parsefl.registry import AGGREGATION

Radius = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@AGGREGATION.register("clipped", "self-centred clipping (ClippedGossip) with adaptive radius")
class ClippedGossip(StackedAggregator):
    """``x_i <- x_i + sum_j w_ij * CLIP(x_j - x_i, tau_i)``, ``CLIP(z, tau) = min(1,
    tau / ||z||) * z``, over the peers' copies that arrived (a missing or rejected peer's
    weight stays with ``x_i``, i.e. contributes a zero move); the norm is over the whole
    component. Radius ``tau_i``: fixed (``tau``), or adaptive (default): the ``(b+1)``-th
    largest of the distances ``||x_j - x_i||`` over i's peers, ``b = byzantine`` (default 1:
    the second largest, the public code's rule), or the smallest distance when i has at most
    ``b`` peers. So the ``b`` farthest peers are clipped to the radius of the next one.

    Few holders: alone, the own copy; with one neighbour (adaptive) tau is that neighbour's
    own distance, so nothing is clipped and the rule is the plain gossip mean (a sole
    neighbour cannot be told apart from an honest one); with two neighbours the farther one
    is clipped to the nearer one's distance.
    """

    name = "clipped"

    def __init__(self, tau: float | None = None, byzantine: int = 1) -> None:
        if tau is not None and tau <= 0:
            raise ConfigError("aggregation.params.tau", f"expected tau > 0, got {tau}")
        if byzantine < 0:
            raise ConfigError("aggregation.params.byzantine", f"expected >= 0, got {byzantine}")
        self.tau, self.byzantine = tau, int(byzantine)

    def combine(self, values: torch.Tensor, mask: torch.Tensor,
                weights: torch.Tensor) -> torch.Tensor:
        return self.clip(values, mask, weights)[0]

    def clip(self, values: torch.Tensor, mask: torch.Tensor,
             weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The merged copies and the factor each copy's offset was scaled by."""
        return clipped_sum(values, mask, weights, self.radius)

    def radius(self, dist: torch.Tensor, peer: torch.Tensor,
               weights: torch.Tensor) -> torch.Tensor:
        """``(H, 1)``: each holder's clipping radius from its peer distances ``dist``
        (``(H, K)``, 0 at the own copy), ``peer`` the real peer copies."""
        return self._radius(dist, peer)

    def _radius(self, dist: torch.Tensor, peer: torch.Tensor) -> torch.Tensor:
        if self.tau is not None:
            return torch.full_like(dist[:, :1], self.tau)
        ordered = dist.masked_fill(~peer, float("-inf")).sort(dim=1, descending=True).values
        n_peers = peer.sum(dim=1, keepdim=True)
        rank = torch.minimum(torch.full_like(n_peers, self.byzantine), (n_peers - 1).clamp_min(0))
        return ordered.gather(1, rank).clamp_min(0.0)  # no peer: -inf -> 0, unused


def clipped_sum(values: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor,
                radius: Radius) -> tuple[torch.Tensor, torch.Tensor]:
    """``own + sum_j w_j CLIP(x_j - own, tau)`` per holder, and the ``(H, K)`` factor each
    copy's offset was scaled by (1: not clipped; 1 on the own copy and padding). ``radius``
    gives ``tau`` (``(H, 1)``) from the distances, the peer mask and the weights."""
    own = values[:, 0]
    # Per peer slot, into a reused workspace: no (H, K, numel) temporaries.
    deltas = workspace(values.shape[1] - 1, own).unbind(0)
    dist = torch.zeros(mask.shape, dtype=values.dtype, device=values.device)  # (H, K)
    for j, delta in enumerate(deltas, start=1):
        torch.sub(values[:, j], own, out=delta)
        dist[:, j] = torch.linalg.vector_norm(delta, dim=1)
    peer = mask.clone()
    peer[:, 0] = False
    tau = radius(dist, peer, weights)
    scale = torch.where(peer & (dist > tau), tau / dist.clamp_min(1e-30), torch.ones_like(dist))
    w = torch.where(peer, weights, torch.zeros_like(weights)) * scale
    out = own.clone()
    for j, delta in enumerate(deltas, start=1):
        out.addcmul_(delta, w[:, j : j + 1])
    return out, scale
