"""``robust``: the recommended defence when neighbours cannot be trusted — screening each copy
against the consensus of the copies a receiver got (its distance from the own copy, and its loss
on the receiver's own data as in UBAR, Guo et al. 2020), per-neighbour reputation across rounds,
then a rule over what is left (the gossip ``mean`` by default, or ``clipped``, ``cs_plus_rg``)."""

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


@AGGREGATION.register("robust", "screen copies (distance, loss on own data), remember who "
                      "lied (trust), then merge: the defence to use when neighbours cannot be "
                      "trusted")
class Robust(ScreeningAggregator):
    """Per component, at receiver i, over the copies that arrived and passed the checks:

    1. **Screen**: copy k is rejected when any of these holds (``d_k = ||x_k - x_own||``):

       - ``d_k > max_offset * ||x_own||`` (0: off): honest copies stay within a few percent
         of the own copy's norm under gossip, a sign flip sits near ``2 ||x||``, an IPM copy
         near ``||x||``;
       - with three peer copies or more, ``d_k > spread * D``, ``D`` the lower median of
         the peer distances (an honest copy's while honest peers are the majority);
       - ``L_k > L_ref + max(margin * L_ref, margin_abs)``: ``L_k`` is i's cross-entropy on
         its screening batch (``batch`` of its own training samples, drawn from (seed, i,
         round)) with copy k in place of its own copy of the component, everything else its
         own; ``L_ref`` is the lower median of the losses of every copy at i, own included
         (the consensus, not the own copy: under label skew an honest neighbour's copy is
         worse on i's data than i's own, and a test against the own copy rejected honest
         copies).
    2. **Trust**: an accepted copy's MH weight is scaled by ``t_ij``
       (:class:`~parsefl.aggregation.reputation.Reputation`: ``decay`` when j's copies were
       rejected — or clipped below ``clip_floor`` of their offset, 0 by default: ordinary
       clipping is no evidence — in a round, ``+recover`` otherwise); the weight taken away
       (all of a rejected copy's) goes to the own copy.
    3. **Inner rule** (``inner``, with ``inner_params``) over the own copy and the accepted
       copies with those weights. ``mean`` by default: on the quickstart ring ``clipped``
       costs 1.7 points without attack on its own (docs/robustness.md).

    Without the losses (:meth:`combine`: a copy the receiver cannot evaluate) it is the
    distance screen, then the inner rule with the MH weights (no trust: no sender ids).
    Every component a holder merges is in its own prediction (the audience rule: it holds the
    modality, the head, the fusion), so both backends screen every copy.
    """

    name = "robust"

    def __init__(self, inner: str = "mean", inner_params: dict[str, Any] | None = None,
                 margin: float = 2.0, margin_abs: float = 1.0, max_offset: float = 0.5,
                 spread: float = 3.0, batch: int = 32, decay: float = 0.5,
                 recover: float = 0.1, clip_floor: float = 0.0) -> None:
        if inner not in INNER:
            raise ConfigError("aggregation.params.inner",
                              f"expected one of {', '.join(INNER)}, got {inner!r}")
        for field, v in (("margin", margin), ("margin_abs", margin_abs),
                         ("max_offset", max_offset)):
            if not v >= 0:
                raise ConfigError(f"aggregation.params.{field}", f"expected >= 0, got {v}")
        if not spread >= 1:
            raise ConfigError("aggregation.params.spread", f"expected >= 1, got {spread}")
        if not 0 <= batch <= MAX_BATCH:  # 0: no loss screen (no forward passes)
            raise ConfigError("aggregation.params.batch",
                              f"expected 0 <= batch <= {MAX_BATCH}, got {batch}")
        if not 0 <= clip_floor <= 1:
            raise ConfigError("aggregation.params.clip_floor",
                              f"expected 0 <= clip_floor <= 1, got {clip_floor}")
        self.inner = build_aggregator(inner, inner_params)
        self.margin, self.margin_abs = float(margin), float(margin_abs)
        self.max_offset, self.spread = float(max_offset), float(spread)
        self.batch, self.clip_floor = int(batch), float(clip_floor)
        self.reputation = Reputation(decay, recover)
        self.screened = {"copies": 0, "rejected": 0, "offset": 0, "spread": 0, "loss": 0}
        self.rejected_from: dict[int, int] = {}

    def combine(self, values: torch.Tensor, mask: torch.Tensor,
                weights: torch.Tensor) -> torch.Tensor:
        peer = mask.clone()
        peer[:, 0] = False
        offset_ok, spread_ok = self._near(values, peer)
        keep = mask & ~peer | peer & offset_ok & spread_ok
        w = torch.where(keep, weights, torch.zeros_like(weights))
        w[:, 0] = weights.sum(dim=1) - w[:, 1:].sum(dim=1)
        return self._inner(values, keep, w)[0]

    def combine_screened(self, values: torch.Tensor, mask: torch.Tensor,
                         weights: torch.Tensor, losses: torch.Tensor,
                         receivers: Sequence[int], senders: Sequence[Sequence[int]],
                         ) -> torch.Tensor:
        peer = mask.clone()
        peer[:, 0] = False
        offset_ok, spread_ok = self._near(values, peer)
        loss_ok = self._fits(losses, mask)
        accept = peer & offset_ok & spread_ok & loss_ok
        self._count(senders, peer, {"offset": ~offset_ok, "spread": ~spread_ok,
                                    "loss": ~loss_ok}, accept)
        trust = self._trust(receivers, senders, mask.shape).to(weights.device)
        keep = mask & ~peer | accept
        w = torch.where(accept, weights * trust.to(weights.dtype), torch.zeros_like(weights))
        w[:, 0] = weights.sum(dim=1) - w[:, 1:].sum(dim=1)
        out, scale = self._inner(values, keep, w)
        penalised = peer & (~accept | (scale < self.clip_floor))
        self._observe(receivers, senders, peer, penalised)
        return out

    def _fits(self, losses: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(H, K)``: the loss screen. The reference is the consensus of the copies, the lower
        median of the losses of every copy at the receiver (own included), not the own copy
        alone (under label skew an honest neighbour's copy is worse on the receiver's data
        than its own; the median is an honest copy's as long as honest copies are the
        majority). ``batch`` 0: no loss screen, every copy fits."""
        if self.batch == 0:
            return torch.ones_like(mask)
        ref = _lower_median(losses.nan_to_num(float("inf")), mask)
        limit = ref + torch.clamp(self.margin * ref, min=self.margin_abs)
        return losses <= limit  # a NaN loss is never <= : rejected

    def _near(self, values: torch.Tensor,
              peer: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(H, K)`` twice: the distance screens (offset, spread), on each copy's offset from
        the own copy ``d_k = ||x_k - x_own||``: rejected when ``d_k > max_offset * ||x_own||``
        (0: off), or ``d_k > spread * (lower median of the peer distances)`` (with three
        peers or more: with two, the "median" is the nearer copy, an attacker's as often as
        not, and honest copies early in a run are more than 3x apart).
        Honest copies stay within a few percent of the own copy's norm under gossip; a sign
        flip sits near ``2 ||x||``, an IPM copy near ``||x||``."""
        own = values[:, 0]
        dist = torch.zeros(peer.shape, dtype=torch.float64, device=values.device)
        for j in range(1, values.shape[1]):  # per slot: no (H, K, numel) temporary
            dist[:, j] = torch.linalg.vector_norm(values[:, j] - own, dim=1).double()
        offset_ok = torch.ones_like(peer)
        if self.max_offset > 0:
            size = torch.linalg.vector_norm(own, dim=1).double()[:, None]
            offset_ok = dist <= self.max_offset * size
        typical = _lower_median(dist.masked_fill(~peer, float("inf"))[:, 1:], peer[:, 1:])
        several = peer.sum(dim=1, keepdim=True) >= 3
        spread_ok = ~several | (dist <= self.spread * typical)
        return offset_ok, spread_ok  # a non-finite distance is never <= : rejected

    def end_round(self) -> None:
        self.reputation.end_round()

    def state(self) -> dict[str, Any]:
        """Trust, and the screen's counts so far (results.json ``screened``)."""
        return {**self.reputation.state(), "screened": self.report()}

    def load(self, state: dict[str, Any]) -> None:
        self.reputation.load(state)
        counts = state.get("screened", {})
        got = {k: counts.get(k, 0) for k in self.screened}
        pairs = counts.get("rejected_from", [])
        if not all(isinstance(v, int) and v >= 0 for v in got.values()) or not all(
                isinstance(j, int) and isinstance(n, int) and n >= 0 for j, n in pairs):
            raise ValueError(f"bad screening counts {counts!r}")
        self.screened, self.rejected_from = got, dict(pairs)

    def report(self) -> dict[str, Any]:
        """Copies screened, rejected (by any test) and per test, and rejections per sender
        (``rejected_from``: ``[[sender, copies], ...]``), over the whole run."""
        return {**self.screened,
                "rejected_from": [[j, n] for j, n in sorted(self.rejected_from.items())]}

    def _count(self, senders: Sequence[Sequence[int]], peer: torch.Tensor,
               failed: dict[str, torch.Tensor], accept: torch.Tensor) -> None:
        rejected = peer & ~accept
        self.screened["copies"] += int(peer.sum())
        self.screened["rejected"] += int(rejected.sum())
        for test, bad in failed.items():
            self.screened[test] += int((peer & bad).sum())
        if bool(rejected.any()):
            for h, k in rejected.nonzero().tolist():
                j = senders[h][k - 1]
                self.rejected_from[j] = self.rejected_from.get(j, 0) + 1

    def _inner(self, values: torch.Tensor, mask: torch.Tensor,
               weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.inner.name == "mean":
            w = torch.where(mask, weights, torch.zeros_like(weights)).to(values.dtype)
            return torch.bmm(w[:, None, :], values)[:, 0], torch.ones_like(weights)
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


def _lower_median(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(H, 1)``: per row, the lower median of ``x`` over ``mask`` (masked entries must hold
    +inf; a row with no entry gives +inf)."""
    if x.shape[1] == 0:  # no column (no peer copy at all)
        return torch.full((x.shape[0], 1), float("inf"), dtype=x.dtype, device=x.device)
    ordered = x.masked_fill(~mask, float("inf")).sort(dim=1).values
    rank = ((mask.sum(dim=1, keepdim=True) - 1).clamp_min(0)) // 2
    return ordered.gather(1, rank)
