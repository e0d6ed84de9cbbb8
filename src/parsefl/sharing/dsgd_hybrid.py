"""DSGD-Hybrid: encoders among their holders and the classifier among all agents."""

from __future__ import annotations

from parsefl.registry import SHARING
from parsefl.sharing.base import Capability, with_prefix
from parsefl.sharing.monolithic import MonolithicStrategy


@SHARING.register("dsgd_hybrid", "monolithic model; encoders among holders + classifier among all")
class DSGDHybrid(MonolithicStrategy):
    name = "dsgd_hybrid"

    def offered(self, me: Capability, round: int) -> set[str]:
        return with_prefix(set(me.signatures), "enc", "classifier")
