"""``robust``: the recommended defence when neighbours cannot be trusted — screening on the
receiver's own data (UBAR, Guo et al. 2020: accept a neighbour's copy only if it does not raise
the loss on your own data), per-neighbour reputation across rounds, then a clipping rule over
what is left (``clipped`` by default, or ``cs_plus_rg``, or the plain gossip ``mean``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from parsefl.aggregation.base import ScreeningAggregator, build_aggregator
from parsefl.aggregation.reputation import Reputation
from parsefl.errors import ConfigError
from parsefl.registry import AGGREGATION

INNER = ("clipped", "cs_plus_rg", "mean")
MAX_BATCH = 4096  # screening samples per receiver per round: a typo past this, not rigour


@AGGREGATION.register("robust", "screen copies on own data, remember who lied (trust), then "
                      "clip: the defence to use when neighbours cannot be trusted")
class Robust(ScreeningAggregator):
    """Per component, at receiver i, over the copies that arrived and passed the checks:

    1. **Screen**: ``L_k`` = i's cross-entropy on its screening batch (``batch`` of its own
       training samples, drawn from (seed, i, round)) with copy k in place of its own copy
       of the component, everything else its own; copy k is rejected when
       ``L_k > L_own + max(margin * L_own, margin_abs)``.
    2. **Trust**: an accepted copy's MH weight is scaled by ``t_ij``
       (:class:`~parsefl.aggregation.reputation.Reputation`: ``decay`` when j's copies were
       rejected or clipped below ``clip_floor`` of their offset in a round, ``+recover``
       otherwise); the weight taken away (all of a rejected copy's) goes to the own copy.
    3. **Inner rule** (``inner``, with ``inner_params``) over the own copy and the accepted
       copies with those weights.

    Without the losses (:meth:`combine`: a copy the receiver cannot evaluate) it is the inner
    rule alone, with the MH weights. Every component a holder merges is in its own prediction
    (the audience rule: it holds the modality, the head, the fusion), so both backends screen
    every copy.
    """

    name = "robust"

    def __init__(self, inner: str = "clipped", inner_params: dict[str, Any] | None = None,
                 margin: float = 2.0, margin_abs: float = 1.0, batch: int = 64,
                 decay: float = 0.5, recover: float = 0.1, clip_floor: float = 0.5) -> None:
        if inner not in INNER:
            raise ConfigError("aggregation.params.inner",
                              f"expected one of {', '.join(INNER)}, got {inner!r}")
        for field, v in (("margin", margin), ("margin_abs", margin_abs)):
            if not v >= 0:
                raise ConfigError(f"aggregation.params.{field}", f"expected >= 0, got {v}")
        if not 1 <= batch <= MAX_BATCH:
            raise ConfigError("aggregation.params.batch",
                              f"expected 1 <= batch <= {MAX_BATCH}, got {batch}")
        if not 0 <= clip_floor <= 1:
            raise ConfigError("aggregation.params.clip_floor",
                              f"expected 0 <= clip_floor <= 1, got {clip_floor}")
        self.inner = build_aggregator(inner, inner_params)
        self.margin, self.margin_abs = float(margin), float(margin_abs)
        self.batch, self.clip_floor = int(batch), float(clip_floor)
        self.reputation = Reputation(decay, recover)

    def combine(self, values: torch.Tensor, mask: torch.Tensor,
                weights: torch.Tensor) -> torch.Tensor:
        return self._inner(values, mask, weights)[0]

    def combine_screened(self, values: torch.Tensor, mask: torch.Tensor,
                         weights: torch.Tensor, losses: torch.Tensor,
                         receivers: Sequence[int], senders: Sequence[Sequence[int]],
                         ) -> torch.Tensor:
        peer = mask.clone()
        peer[:, 0] = False
        own = losses[:, :1]
        limit = own + torch.clamp(self.margin * own, min=self.margin_abs)
        accept = peer & (losses <= limit)  # a NaN loss is never <= : rejected
        trust = self._trust(receivers, senders, mask.shape).to(weights.device)
        keep = mask & ~peer | accept
        w = torch.where(accept, weights * trust.to(weights.dtype), torch.zeros_like(weights))
        w[:, 0] = weights.sum(dim=1) - w[:, 1:].sum(dim=1)
        out, scale = self._inner(values, keep, w)
        penalised = peer & (~accept | (scale < self.clip_floor))
        self._observe(receivers, senders, peer, penalised)
        return out

    def end_round(self) -> None:
        self.reputation.end_round()

    def state(self) -> dict[str, Any]:
        return self.reputation.state()

    def load(self, state: dict[str, Any]) -> None:
        self.reputation.load(state)

    def _inner(self, values: torch.Tensor, mask: torch.Tensor,
               weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.inner.name == "mean":
            w = torch.where(mask, weights, torch.zeros_like(weights)).to(values.dtype)
            return (w[..., None] * values).sum(dim=1), torch.ones_like(weights)
        return self.inner.clip(values, mask, weights)

    def _trust(self, receivers: Sequence[int], senders: Sequence[Sequence[int]],
               shape: torch.Size) -> torch.Tensor:
        """``(H, K)``: each column's trust (1 on the own copy and padding)."""
        out = torch.ones(shape, dtype=torch.float64)
        for h, (i, peers) in enumerate(zip(receivers, senders, strict=True)):
            for k, j in enumerate(peers, start=1):
                out[h, k] = self.reputation.of(i, j)
        return out

    def _observe(self, receivers: Sequence[int], senders: Sequence[Sequence[int]],
                 peer: torch.Tensor, penalised: torch.Tensor) -> None:
        real, bad = peer.cpu().tolist(), penalised.cpu().tolist()
        pairs, flags = [], []
        for h, (i, peers) in enumerate(zip(receivers, senders, strict=True)):
            for k, j in enumerate(peers, start=1):
                if real[h][k]:
                    pairs.append((i, j))
                    flags.append(bad[h][k])
        self.reputation.observe(pairs, flags)
