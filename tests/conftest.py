"""Shared fixtures: tiny agents built by hand so that exchanged values can be computed exactly."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch

from parsefl.config import LossConfig, TrainConfig
from parsefl.model import ModelSpec, SlicedModel
from parsefl.runtime import Agent

INPUT = {"a": (4,), "b": (5,)}


def make_agent(
    i: int, modalities: Sequence[str], hidden: Sequence[int] = (6,), dim: int = 6, n: int = 8
) -> Agent:
    spec = ModelSpec(n_classes=3, dim=dim, encoder_params={"hidden": list(hidden)})
    model = SlicedModel(modalities, INPUT, spec)
    model.reset_components(0)
    gen = torch.Generator().manual_seed(i)
    x = {m: torch.randn(n, *INPUT[m], generator=gen) for m in modalities}
    y = torch.arange(n) % 3
    return Agent(i, model, x, y, TrainConfig(batch_size=4), LossConfig(), 0)


@pytest.fixture
def agent_factory():
    return make_agent
