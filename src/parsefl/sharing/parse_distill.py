"""PARSE with cross-modal distillation through the redundant head (a variant; ``parse`` is
unchanged): multimodal agents fit per-class soft labels of their full (all-modality)
prediction, the table travels to every agent like ``head_r``, and unimodal agents distil it
into their redundant-head path (``loss.distill``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from parsefl.model import AgentModel, ModelSpec
from parsefl.model.proto import DistillSlicedModel
from parsefl.registry import SHARING
from parsefl.sharing.parse import Parse


@SHARING.register("parse_distill", "PARSE + multimodal class-wise soft labels gossiped to all; "
                                   "unimodal H_r paths distil them (loss.distill)")
class ParseDistill(Parse):
    name = "parse_distill"

    def build_model(
        self, modalities: Sequence[str], input_shapes: Mapping[str, Sequence[int]],
        spec: ModelSpec,
    ) -> AgentModel:
        return DistillSlicedModel(modalities, input_shapes, spec)
