"""Shared base of the strategies whose agents carry the monolithic baseline model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from parsefl.model import AgentModel, ModelSpec, MonolithicModel
from parsefl.sharing.base import SharingStrategy


class MonolithicStrategy(SharingStrategy):
    zero_fill = False
    unimodal_heads = False

    def build_model(
        self, modalities: Sequence[str], input_shapes: Mapping[str, Sequence[int]],
        spec: ModelSpec,
    ) -> AgentModel:
        return MonolithicModel(modalities, input_shapes, spec, zero_fill=self.zero_fill,
                               unimodal_heads=self.unimodal_heads)
