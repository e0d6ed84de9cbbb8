"""Coordinate-wise median of the copies that arrived (and passed the receive checks)."""

from __future__ import annotations

import torch

from parsefl.aggregation._stack import ordered_slots, rank_coefficients, weighted_ranks
from parsefl.aggregation.base import StackedAggregator
from parsefl.registry import AGGREGATION


@AGGREGATION.register("median", "coordinate-wise median of the own copy and the peers' copies")
class CoordinateMedian(StackedAggregator):
    """Per coordinate, the median of the ``n`` copies (own copy included), unweighted: the
    middle value for odd ``n``, the mean of the two middle values for even ``n`` (as in the
    decentralized coordinate median of He, Karimireddy & Jaggi 2022, public code).

    Few holders: with only the own copy the result is the own copy; with one neighbour
    (n = 2) it is the plain mean of the two copies, so one Byzantine neighbour moves it by
    half its offset; with two neighbours (n = 3) it is the middle value, which one Byzantine
    neighbour can no longer drag outside the honest pair's range.
    """

    name = "median"

    def combine(self, values: torch.Tensor, mask: torch.Tensor,
                weights: torch.Tensor) -> torch.Tensor:
        n, k = mask.sum(dim=1), values.shape[1]
        # The two middle ranks, each weighted 1/2 (the same rank twice for odd n).
        coef = (rank_coefficients((n - 1) // 2, (n - 1) // 2 + 1, k)
                + rank_coefficients(n // 2, n // 2 + 1, k)) / 2
        return weighted_ranks(ordered_slots(values, mask), coef)
