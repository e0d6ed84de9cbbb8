"""Harmony in gossip form: stage 1 trains unimodal encoders + per-modality classifiers,
gossiped among the holders of each modality; stage 2 trains fusion + classifier on the frozen
encoders of multimodal agents, gossiped among multimodal agents with the same modality set
(unimodal agents keep stage 1's sharing)."""

from __future__ import annotations

from parsefl.errors import ConfigError
from parsefl.registry import SHARING
from parsefl.sharing.base import Capability, with_prefix
from parsefl.sharing.monolithic import MonolithicStrategy
from parsefl.sharing.phases import Phases


@SHARING.register("harmony", "two stages: modality-wise encoders, then multimodal fusion")
class Harmony(MonolithicStrategy):
    name = "harmony"
    unimodal_heads = True

    def __init__(self, rounds: int = 1, stage1_fraction: float = 0.5) -> None:
        super().__init__(rounds)
        if not 0.0 < stage1_fraction < 1.0:
            raise ConfigError("method_params.stage1_fraction",
                              f"must be in (0, 1), got {stage1_fraction}")
        # Under rounds: auto, stage 1 ends at the latest here, earlier once it plateaued.
        self.phases = Phases(("unimodal", "fusion"),
                             (0, max(1, round(stage1_fraction * rounds))))

    def offered(self, me: Capability, round: int) -> set[str]:
        comps = set(me.signatures)
        if me.multimodal and self.phase(round) == "fusion":
            return with_prefix(comps, "fusion", "classifier")
        return with_prefix(comps, "enc", "head_u")
