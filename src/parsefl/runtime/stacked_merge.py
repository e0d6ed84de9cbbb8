"""The one merge kernel of stacked gossip: every stacked path (the vectorized executor, the
distributed stacked executor, compressed gossip) merges a component's copies here, by the
aggregator's own rule over the copies that *arrived and passed the receive checks*.

A linear aggregator's weights depend on which copies arrived (``mixing_weights(self_weight,
weights, arrived)``: the reference runtime asks it per agent with the copies it accepted), so a
holder that lost a copy to the checks gets its row from the aggregator again, never from the
mean's rule of giving the lost weight back to the own copy. A stacked (non-linear) aggregator's
contract is that rule (``fold_missing``: its ``merge`` applies it), done here as tensor ops.
Rejections are rare: rows are recomputed only for holders that lost a copy, after one host sync.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence

import torch

from parsefl.aggregation import Aggregator, LinearAggregator, fold_missing

Planned = tuple[float, Mapping[int, float]]  # a holder's (self weight, {peer: weight})
Rule = Callable[[float, Mapping[int, float], Collection[int]], tuple[float, dict[int, float]]]


def rule_of(aggregator: Aggregator) -> Rule:
    """The weights over the copies that arrived: a linear aggregator's own, else the fold."""
    return aggregator.mixing_weights if isinstance(aggregator, LinearAggregator) \
        else fold_missing


def arrived_weights(aggregator: Aggregator, planned: Sequence[Planned],
                    peers: Sequence[Sequence[int]], mask: torch.Tensor, valid: torch.Tensor,
                    weights: torch.Tensor) -> torch.Tensor:
    """``(H, K)`` weights over the padded copies that arrived and passed (``valid``), given
    ``weights`` over every real copy (``mask``). ``planned[h]``: holder h's plan;
    ``peers[h]``: the sender of each of its padded columns ``1 ..`` (sorted by sender)."""
    lost = mask & ~valid
    if not isinstance(aggregator, LinearAggregator):  # fold_missing as tensor ops, no sync
        out = torch.where(valid, weights, torch.zeros_like(weights))
        out[:, 0] += torch.where(lost, weights, torch.zeros_like(weights)).sum(dim=1)
        return out
    rows = lost.any(dim=1).nonzero().flatten().tolist()  # the one host sync
    if not rows:
        return weights
    out = weights.clone()
    ok = valid.cpu()
    for h in rows:
        came = [j for k, j in enumerate(peers[h], start=1) if ok[h, k]]
        w_own, w = aggregator.mixing_weights(planned[h][0], planned[h][1], came)
        row = [w_own, *(w.get(j, 0.0) for j in peers[h])]
        out[h, : len(row)] = torch.tensor(row, dtype=out.dtype, device=out.device)
    return out


def merge(values: torch.Tensor, valid: torch.Tensor, weights: torch.Tensor,
          aggregator: Aggregator) -> torch.Tensor:
    """``(H, numel)``: each holder's merged copy from the padded ``(H, K, numel)`` stack (own
    copy first), ``valid`` the copies that count, ``weights`` over them (:func:`arrived_weights`).
    Copies that do not count are zeroed first (a NaN times a zero weight is still NaN), in
    place: ``values`` is the caller's fresh stack (a second one cost ~10 % of a median round
    at N = 128)."""
    values.masked_fill_(~valid[..., None], 0.0)
    if isinstance(aggregator, LinearAggregator):
        return (weights[..., None] * values).sum(dim=1)
    return aggregator.combine(values, valid, weights)


def matrix_without(matrix: torch.Tensor, aggregator: Aggregator, planned: Sequence[Planned],
                   order: Sequence[int], bad: Collection[int]) -> torch.Tensor:
    """The sparse ``(H, H)`` mixing matrix when the copies of holders ``bad`` (positions) are
    rejected by every receiver: each receiver that planned one gets its row from the
    aggregator's rule over the copies it still accepts; the rejected copies' entries are
    dropped (not stored as zeros: a non-finite copy must not reach any product)."""
    rule = rule_of(aggregator)
    m = matrix.coalesce()
    idx, val = m.indices(), m.values()
    rows, cols = idx[0].tolist(), idx[1].tolist()
    hit = {r for r, c in zip(rows, cols, strict=True) if c in bad and r != c}
    keep = [k for k, r in enumerate(rows) if r not in hit]
    new_r, new_c = [rows[k] for k in keep], [cols[k] for k in keep]
    new_v = val[keep].tolist()
    pos = {i: h for h, i in enumerate(order)}
    for h in sorted(hit):
        self_w, planned_w = planned[h]
        came = [j for j in planned_w if pos[j] not in bad]
        w_own, w = rule(self_w, planned_w, came)
        new_r.append(h), new_c.append(h), new_v.append(w_own)
        for j, wj in w.items():
            new_r.append(h), new_c.append(pos[j]), new_v.append(wj)
    return torch.sparse_coo_tensor(
        torch.tensor([new_r, new_c]), torch.tensor(new_v, dtype=val.dtype), m.shape,
        check_invariants=True).coalesce().to(val.device)
