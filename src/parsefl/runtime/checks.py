"""Receive-side checks, always on: a received copy of a component is rejected before
aggregation when it is non-finite, has other tensor names, shapes or dtypes than the
receiver's own copy, or its L2 norm exceeds the configured bound. A rejected copy is treated
as a missing neighbour (its MH weight goes back to the receiver's own copy, as for a copy
that never arrived), logged, and counted per reason.

One object serves every path: the reference runtime (:meth:`ReceiveChecks.check` per copy),
the vectorized backend (:meth:`ReceiveChecks.stacked_valid`, a ``(holders, copies)`` mask
computed over the padded stack in one pass) and the distributed wire path
(:meth:`ReceiveChecks.check_message`, against the receiver's expected specs).

The norm bound. ``max_norm`` is absolute and generous by default (1e4 per component: the
components of the shipped models have norms of order 1-100, so honest copies are never
rejected, while overflowing values and gross scaling are). ``max_ratio`` (off by default)
bounds a copy's norm relative to the receiver's own, ``||copy|| <= max_ratio * max(||own||,
1)``: tighter, but a relative bound can reject honest copies early in training, when own
copies of small components (biases) are near zero, hence the floor of 1 and the opt-in.
Subtler attacks (sign flips, ALIE, IPM) pass these checks by design: robust aggregators
(``aggregation.name``) handle them.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping

import torch

from parsefl.types import Tensors

log = logging.getLogger(__name__)

REASONS = ("non_finite", "names", "shape", "dtype", "norm", "capability")
DETAIL = {  # what each reason means, for the logs
    "non_finite": "contains NaN or Inf", "names": "tensor names differ from the expected",
    "shape": "dtype/shape: shape differs from the expected",
    "dtype": "dtype/shape: dtype differs from the expected", "norm": "norm above the bound",
    # a handshake entry not signed by the agent it describes for this handshake (signed runs)
    "capability": "capability entry not signed by its agent for this handshake",
}


class ReceiveChecks:
    """The checks and their per-reason rejection counts."""

    def __init__(self, max_norm: float = 1e4, max_ratio: float | None = None) -> None:
        self.max_norm = float(max_norm)
        self.max_ratio = max_ratio
        self._counts: Counter = Counter()
        self._pending: dict[str, torch.Tensor] = {}  # stacked counts not yet read (no sync)
        self._seen: set[tuple[str, str]] = set()

    # -- one copy (reference runtime, wire) ------------------------------------------------
    def reason(self, own: Tensors, copy: Tensors) -> str | None:
        """Why ``copy`` is rejected against the receiver's ``own`` copy (None: accepted)."""
        if set(copy) != set(own):
            return "names"
        for name, t in copy.items():
            if tuple(t.shape) != tuple(own[name].shape):
                return "shape"
            if t.dtype != own[name].dtype:
                return "dtype"
        return self._value_reason(copy, own)

    def _value_reason(self, copy: Tensors, own: Tensors | None) -> str | None:
        sq = torch.zeros((), dtype=torch.float64)
        for t in copy.values():
            if t.is_floating_point():
                if not bool(torch.isfinite(t).all()):
                    return "non_finite"
                sq = sq + t.double().pow(2).sum().cpu()
        norm = float(sq.sqrt())
        if norm > self.max_norm:
            return "norm"
        if self.max_ratio is not None and own is not None:
            own_sq = sum(float(t.double().pow(2).sum()) for t in own.values()
                         if t.is_floating_point())
            if norm > self.max_ratio * max(own_sq ** 0.5, 1.0):
                return "norm"
        return None

    def check(self, own: Tensors, copy: Tensors, what: str = "copy") -> bool:
        """Accept ``copy`` (True) or count, log and reject it (False)."""
        why = self.reason(own, copy)
        if why is None:
            return True
        self.reject(why, what)
        return False

    def reject(self, why: str, what: str) -> None:
        self._counts[why] += 1
        # Every rejection is counted; the first per (what, why) is a warning, repeats of the
        # same sender/component are logged at INFO so that an attacker cannot flood the log.
        level = logging.INFO if (what, why) in self._seen else logging.WARNING
        self._seen.add((what, why))
        log.log(level, "rejected %s: %s (%s)", what, why, DETAIL[why])

    def check_message(self, msg, expected: Mapping) -> str | None:  # noqa: ANN001
        """The wire path: ``msg`` (kind "params") against the receiver's expected tensor specs
        ``expected[(dst, component)] = {name: (dtype name, shape)}``; the reason or None.
        The caller logs and counts (its own rejection log), here only the value checks'
        reasons are counted, so that results.json sees every reason once."""
        spec = expected.get((msg.dst, msg.component))
        if spec is None or set(msg.body) != set(spec):
            why = "names"
        else:
            why = None
            for name, t in msg.body.items():
                dtype, shape = spec[name]
                if tuple(t.shape) != tuple(shape):
                    why = "shape"
                elif str(t.dtype).removeprefix("torch.") != dtype:
                    why = "dtype"
                if why:
                    break
            why = why or self._value_reason(msg.body, None)
        if why:
            self._counts[why] += 1
        return why

    # -- stacked (vectorized backend) ------------------------------------------------------
    def stacked_valid(self, values: torch.Tensor, mask: torch.Tensor,
                      norm: torch.Tensor | None = None) -> torch.Tensor:
        """``(H, K)``: which real copies of a padded ``(H, K, numel)`` stack pass (the own
        copies at ``[:, 0]`` always do); the rejected ones are counted without a host sync.
        ``norm``: the copies' ``(H, K)`` L2 norms when the caller has them already."""
        # One pass: a non-finite entry makes the norm NaN or inf (an entry above ~1e19 in
        # float32 overflows the norm too: rejected either way, counted as non_finite).
        if norm is None:
            norm = torch.linalg.vector_norm(values, dim=2)
        finite = torch.isfinite(norm)
        ok_norm = norm <= self.max_norm
        if self.max_ratio is not None:  # a non-finite own copy bounds nothing (as in reason)
            own = norm[:, :1]
            ok_norm &= norm <= torch.where(torch.isfinite(own), self.max_ratio *
                                           own.clamp_min(1.0), torch.inf)
        valid = mask & finite & ok_norm
        valid[:, 0] = True
        peers = mask[:, 1:]
        self._add("non_finite", (peers & ~finite[:, 1:]).sum())
        self._add("norm", (peers & finite[:, 1:] & ~ok_norm[:, 1:]).sum())
        return valid

    def rows_bad(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(H,)`` per stacked copy (each sent unchanged to every peer): non-finite, too
        large. The linear fast path folds both back (no padded stack, no host sync)."""
        finite = torch.isfinite(flat).all(dim=1)
        norm = torch.linalg.vector_norm(torch.where(finite[:, None], flat, 0.0), dim=1)
        return ~finite, finite & (norm > self.max_norm)

    def _add(self, why: str, count: torch.Tensor) -> None:
        prev = self._pending.get(why)
        self._pending[why] = count if prev is None else prev + count

    def add_stacked(self, why: str, count: torch.Tensor) -> None:
        """Count ``count`` (a tensor) rejections without a host sync."""
        self._add(why, count)

    @property
    def counts(self) -> dict[str, int]:
        """Rejections per reason so far (reads the stacked counts: one host sync); new
        stacked rejections are logged here."""
        for why, t in self._pending.items():
            n = int(t)
            if n:
                log.warning("rejected %d stacked copies: %s", n, why)
            self._counts[why] += n
        self._pending = {}
        return {why: self._counts[why] for why in REASONS if self._counts[why]}

    def state(self) -> dict[str, int]:
        return dict(self.counts)

    def load(self, counts: Mapping[str, int]) -> None:
        self._counts = Counter(counts)
        self._pending = {}
