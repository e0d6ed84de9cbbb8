"""Tests of the conv1d encoder trunk (imported directly until model/__init__ imports it)."""

from __future__ import annotations

import pytest
import torch

from parsefl.errors import ConfigError
from parsefl.model.conv import Conv1dTrunk
from parsefl.model.encoders import build_trunk
from parsefl.registry import ENCODERS


@pytest.mark.parametrize(
    ("shape", "params", "width"),
    [
        ((1, 1250), {}, 32),
        ((3, 100), {"channels": [8]}, 8),
        ((6, 37), {"channels": [4, 12, 20], "kernel": 3, "stride": 1, "dropout": 0.2}, 20),
        ((2, 5), {"channels": [16, 16], "kernel": 9, "stride": 4, "norm": "none"}, 16),
        ((76,), {"channels": [6]}, 6),
    ],
)
def test_forward_backward(shape: tuple[int, ...], params: dict, width: int) -> None:
    torch.manual_seed(0)
    trunk = build_trunk("conv1d", shape, params)
    assert isinstance(trunk, Conv1dTrunk) and trunk.out_features == width
    x = torch.randn(5, *shape, requires_grad=True)
    out = trunk(x)
    assert out.shape == (5, width)
    out.pow(2).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None for p in trunk.parameters())


def test_registered_without_batchnorm_buffers() -> None:
    assert "conv1d" in ENCODERS
    trunk = Conv1dTrunk((3, 100))
    # Gossip averages parameters only: no running statistics may hide in buffers.
    assert list(trunk.buffers()) == []
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in trunk.modules())
    assert any(isinstance(m, torch.nn.GroupNorm) for m in trunk.modules())


def test_length_independent_output_and_eval_determinism() -> None:
    trunk = Conv1dTrunk((2, 50), channels=[4], dropout=0.5).eval()
    x = torch.randn(3, 2, 50)
    torch.testing.assert_close(trunk(x), trunk(x))
    assert trunk(torch.randn(3, 2, 7)).shape == (3, 4)


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"channels": []}, "channels"),
        ({"channels": [8, 0]}, "channels"),
        ({"channels": "16"}, "channels"),
        ({"channels": [8.5]}, "channels"),
        ({"kernel": 0}, "kernel"),
        ({"kernel": True}, "kernel"),
        ({"stride": -1}, "stride"),
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": "x"}, "dropout"),
        ({"norm": "batch"}, "norm"),
    ],
)
def test_bad_params_name_the_field(params: dict, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_trunk("conv1d", (2, 10), params)
    assert info.value.field == f"model.encoder.params.{key}"


def test_bad_input_shape_and_unknown_param() -> None:
    with pytest.raises(ConfigError, match="channels, length"):
        build_trunk("conv1d", (2, 3, 4), {})
    with pytest.raises(ConfigError, match="bad parameters for encoder 'conv1d'"):
        build_trunk("conv1d", (2, 10), {"hidden": [3]})
