"""Contract tests over every registered name of the kinds that had none: encoders and
partitions (sharing, topology, overlay, fusion, aggregation and PID estimators have theirs in
their own test modules). A newly registered piece is checked here without a new test."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from parsefl.data.partition import partition_indices
from parsefl.model.encoders import build_trunk
from parsefl.registry import ALL, ENCODERS, PARTITIONS

SERIES = (2, 32)  # (channels, length): every encoder takes it (an MLP flattens it)


@pytest.mark.parametrize("name", ENCODERS.names())
def test_every_encoder_maps_a_batch_to_its_declared_width(name):
    torch.manual_seed(0)
    trunk = build_trunk(name, SERIES, {})
    out = trunk(torch.randn(5, *SERIES))
    assert out.shape == (5, trunk.out_features) and trunk.out_features > 0
    assert torch.isfinite(out).all()
    out.sum().backward()  # trainable end to end
    assert all(p.grad is not None for p in trunk.parameters())


def _labels() -> tuple[np.ndarray, np.ndarray]:
    y = np.repeat(np.arange(4), 30)  # 120 samples, 4 balanced classes
    groups = np.arange(120) % 6  # natural ids for partitions that take them
    return y, groups


@pytest.mark.parametrize("name", PARTITIONS.names())
def test_every_partition_deals_each_sample_once_and_is_seeded(name):
    y, groups = _labels()
    parts = partition_indices(name, y, 6, seed=3, groups=groups)
    again = partition_indices(name, y, 6, seed=3, groups=groups)
    assert len(parts) == 6 and all(len(p) > 0 for p in parts)
    everything = np.concatenate(parts)
    assert sorted(everything.tolist()) == list(range(len(y)))  # disjoint and covering
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))


@pytest.mark.parametrize("kind", sorted(ALL))
def test_every_registry_lists_names_with_descriptions(kind):
    registry = ALL[kind]
    names = registry.names()
    assert names, f"registry {kind!r} is empty"
    described = registry.describe()
    for name in names:
        assert registry.get(name) is not None
        assert described[name].strip(), f"{kind} {name!r} has no description for `parsefl list`"
