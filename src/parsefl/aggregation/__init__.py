"""Aggregators (one file each) and their registry ``AGGREGATION`` (``aggregation.name``)."""

from parsefl.aggregation import (  # noqa: F401  (fill the registry)
    clipped,
    cs_plus_rg,
    geomed,
    mean,
    median,
    robust,
    trimmed_mean,
)
from parsefl.aggregation.base import (
    Aggregator,
    LinearAggregator,
    ScreeningAggregator,
    StackedAggregator,
    build_aggregator,
    flatten,
    fold_missing,
    unflatten,
)

__all__ = [
    "Aggregator", "LinearAggregator", "ScreeningAggregator", "StackedAggregator",
    "build_aggregator", "flatten", "fold_missing", "unflatten",
]
