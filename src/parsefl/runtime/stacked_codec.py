"""Compressed gossip over stacked copies (the vectorized backend's side of
``communication:``): the same operators and row keys as the reference runtime, applied to every
holder's copy of a component at once.

Without error feedback every holder sends ``C(x_h)`` and keeps its own ``x_h``: with a linear
aggregator the merge is ``M_off @ C(X) + diag(M) * X`` (``M_off``: the mixing matrix without
its diagonal); otherwise the padded stack holds the decoded copies and the own copy in column 0.
With error feedback (CHOCO-SGD, see ``compressors.choco``) the public copies ``X_hat`` are one
``(H, numel)`` block per component: ``Q = C(X - X_hat)``, ``X_hat += Q``, and
``X += gamma * (mix(X_hat) - X_hat)`` with the aggregator's own mix. One public copy per sender
is what every receiver holds while every difference arrives, which the simulator guarantees;
a difference that fails the receive checks is counted and dropped for its sender too (the
reference runtime drops it at that receiver only: the two differ only when a check rejects).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from parsefl.aggregation import Aggregator
from parsefl.compressors import Communication, Compressor
from parsefl.compressors.choco import advance, consensus
from parsefl.runtime.checks import ReceiveChecks

if TYPE_CHECKING:
    from parsefl.attacks import Adversary
    from parsefl.runtime.stacked_gossip import StackedMix

Block = dict[str, torch.Tensor]  # parameter name -> (H, numel of that tensor)


@dataclass
class StackedCodec:
    """One component's compression for one round of stacked gossip."""

    comm: Communication
    compressor: Compressor
    hat: Block | None = None  # error feedback: the holders' public copies (None: off)

    def roundtrip(self, mix: StackedMix, block: Mapping[str, torch.Tensor], r: int,
                  senders: tuple[int, ...] | None = None) -> Block:
        """What the receivers decode of rows ``block`` sent by ``senders`` (default: the
        holders), each row with its sender's keys."""
        senders = mix.order if senders is None else senders
        out = {}
        for n, x in block.items():  # rows of flat copies, as (rows, *tensor shape)
            shape = mix.parts[0][0].params[n].shape[1:]
            keys = self.comm.keys(mix.comp, n, senders, r).to(x.device)
            out[n] = self.compressor.roundtrip(x.reshape(-1, *shape), keys).reshape(x.shape)
        return out

    def apply(self, mix: StackedMix, aggregator: Aggregator, checks: ReceiveChecks | None,
              adversary: Adversary | None, r: int) -> None:
        own = {n: mix._gather(n) for n in mix.names}
        if self.hat is None:
            merged = self._mix(mix, own, self.roundtrip(mix, own, r), aggregator, checks,
                               adversary, r)
            for n in mix.names:
                mix._write(n, merged[n])
            return
        hat = self.hat
        q = self.roundtrip(mix, {n: own[n] - hat[n] for n in mix.names}, r)
        if checks is not None:
            q = _drop_bad(mix, q, checks)
        hat.update(advance(hat, q))  # the store's block: every holder's public copy at once
        mixed = self._mix(mix, hat, hat, aggregator, None, None, r)
        for n, x in consensus(own, hat, mixed, self.comm.gamma_for(mix.comp)).items():
            mix._write(n, x)

    def _mix(self, mix: StackedMix, own: Block, sent: Block, aggregator: Aggregator,
             checks: ReceiveChecks | None, adversary: Adversary | None, r: int) -> Block:
        """Each holder's merge of its ``own`` rows with the ``sent`` rows of its peers."""
        if mix.sparse(checks, adversary, r):
            matrix = mix.matrix
            if checks is not None:  # a rejected copy leaves its receivers' rows (stacked_merge)
                flat = torch.cat([sent[n] for n in mix.names], dim=1)
                matrix = mix.matrix_for(aggregator, mix.bad_rows(flat, checks))
            off, diag = _split(mix, matrix)
            return {n: torch.sparse.mm(off, sent[n]) + diag * own[n] for n in mix.names}
        return _unflat(mix, mix.merge_padded(
            torch.cat([own[n] for n in mix.names], dim=1), aggregator, checks, adversary, r,
            sent=torch.cat([sent[n] for n in mix.names], dim=1),
            encode=lambda values, crafted: self._encode_crafted(mix, values, crafted, r)))

    def _encode_crafted(self, mix: StackedMix, values: torch.Tensor, crafted: torch.Tensor,
                        r: int) -> torch.Tensor:
        """The attackers' crafted copies travel compressed too, with their sender's keys."""
        rows, cols = mix.pairs
        senders = tuple(s for s, _ in mix.ids)
        crafted = _unflat(mix, crafted[rows, cols])
        sent = self.roundtrip(mix, crafted, r, senders)
        values = values.clone()
        values[rows, cols] = torch.cat([sent[n] for n in mix.names], dim=1)
        return values


def _unflat(mix: StackedMix, flat: torch.Tensor) -> Block:
    out, start = {}, 0
    for n in mix.names:
        size = mix.parts[0][0].params[n][0].numel()
        out[n] = flat[:, start:start + size]
        start += size
    return out


def _split(mix: StackedMix, matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``matrix`` without its diagonal, and the diagonal as an ``(H, 1)`` column (cached for
    the mix's own matrix; a matrix without rejected copies is rare and made anew)."""
    if matrix is mix.matrix and mix._split is not None:
        return mix._split
    m = matrix.coalesce()
    idx, val = m.indices(), m.values()
    off = idx[0] != idx[1]
    diag = torch.zeros(m.shape[0], dtype=val.dtype, device=val.device)
    diag.index_add_(0, idx[0][~off], val[~off])
    out = (torch.sparse_coo_tensor(idx[:, off], val[off], m.shape,
                                   check_invariants=True).coalesce(), diag[:, None])
    if matrix is mix.matrix:
        mix._split = out
    return out


def _drop_bad(mix: StackedMix, q: Block, checks: ReceiveChecks) -> Block:
    """Differences that fail the receive checks, counted once per receiver, zeroed."""
    flat = torch.cat([q[n] for n in mix.names], dim=1)
    non_finite, too_large = checks.rows_bad(flat)
    receivers = mix.receivers
    if receivers is None:  # padded form: how often each holder appears as a peer
        peers = mix.index[:, 1:][mix.mask[:, 1:]]
        receivers = torch.zeros(flat.shape[0], dtype=flat.dtype, device=flat.device)
        receivers.index_add_(0, peers, torch.ones_like(peers, dtype=flat.dtype))
    checks.add_stacked("non_finite", (receivers * non_finite).sum())
    checks.add_stacked("norm", (receivers * too_large).sum())
    bad = (non_finite | too_large)[:, None]
    return {n: torch.where(bad, torch.zeros_like(t), t) for n, t in q.items()}


def make_codec(comm: Communication | None, mix: StackedMix,
               hats: dict[tuple, Block]) -> StackedCodec | None:
    """The codec of ``mix`` this round (None: copies travel as they are); error feedback's
    public copies live in ``hats``, keyed by component and holders (zeros at first)."""
    if comm is None or comm.plain:
        return None
    hat = None
    if comm.error_feedback:
        key = (mix.comp, mix.order)
        if key not in hats:
            hats[key] = {n: torch.zeros_like(mix._gather(n)) for n in mix.names}
        hat = hats[key]
    return StackedCodec(comm, comm.compressor(mix.comp), hat)
