"""Shared pieces of the robust aggregators over a padded ``(H, K, numel)`` stack."""

from __future__ import annotations

import torch


def sorted_copies(values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each coordinate's real copies sorted ascending along the last axis, ``(H, numel, K)``
    (padding last, as +inf), and the number of real copies per holder, ``(H, 1, 1)``. Sorting
    along the contiguous last axis is several times faster than along the middle one."""
    padded = values.masked_fill(~mask[..., None], float("inf")).transpose(1, 2).contiguous()
    n = mask.sum(dim=1).view(-1, 1, 1)
    return padded.sort(dim=2).values, n


def at_rank(ordered: torch.Tensor, rank: torch.Tensor) -> torch.Tensor:
    """``ordered[h, :, rank[h]]`` for every holder h."""
    index = rank.view(-1, 1, 1).expand(-1, ordered.shape[1], 1)
    return ordered.gather(2, index).squeeze(2)
