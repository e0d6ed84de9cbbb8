"""Coordinate-wise trimmed mean of the copies that arrived (and passed the receive checks)."""

from __future__ import annotations

import torch

from parsefl.aggregation._stack import ordered_slots, rank_coefficients, weighted_ranks
from parsefl.aggregation.base import StackedAggregator
from parsefl.errors import ConfigError
from parsefl.registry import AGGREGATION


@AGGREGATION.register("trimmed_mean", "coordinate-wise mean after dropping the b = floor(beta*n) "
                      "largest and smallest values")
class TrimmedMean(StackedAggregator):
    """Per coordinate, drop the ``b`` largest and ``b`` smallest of the ``n`` copies (own copy
    included) and average the rest, unweighted (Yin et al. 2018; decentralized form of He,
    Karimireddy & Jaggi 2022). ``b = floor(beta * n)``, capped at ``(n - 1) // 2`` so that
    at least one value is left; ``beta`` defaults to 1/3 (b = 1 on a ring, where n = 3).

    Few holders: alone, the own copy; with one neighbour (n = 2) b = 0, so it is the plain
    unweighted mean of the two copies (no protection); with two neighbours (n = 3, b = 1) it
    is the coordinate median.
    """

    name = "trimmed_mean"

    def __init__(self, beta: float = 1 / 3) -> None:
        if not 0 <= beta < 0.5:
            raise ConfigError("aggregation.params.beta", f"expected 0 <= beta < 0.5, got {beta}")
        self.beta = float(beta)

    def combine(self, values: torch.Tensor, mask: torch.Tensor,
                weights: torch.Tensor) -> torch.Tensor:
        n = mask.sum(dim=1)
        b = torch.minimum(torch.floor(self.beta * n).long(), (n - 1) // 2)
        coef = rank_coefficients(b, n - b, values.shape[1]) / (n - 2 * b)[:, None]
        return weighted_ranks(ordered_slots(values, mask), coef)
