"""DSGD-Modality: encoder of modality m gossiped among the holders of m; classifier local."""

from __future__ import annotations

from parsefl.registry import SHARING
from parsefl.sharing.base import Capability, with_prefix
from parsefl.sharing.monolithic import MonolithicStrategy


@SHARING.register("dsgd_modality", "monolithic model; encoder of m gossiped among holders of m")
class DSGDModality(MonolithicStrategy):
    name = "dsgd_modality"

    def offered(self, me: Capability, round: int) -> set[str]:
        return with_prefix(set(me.signatures), "enc")
