"""Aggregators (one file each) and their registry ``AGGREGATION`` (``aggregation.name``)."""

from parsefl.aggregation import mean  # noqa: F401  (fill the registry)
from parsefl.aggregation.base import (
    Aggregator,
    LinearAggregator,
    StackedAggregator,
    build_aggregator,
    flatten,
    fold_missing,
    unflatten,
)

__all__ = [
    "Aggregator", "LinearAggregator", "StackedAggregator", "build_aggregator", "flatten",
    "fold_missing", "unflatten",
]
