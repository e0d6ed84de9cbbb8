"""DSGD-Task: monolithic model; only the classifier is gossiped, among all agents."""

from __future__ import annotations

from parsefl.registry import SHARING
from parsefl.sharing.base import Capability, with_prefix
from parsefl.sharing.monolithic import MonolithicStrategy


@SHARING.register("dsgd_task", "monolithic model; classifier gossiped among all agents")
class DSGDTask(MonolithicStrategy):
    name = "dsgd_task"

    def offered(self, me: Capability, round: int) -> set[str]:
        return with_prefix(set(me.signatures), "classifier")
