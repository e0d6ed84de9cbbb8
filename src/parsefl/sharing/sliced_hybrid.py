"""Sliced-Hybrid control: PARSE's three-slice model with baseline sharing — every agent
carries s rows and a unique head for every task modality (as a monolithic classifier would),
and every component travels among all its holders. It separates "three slices" from
"partial alignment"."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from parsefl.model import AgentModel, ModelSpec, SlicedModel
from parsefl.registry import SHARING
from parsefl.sharing.base import SharingStrategy


@SHARING.register("sliced_hybrid", "PARSE's model, every component shared with all its holders "
                                   "(no partial rule)")
class SlicedHybrid(SharingStrategy):
    name = "sliced_hybrid"

    def build_model(
        self, modalities: Sequence[str], input_shapes: Mapping[str, Sequence[int]],
        spec: ModelSpec,
    ) -> AgentModel:
        return SlicedModel(modalities, input_shapes, spec, all_heads=True)
