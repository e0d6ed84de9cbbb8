"""Centralized: one PARSE model trained on the pooled training data of every agent (each sample
with its owner's modalities); a reference ceiling, not a peer — it ignores the graph."""

from __future__ import annotations

from parsefl.registry import SHARING
from parsefl.sharing.base import Capability, SharingStrategy


@SHARING.register("centralized", "one model on pooled data (reference ceiling, ignores the graph)")
class Centralized(SharingStrategy):
    name = "centralized"
    centralized = True

    def offered(self, me: Capability, round: int) -> set[str]:
        return set()
