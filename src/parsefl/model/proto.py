"""Sliced models with one extra class-wise component that every agent holds and gossips like
``head_r``: class prototypes of the redundant slice (``proto_r``, method ``parse_proto``, term
``loss.proto``) or the multimodal agents' class-wise soft labels (``teacher_r``, method
``parse_distill``, term ``loss.distill``); see ``model.loss``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from parsefl.errors import ConfigError
from parsefl.model.loss import class_distillation, prototype_alignment, sliced_loss
from parsefl.model.sliced import ModelSpec, SlicedModel
from parsefl.model.weights import LossWeights


class Prototypes(nn.Module):
    """One learnable prototype per class in the r space (fitted by the multimodal agents)."""

    def __init__(self, n_classes: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_classes, dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, std=0.01)  # small: the fit moves it within a few steps


class ProtoSlicedModel(SlicedModel):
    """PARSE's sliced model plus ``proto_r`` (component audience: every agent)."""

    def __init__(self, modalities: Sequence[str], input_shapes: Mapping[str, Sequence[int]],
                 spec: ModelSpec) -> None:
        super().__init__(modalities, input_shapes, spec)
        if not self.dims["r"]:
            raise ConfigError("model.split", "parse_proto needs a redundant slice (r > 0)")
        self.protos = Prototypes(spec.n_classes, self.dims["r"])

    def loss(self, x, y, cfg: LossWeights, phase: str | None = None):  # noqa: D102
        out = self(x)
        total, terms = sliced_loss(out, y, cfg)
        if cfg.proto and out.r:
            term = cfg.proto * prototype_alignment(out.r, self.protos.weight, y,
                                                   len(self.modalities) > 1)
            total = total + term
            terms["proto"] = term.detach()
        return total, terms

    def component_modules(self) -> dict[str, list[nn.Module]]:
        return {**super().component_modules(), "proto_r": [self.protos]}


class DistillSlicedModel(SlicedModel):
    """PARSE's sliced model plus ``teacher_r`` (classes x classes logits; audience: all)."""

    def __init__(self, modalities: Sequence[str], input_shapes: Mapping[str, Sequence[int]],
                 spec: ModelSpec) -> None:
        super().__init__(modalities, input_shapes, spec)
        if not self.dims["r"]:
            raise ConfigError("model.split", "parse_distill needs a redundant slice (r > 0)")
        self.teacher = Prototypes(spec.n_classes, spec.n_classes)

    def loss(self, x, y, cfg: LossWeights, phase: str | None = None):  # noqa: D102
        out = self(x)
        total, terms = sliced_loss(out, y, cfg)
        if cfg.distill and out.r_logits:
            term = cfg.distill * class_distillation(out.logits, out.r_logits,
                                                    self.teacher.weight, y,
                                                    len(self.modalities) > 1)
            total = total + term
            terms["distill"] = term.detach()
        return total, terms

    def component_modules(self) -> dict[str, list[nn.Module]]:
        return {**super().component_modules(), "teacher_r": [self.teacher]}
