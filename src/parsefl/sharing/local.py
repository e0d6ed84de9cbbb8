"""Local training: no communication at all."""

from __future__ import annotations

from parsefl.registry import SHARING
from parsefl.sharing.base import Capability, SharingStrategy


@SHARING.register("local", "no communication: each agent trains alone (lower bound)")
class Local(SharingStrategy):
    name = "local"

    def offered(self, me: Capability, round: int) -> set[str]:
        return set()
