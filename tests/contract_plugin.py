"""A test-only aggregator plugin for the combination contract (tests/test_contract.py): a
legal linear rule whose weights depend on which copies arrived (uniform over the own copy and
the copies that arrived and passed the receive checks), so that a backend that folds a lost
copy by the mean's rule instead of asking the aggregator gives other numbers."""

from __future__ import annotations

from parsefl.aggregation import LinearAggregator
from parsefl.registry import AGGREGATION

NAME = "uniform_arrived"


class UniformOverArrived(LinearAggregator):
    name = NAME

    def mixing_weights(self, self_weight, weights, arrived):
        n = 1 + len(arrived)
        return 1.0 / n, {j: 1.0 / n for j in sorted(arrived)}


if NAME not in AGGREGATION.names():  # the contract test may hold it registered already
    AGGREGATION.register(NAME, "test only: uniform over the copies that arrived")(
        UniformOverArrived)
