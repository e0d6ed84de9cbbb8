"""Shared pieces of the robust aggregators over a padded ``(H, K, numel)`` stack."""

from __future__ import annotations

import torch


def sorted_copies(values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each coordinate's real copies sorted ascending (padding last, as +inf) and the number
    of real copies per holder, ``(H, 1, 1)``."""
    padded = values.masked_fill(~mask[..., None], float("inf"))
    n = mask.sum(dim=1).view(-1, 1, 1)
    return padded.sort(dim=1).values, n


def at_rank(ordered: torch.Tensor, rank: torch.Tensor) -> torch.Tensor:
    """``ordered[h, rank[h], :]`` for every holder h."""
    index = rank.view(-1, 1, 1).expand(-1, 1, ordered.shape[2])
    return ordered.gather(1, index).squeeze(1)
