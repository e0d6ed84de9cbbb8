"""One component's gossip over its holders' stacked copies (the vectorized backend).

The rule itself is the aggregator's: a linear one gives its mixing weights, from which one
sparse ``(H, H)`` matrix is built; a non-linear one gets every holder's own copy and its peers'
copies gathered into a padded ``(H, max_peers + 1, numel)`` tensor with a mask, and combines
them in one batched call. Holders are stacked group-major: ``parts`` lists, per training group,
the rows of its stacked parameters that hold the component.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from parsefl.aggregation import Aggregator, LinearAggregator, fold_missing
from parsefl.runtime.handshake import GossipPlan


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

    def apply(self, aggregator: Aggregator) -> None:
        """Merge in place (call under ``torch.no_grad``)."""
        if self.matrix is not None:
            for name in self.names:  # one product per tensor: the sum order of the matrix rows
                self._write(name, torch.sparse.mm(self.matrix, self._gather(name)))
            return
        flat = torch.cat([self._gather(name) for name in self.names], dim=1)  # (H, numel)
        merged = aggregator.combine(flat[self.index], self.mask, self.weights)
        start = 0
        for name in self.names:
            size = self.parts[0][0].params[name][0].numel()
            self._write(name, merged[:, start : start + size])
            start += size

    def _gather(self, name: str) -> torch.Tensor:
        return torch.cat([g.params[name][rows].flatten(1) for g, rows in self.parts])

    def _write(self, name: str, values: torch.Tensor) -> None:
        start = 0
        for g, rows in self.parts:
            block = values[start : start + len(rows)]
            g.params[name].index_copy_(0, rows, block.reshape(-1, *g.params[name].shape[1:]))
            start += len(rows)


def build_mix(comp: str, names: Sequence[str], order: Sequence[int],
              parts: Sequence[tuple[Stacked, Sequence[int]]], plans: Mapping[int, GossipPlan],
              aggregator: Aggregator) -> StackedMix:
    """The stacked gossip of ``comp`` over holders ``order`` (group-major, as in ``parts``)."""
    ref = parts[0][0].params[names[0]]
    device, dtype = ref.device, ref.dtype
    mix = StackedMix(list(names), [(g, torch.tensor(rows, device=device)) for g, rows in parts])
    pos = {i: k for k, i in enumerate(order)}
    if isinstance(aggregator, LinearAggregator):
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
        return mix
    width = 1 + max(len(plans[i].weights[comp]) for i in order)
    index = torch.tensor([[pos[i]] * width for i in order])
    mask = torch.zeros(len(order), width, dtype=torch.bool)
    weights = torch.zeros(len(order), width, dtype=torch.float64)
    for h, i in enumerate(order):
        w_own, w = fold_missing(plans[i].self_weight[comp], plans[i].weights[comp],
                                plans[i].weights[comp])
        mask[h, : 1 + len(w)] = True
        weights[h, 0] = w_own
        for k, j in enumerate(w, start=1):  # sorted by sender, as the reference path
            index[h, k], weights[h, k] = pos[j], w[j]
    mix.index, mix.mask = index.to(device), mask.to(device)
    mix.weights = weights.to(device=device, dtype=dtype)
    return mix
