"""The gossip average: Metropolis–Hastings weighted mean of the copies that arrived."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from parsefl.aggregation.base import LinearAggregator, fold_missing
from parsefl.registry import AGGREGATION


@AGGREGATION.register("mean", "Metropolis–Hastings weighted gossip average (default)")
class GossipMean(LinearAggregator):
    """``w_ii * own + sum_j w_ij * x_j`` over the copies that arrived; a missing neighbour's
    weight goes back to the agent's own copy, so the row still sums to 1."""

    name = "mean"

    def mixing_weights(self, self_weight: float, weights: Mapping[int, float],
                       arrived: Collection[int]) -> tuple[float, dict[int, float]]:
        return fold_missing(self_weight, weights, arrived)
