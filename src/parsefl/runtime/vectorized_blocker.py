"""What stops the vectorized backend from running a setup, as a typed reason (the config field
to change and why), so that ``runtime.backend: auto`` can fall back and say so."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from parsefl.aggregation import (
    Aggregator,
    LinearAggregator,
    StackedAggregator,
)
from parsefl.config import TrainConfig
from parsefl.runtime.agent import Agent

if TYPE_CHECKING:
    from parsefl.compressors import Communication


@dataclass(frozen=True)
class Blocker:
    """Why the vectorized backend cannot run a setup: the config field to change, and why."""

    field: str
    reason: str

    def __str__(self) -> str:
        return self.reason


def vectorized_blocker(agents: Sequence[Agent], aggregator: Aggregator,
                       train: TrainConfig, *, communication: Communication | None = None,
                       attacked: bool = False) -> Blocker | None:
    """What stops the vectorized backend from running this setup (None: nothing);
    ``attacked``: an adversary replaces some agents' copies."""
    if any(len(a.views) > 1 for a in agents):
        return Blocker("imperfect", "an agent trains on several modality views (pooled data "
                       "or missing modalities)")
    if any(not a.views or len(a.views[0][1]) != a.n_samples for a in agents):
        return Blocker("imperfect.missing_labels", "an agent trains on a subset of its samples "
                       "(missing labels)")
    if not isinstance(aggregator, LinearAggregator | StackedAggregator):
        return Blocker("aggregation.name", f"aggregator {aggregator.name!r} gives neither "
                       "mixing weights nor a stacked combine")
    if communication is not None and communication.error_feedback and attacked:
        return Blocker("communication.error_feedback", "error feedback with an adversary: "
                       "receivers' public copies of an attacker differ, and the vectorized "
                       "backend keeps one per sender")
    return None

