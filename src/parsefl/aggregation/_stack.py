"""Shared pieces of the coordinate-wise robust aggregators over a padded ``(H, K, numel)`` stack.

The copies are ordered per coordinate by a *sorting network* over the K copy slots: each
compare-exchange is one elementwise ``minimum``/``maximum`` over a whole ``(H, numel)`` slot,
so every holder of a component is ordered at once, without ``torch.sort``'s per-row work on a
short last axis (K is 3 on a ring: a sort of the transposed stack took about 9x as long as the
network, and at K = 64 still 5x). The slots live in a per-thread workspace that is reused
from one component to the next: at N = 128 a fresh allocation per elementwise op cost about
as much as the op itself (page faults on large blocks). A rank is selected, and ranks summed,
by multiplying each slot with a per-holder 0/1 (or 1/2) coefficient, so padding is filled
with the largest finite value rather than +inf (``0 * inf`` would be NaN); the copies are
finite (the receive checks reject non-finite ones before aggregation).
"""

from __future__ import annotations

import threading
from functools import cache

import torch

NETWORK_MAX = 64  # copies per holder up to which the network is used (543 comparators)
_local = threading.local()


@cache
def comparators(k: int) -> tuple[tuple[int, int], ...]:
    """Batcher's odd-even merge sort for ``k`` slots: the network for the next power of two
    with every comparator that touches a slot ``>= k`` dropped (those slots would hold the
    padding, already last, so the dropped comparators would swap nothing)."""
    size = 1 << max(k - 1, 0).bit_length()
    out = []
    p = 1
    while p < size:
        step = p
        while step >= 1:
            for j in range(step % p, size - step, 2 * step):
                for i in range(min(step, size - j - step)):
                    a, b = i + j, i + j + step
                    if a // (2 * p) == b // (2 * p) and b < k:
                        out.append((a, b))
            step //= 2
        p *= 2
    return tuple(out)


def workspace(slots: int, like: torch.Tensor) -> torch.Tensor:
    """``(slots, *like.shape)`` scratch (contents undefined), carved from one
    buffer per thread, dtype and device that grows to the largest request and is then reused.
    Valid until the next call in the same thread: never return one of them."""
    key = (like.dtype, like.device)
    buffers = _local.__dict__.setdefault("buffers", {})
    need = slots * like.numel()
    if key not in buffers or buffers[key].numel() < need:
        buffers[key] = torch.empty(need, dtype=like.dtype, device=like.device)
    return buffers[key][:need].view(slots, *like.shape)


def ordered_slots(values: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
    """Per coordinate, the real copies in ascending order: slot ``k`` is the ``(H, numel)``
    k-th smallest over each holder's copies, padding last (as the largest finite value).
    The slots are workspace tensors (see :func:`workspace`)."""
    k = values.shape[1]
    big = torch.finfo(values.dtype).max
    if k > NETWORK_MAX:
        padded = values.masked_fill(~mask[..., None], big).transpose(1, 2)
        return list(padded.contiguous().sort(dim=2).values.unbind(2))
    *slots, spare = workspace(k + 1, values[:, 0]).unbind(0)
    for j in range(k):
        slots[j].copy_(values[:, j]).masked_fill_(~mask[:, j, None], big)
    for a, b in comparators(k):
        torch.minimum(slots[a], slots[b], out=spare)
        torch.maximum(slots[a], slots[b], out=slots[b])
        slots[a], spare = spare, slots[a]
    return slots


def weighted_ranks(slots: list[torch.Tensor], coef: torch.Tensor) -> torch.Tensor:
    """``sum_k coef[:, k] * slots[k]`` (``coef``: ``(H, K)``), a fresh tensor."""
    coef = coef.to(slots[0].dtype)
    out = slots[0] * coef[:, :1]
    for k in range(1, len(slots)):
        out.addcmul_(slots[k], coef[:, k : k + 1])
    return out


def rank_coefficients(low: torch.Tensor, high: torch.Tensor, k: int) -> torch.Tensor:
    """``(H, K)``: 1 where ``low[h] <= rank < high[h]``, else 0."""
    rank = torch.arange(k, device=low.device)
    return ((low[:, None] <= rank) & (rank < high[:, None])).to(torch.float64)
