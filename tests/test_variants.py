"""Method variants for unimodal agents: parse_proto's loss term and its component."""

from __future__ import annotations

import math

import pytest
import torch

from parsefl.model.loss import class_distillation, prototype_alignment
from parsefl.model.proto import DistillSlicedModel, ProtoSlicedModel
from parsefl.model.sliced import ModelSpec
from parsefl.model.weights import LossWeights
from parsefl.registry import SHARING

PROTOS = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
ONE_MINUS_COS45 = 1 - 1 / math.sqrt(2)


def test_multimodal_agents_fit_prototypes_to_their_mean_r():
    protos = PROTOS.clone().requires_grad_(True)
    a = torch.tensor([[1.0, 0.0]], requires_grad=True)
    b = torch.tensor([[0.0, 1.0]], requires_grad=True)
    term = prototype_alignment({"a": a, "b": b}, protos, torch.tensor([0]), multimodal=True)
    assert term.item() == pytest.approx(ONE_MINUS_COS45)  # cos([1,0],[.5,.5])
    term.backward()
    assert a.grad is None and protos.grad is not None  # r held fixed, the prototype moves


def test_unimodal_agents_pull_r_toward_the_prototype_of_their_label():
    protos = PROTOS.clone().requires_grad_(True)
    r = torch.tensor([[1.0, 0.0], [1.0, 1.0]], requires_grad=True)
    term = prototype_alignment({"a": r}, protos, torch.tensor([0, 1]), multimodal=False)
    assert term.item() == pytest.approx(ONE_MINUS_COS45 / 2)  # (0 + 0.2929) / 2
    term.backward()
    assert protos.grad is None and r.grad is not None


def test_parse_proto_gives_every_agent_the_same_prototype_component():
    spec = ModelSpec(n_classes=3, dim=6)
    shapes = {"a": (4,), "b": (5,)}
    strategy = SHARING.get("parse_proto")()
    uni, multi = (strategy.build_model(m, shapes, spec) for m in (("a",), ("a", "b")))
    assert isinstance(uni, ProtoSlicedModel)
    for model in (uni, multi):
        model.reset_components(0)
    assert torch.equal(uni.protos.weight, multi.protos.weight)  # same seed, same start
    assert uni.components()["proto_r"] == ["protos.weight"]
    x = {"a": torch.randn(4, 4), "b": torch.randn(4, 5)}
    _, terms = multi.loss(x, torch.tensor([0, 1, 2, 0]), LossWeights())
    assert "proto" in terms


def test_multimodal_agents_fit_the_class_soft_labels_to_their_prediction():
    teacher = torch.zeros(2, 2, requires_grad=True)
    logits = torch.zeros(1, 2, requires_grad=True)  # prediction (0.5, 0.5)
    term = class_distillation(logits, {}, teacher, torch.tensor([0]), multimodal=True)
    assert term.item() == pytest.approx(math.log(2))  # CE((.5, .5), softmax(0, 0))
    term.backward()
    assert logits.grad is None and teacher.grad is not None


def test_unimodal_agents_distil_the_soft_labels_into_their_redundant_head():
    teacher = torch.zeros(2, 2, requires_grad=True)  # class 0 -> (0.5, 0.5)
    r_logits = torch.tensor([[0.0, math.log(3)]], requires_grad=True)  # (0.25, 0.75)
    term = class_distillation(r_logits.detach(), {"a": r_logits}, teacher,
                              torch.tensor([0]), multimodal=False)
    # KL((.5, .5) || (.25, .75)) = .5 ln 2 + .5 ln(2/3) = .5 ln(4/3)
    assert term.item() == pytest.approx(0.5 * math.log(4 / 3))
    term.backward()
    assert teacher.grad is None and r_logits.grad is not None


def test_parse_distill_gives_every_agent_the_same_teacher_component():
    spec = ModelSpec(n_classes=3, dim=6)
    strategy = SHARING.get("parse_distill")()
    uni = strategy.build_model(("a",), {"a": (4,)}, spec)
    assert isinstance(uni, DistillSlicedModel)
    assert uni.components()["teacher_r"] == ["teacher.weight"]
    _, terms = uni.loss({"a": torch.randn(4, 4)}, torch.tensor([0, 1, 2, 0]), LossWeights())
    assert "distill" in terms and "proto" not in terms
