"""PARSE with gossiped class prototypes of the redundant slice (a variant; ``parse`` is
unchanged): multimodal agents fit one prototype per class to their r slices, the prototypes
travel to every agent like ``head_r``, and unimodal agents pull their r slices toward them
(``loss.proto``), as prototype-based multimodal FL does."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from parsefl.model import AgentModel, ModelSpec
from parsefl.model.proto import ProtoSlicedModel
from parsefl.registry import SHARING
from parsefl.sharing.parse import Parse


@SHARING.register("parse_proto", "PARSE + r-slice class prototypes gossiped to all; unimodal "
                                 "agents align to them (loss.proto)")
class ParseProto(Parse):
    name = "parse_proto"

    def build_model(
        self, modalities: Sequence[str], input_shapes: Mapping[str, Sequence[int]],
        spec: ModelSpec,
    ) -> AgentModel:
        return ProtoSlicedModel(modalities, input_shapes, spec)
