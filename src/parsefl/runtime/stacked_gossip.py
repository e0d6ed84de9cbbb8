"""One component's gossip over its holders' stacked copies (the vectorized backend).

The rule itself is the aggregator's: a linear one gives its mixing weights, from which one
sparse ``(H, H)`` matrix is built; a non-linear one gets every holder's own copy and its peers'
copies gathered into a padded ``(H, max_peers + 1, numel)`` tensor with a mask, and combines
them in one batched call. Holders are stacked group-major: ``parts`` lists, per training group,
the rows of its stacked parameters that hold the component.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch

from parsefl.aggregation import Aggregator, LinearAggregator, ScreeningAggregator
from parsefl.runtime.checks import ReceiveChecks
from parsefl.runtime.handshake import GossipPlan
from parsefl.runtime.screening import stacked_losses
from parsefl.runtime.stacked_merge import (
    Planned,
    arrived_weights,
    matrix_without,
    merge,
    rule_of,
)

if TYPE_CHECKING:
    from parsefl.attacks import Adversary

# Values per gathered block of the linear gossip: its temporary copies stay a few MiB however
# many agents hold the component (gathering whole tensors cost ~0.5 MiB per agent at N = 512).
CHUNK = 1 << 20


class Codec(Protocol):
    """Copies that travel compressed (``runtime.stacked_codec.StackedCodec``): it merges the
    mix itself, from what the receivers decode."""

    def apply(self, mix: StackedMix, aggregator: Aggregator, checks: ReceiveChecks | None,
              adversary: Adversary | None, r: int) -> None: ...


class Stacked(Protocol):
    """A training group: parameter name -> tensor stacked along the agent axis."""

    params: dict[str, torch.Tensor]


@dataclass
class StackedMix:
    """How one component's stacked copies are merged in one round."""

    names: list[str]  # the component's parameter names, in the component's order
    parts: list[tuple[Stacked, torch.Tensor]]  # holders: (group, rows), group-major
    matrix: torch.Tensor | None = None  # linear: sparse (H, H) mixing matrix
    index: torch.Tensor | None = None  # non-linear: (H, K) holder positions, own copy first
    mask: torch.Tensor | None = None  # non-linear: (H, K) real copies (False: padding)
    weights: torch.Tensor | None = None  # non-linear: (H, K) MH weights (0 on padding)
    comp: str = ""
    receivers: torch.Tensor | None = None  # linear: (H,) how many peers get holder h's copy
    byz: torch.Tensor | None = None  # (H, K) copies from attackers (None: no attacker here)
    pairs: tuple[torch.Tensor, torch.Tensor] | None = None  # the byz entries (rows, cols)
    ids: list[tuple[int, int]] | None = None  # (sender, recipient) of each pair
    order: tuple[int, ...] = ()  # the holders' agent ids, row by row
    planned: list[Planned] | None = None  # each holder's (self weight, peer weights) plan
    peers: list[list[int]] | None = None  # non-linear: each holder's senders, column by column
    _split: tuple[torch.Tensor, torch.Tensor] | None = None  # (off-diagonal matrix, diagonal)
    _without: dict[frozenset[int], torch.Tensor] | None = None  # matrices for rejected rows

    def apply(self, aggregator: Aggregator, checks: ReceiveChecks | None = None,
              adversary: Adversary | None = None, r: int = 0,
              codec: Codec | None = None) -> None:
        """Merge in place (call under ``torch.no_grad``): the attackers' entries replaced by
        what they send (``adversary``), copies that fail ``checks`` dropped, then the
        aggregator's rule over what is left (``stacked_merge``). ``codec``: copies travel
        compressed (``runtime.stacked_codec``)."""
        if codec is not None:
            codec.apply(self, aggregator, checks, adversary, r)
            return
        if self.sparse(checks, adversary, r):
            self._apply_linear(checks, aggregator)
            return
        flat = torch.cat([self._gather(name) for name in self.names], dim=1)  # (H, numel)
        merged = self.merge_padded(flat, aggregator, checks, adversary, r)
        start = 0
        for name in self.names:
            size = self.parts[0][0].params[name][0].numel()
            self._write(name, merged[:, start : start + size])
            start += size

    def attacked(self, adversary: Adversary | None, r: int) -> bool:
        """Whether attackers replace some of this component's copies in round ``r``."""
        return self.byz is not None and adversary is not None and adversary.active(r)

    def sparse(self, checks: ReceiveChecks | None, adversary: Adversary | None,
               r: int) -> bool:
        """Whether this round's merge is the sparse product: a linear aggregator, no attacker
        here, and no check that compares a copy with its receiver's own (``max_ratio``)."""
        return self.matrix is not None and not self.attacked(adversary, r) and (
            checks is None or checks.max_ratio is None)

    def merge_padded(self, own: torch.Tensor, aggregator: Aggregator,
                     checks: ReceiveChecks | None, adversary: Adversary | None, r: int,
                     sent: torch.Tensor | None = None,
                     encode: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                     ) -> torch.Tensor:
        """``(H, numel)``: each holder's merge, on the padded stack, of its own flat copy
        (row of ``own``) with its peers' copies as they arrive: ``sent`` (what receivers
        decode of each holder's copy; None: the copy itself), the attackers' entries replaced
        by what they craft from the plain copies (``encode``: how a crafted copy travels),
        then the receive checks and the aggregator's rule over what passed (:meth:`merge`).
        The plain and the compressed paths both merge here."""
        attacking = self.attacked(adversary, r)
        values = (own if sent is None else sent)[self.index]
        if sent is not None:
            values[:, 0] = own  # a holder keeps its own copy as it is
        if attacking:  # attackers craft from the plain copies (as in the reference send path)
            crafted = adversary.tamper(values if sent is None else own[self.index], self.mask,
                                       self.weights, self.byz, self.pairs, self.ids,
                                       self.comp, r)
            values = crafted if encode is None else encode(values, crafted)
        valid = self.mask
        if checks is not None:
            # Untampered and plain, a copy's norm is its holder row's: one pass, not K.
            norms = None if attacking or sent is not None else \
                torch.linalg.vector_norm(own, dim=1)[self.index]
            valid = checks.stacked_valid(values, self.mask, norms)
        return self.merge(values, valid, aggregator, r)

    def merge(self, values: torch.Tensor, valid: torch.Tensor,
              aggregator: Aggregator, r: int = 0) -> torch.Tensor:
        """The padded stack's merge (``stacked_merge``): the weights over the copies that
        arrived and passed, by the aggregator's rule, then its sum or combine (a screening
        aggregator's with each holder's losses on its own data in round ``r``)."""
        weights = arrived_weights(aggregator, self.planned, self.peers, self.mask, valid,
                                  self.weights)
        if isinstance(aggregator, ScreeningAggregator):
            values.masked_fill_(~valid[..., None], 0.0)
            losses = stacked_losses(self.parts, self.names, values, aggregator, r)
            # Agent ids: a worker's per-receiver attacker row is a fraction above its sender
            # (runtime.remote_rows.pair_row), and trust is the sender's.
            return aggregator.combine_screened(values, valid, weights, losses,
                                               [int(i) for i in self.order],
                                               [[int(j) for j in p] for p in self.peers])
        return merge(values, valid, weights, aggregator)

    def bad_rows(self, flat: torch.Tensor, checks: ReceiveChecks) -> frozenset[int]:
        """Holders whose sent copy (row of ``flat``, the same copy to every peer) fails the
        checks, counted once per receiver; one host sync (none rejected: the usual case)."""
        non_finite, too_large = checks.rows_bad(flat)
        checks.add_stacked("non_finite", (self.receivers * non_finite).sum())
        checks.add_stacked("norm", (self.receivers * too_large).sum())
        return frozenset((non_finite | too_large).nonzero().flatten().tolist())

    def matrix_for(self, aggregator: Aggregator, bad: frozenset[int]) -> torch.Tensor:
        """The mixing matrix when the copies of holders ``bad`` are rejected (cached: a lost
        or attacking sender stays so for many rounds)."""
        if not bad:
            return self.matrix
        self._without = self._without or {}
        if bad not in self._without:
            if len(self._without) > 8:
                self._without = {}
            self._without[bad] = matrix_without(self.matrix, aggregator, self.planned,
                                                self.order, bad)
        return self._without[bad]

    def _apply_linear(self, checks: ReceiveChecks | None, aggregator: Aggregator) -> None:
        """The sparse product, no padded stack. Holders whose copy fails the checks are taken
        out of the matrix, and each of their receivers' rows comes from the aggregator's
        rule over the copies it still accepts (``stacked_merge.matrix_without``)."""
        matrix = self.matrix
        if checks is not None:
            matrix = self.matrix_for(aggregator, self.bad_rows(self._row_norms(), checks))
        for name in self.names:  # one product per tensor: the sum order of the matrix rows
            for cols in self._chunks(name):  # columns mix independently: bounded copies
                self._write(name, torch.sparse.mm(matrix, self._gather(name, cols)), cols)

    def _row_norms(self) -> torch.Tensor:
        """(H, 1): each holder's whole copy's norm (NaN if a value is not finite; an
        overflowing norm as the largest float), read chunk by chunk, for ``rows_bad``."""
        finite, norms = None, []
        for name in self.names:
            for cols in self._chunks(name):
                x = self._gather(name, cols)
                ok = torch.isfinite(x).all(dim=1)
                norms.append(torch.linalg.vector_norm(torch.where(ok[:, None], x, 0.0), dim=1))
                finite = ok if finite is None else finite & ok
        total = torch.linalg.vector_norm(torch.stack(norms, dim=1), dim=1)
        big = torch.finfo(total.dtype).max
        return torch.where(finite, total.clamp(max=big), torch.nan)[:, None]

    def _chunks(self, name: str) -> list[slice]:
        """Column ranges of ``name``'s flattened copies, about ``CHUNK`` values in all."""
        size = self.parts[0][0].params[name][0].numel()
        step = max(1, CHUNK // sum(len(rows) for _, rows in self.parts))
        return [slice(c, min(c + step, size)) for c in range(0, size, step)]

    def _gather(self, name: str, cols: slice = slice(None)) -> torch.Tensor:
        return torch.cat([g.params[name].flatten(1)[rows, cols] for g, rows in self.parts])

    def _write(self, name: str, values: torch.Tensor, cols: slice = slice(None)) -> None:
        start = 0
        for g, rows in self.parts:
            block = values[start : start + len(rows)]
            g.params[name].flatten(1)[:, cols].index_copy_(0, rows, block)
            start += len(rows)


def pairwise(checks: ReceiveChecks | None) -> bool:
    """Whether the receive checks compare each copy with the receiver's own
    (``checks.max_ratio``): the padded form is needed then, even for a linear aggregator."""
    return checks is not None and checks.max_ratio is not None


def build_mix(comp: str, names: Sequence[str], order: Sequence[int],
              parts: Sequence[tuple[Stacked, Sequence[int]]], plans: Mapping[int, GossipPlan],
              aggregator: Aggregator, attackers: frozenset[int] = frozenset(),
              padded: bool = False) -> StackedMix:
    """The stacked gossip of ``comp`` over holders ``order`` (group-major, as in ``parts``);
    ``attackers``: agents whose sent copies the adversary replaces (padded form needed);
    ``padded``: build the padded form even for a linear aggregator (receive checks relative
    to each receiver's own copy, ``checks.max_ratio``, look at copy pairs)."""
    ref = parts[0][0].params[names[0]]
    device, dtype = ref.device, ref.dtype
    mix = StackedMix(list(names), [(g, torch.tensor(rows, device=device)) for g, rows in parts],
                     comp=comp, order=tuple(order),
                     planned=[(plans[i].self_weight[comp], plans[i].weights[comp])
                              for i in order])
    pos = {i: k for k, i in enumerate(order)}
    attacked = any(j in attackers for i in order for j in plans[i].weights[comp])
    if isinstance(aggregator, LinearAggregator):
        _linear(mix, comp, order, pos, plans, aggregator, device, dtype)
        if not attacked and not padded:
            return mix
    _padded(mix, comp, order, pos, plans, aggregator, device, dtype)
    if attacked:
        byz = torch.tensor([[order[int(k)] in attackers for k in row] for row in mix.index])
        byz &= mix.mask.cpu()
        byz[:, 0] = False
        rows, cols = byz.nonzero(as_tuple=True)
        mix.byz = byz.to(device)
        mix.pairs = (rows.to(device), cols.to(device))
        mix.ids = [(order[int(mix.index[h, k])], order[int(h)])
                   for h, k in zip(rows.tolist(), cols.tolist(), strict=True)]
    return mix


def _linear(mix: StackedMix, comp: str, order: Sequence[int], pos: Mapping[int, int],
            plans: Mapping[int, GossipPlan], aggregator: LinearAggregator,
            device: torch.device, dtype: torch.dtype) -> None:
    """The sparse mixing matrix, and how many peers receive each holder's copy."""
    rows, cols, vals = [], [], []
    for i in order:
        w_own, w = aggregator.mixing_weights(plans[i].self_weight[comp],
                                             plans[i].weights[comp], plans[i].weights[comp])
        rows.append(pos[i]), cols.append(pos[i]), vals.append(w_own)
        for j, wj in w.items():
            rows.append(pos[i]), cols.append(pos[j]), vals.append(wj)
    matrix = torch.sparse_coo_tensor(
        torch.tensor([rows, cols]), torch.tensor(vals), (len(order), len(order)),
        check_invariants=True,
    ).coalesce().to(device)
    mix.matrix = matrix.to(dtype)
    receivers = torch.zeros(len(order), dtype=dtype)
    for row, col in zip(rows, cols, strict=True):
        receivers[col] += float(row != col)
    mix.receivers = receivers.to(device)


def _padded(mix: StackedMix, comp: str, order: Sequence[int], pos: Mapping[int, int],
            plans: Mapping[int, GossipPlan], aggregator: Aggregator,
            device: torch.device, dtype: torch.dtype) -> None:
    """The padded (H, K) index, mask and weights (own copy first, peers by sender)."""
    width = 1 + max(len(plans[i].weights[comp]) for i in order)
    index = torch.tensor([[pos[i]] * width for i in order])
    mask = torch.zeros(len(order), width, dtype=torch.bool)
    weights = torch.zeros(len(order), width, dtype=torch.float64)
    rule = rule_of(aggregator)
    mix.peers = []
    for h, i in enumerate(order):
        w_own, w = rule(plans[i].self_weight[comp], plans[i].weights[comp],
                        plans[i].weights[comp])
        mix.peers.append(sorted(w))
        mask[h, : 1 + len(w)] = True
        weights[h, 0] = w_own
        for k, j in enumerate(w, start=1):  # sorted by sender, as the reference path
            index[h, k], weights[h, k] = pos[j], w[j]
    mix.index, mix.mask = index.to(device), mask.to(device)
    mix.weights = weights.to(device=device, dtype=dtype)
