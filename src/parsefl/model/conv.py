"""1-D convolutional encoder trunk for time-series modalities shaped ``(channels, length)``.

Blocks of Conv1d -> GroupNorm -> ReLU (-> Dropout), then global average pooling over time, so
the output width is ``channels[-1]`` whatever the input length. No BatchNorm: its running
statistics are buffers, not parameters, and do not average meaningfully under gossip;
GroupNorm normalises each sample on its own (``norm: none`` switches it off).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral, Real

import torch
from torch import nn

from parsefl.errors import ConfigError
from parsefl.model.encoders import Trunk
from parsefl.registry import ENCODERS

_FIELD = "model.encoder.params"
MAX_GROUPS = 8


def _positive_int(key: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ConfigError(f"{_FIELD}.{key}", f"expected an integer >= 1, got {value!r}")
    return int(value)


def _input_channels(input_shape: Sequence[int]) -> int:
    """Channels of a ``(channels, length)`` input; a ``(length,)`` vector is one channel."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) not in (1, 2) or min(shape) < 1:
        raise ConfigError("model.encoder.name", "conv1d needs inputs shaped (channels, length) "
                          f"or (length,), got per-sample shape {shape}")
    return shape[0] if len(shape) == 2 else 1


@ENCODERS.register("conv1d", "1-D CNN for time series (channels x length), global average pool")
class Conv1dTrunk(Trunk):
    """Conv1d blocks + global average pooling; ``out_features = channels[-1]``.

    Args:
        input_shape: Per-sample shape ``(channels, length)``, or ``(length,)`` (one channel).
        channels: Output channels of each conv block.
        kernel: Kernel size of every conv (padding ``kernel // 2``).
        stride: Stride of every conv (the length shrinks by about this factor per block).
        dropout: Dropout after each block, in [0, 1).
        norm: ``group`` (GroupNorm with gcd(width, 8) groups) or ``none``.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        channels: Sequence[int] = (16, 32),
        kernel: int = 7,
        stride: int = 2,
        dropout: float = 0.0,
        norm: str = "group",
    ) -> None:
        super().__init__()
        if isinstance(channels, str | bytes) or not isinstance(channels, Sequence) or not channels:
            raise ConfigError(f"{_FIELD}.channels",
                              f"expected a non-empty list of widths, got {channels!r}")
        widths = [_positive_int("channels", c) for c in channels]
        kernel = _positive_int("kernel", kernel)
        stride = _positive_int("stride", stride)
        if isinstance(dropout, bool) or not isinstance(dropout, Real) or not 0 <= dropout < 1:
            raise ConfigError(f"{_FIELD}.dropout", f"expected a number in [0, 1), got {dropout!r}")
        if norm not in ("group", "none"):
            raise ConfigError(f"{_FIELD}.norm", f"expected 'group' or 'none', got {norm!r}")
        self.vector_input = len(tuple(input_shape)) == 1
        layers: list[nn.Module] = []
        width = _input_channels(input_shape)
        for out in widths:
            layers.append(nn.Conv1d(width, out, kernel, stride=stride, padding=kernel // 2))
            if norm == "group":
                layers.append(nn.GroupNorm(math.gcd(out, MAX_GROUPS), out))
            layers.append(nn.ReLU())
            if dropout:
                layers.append(nn.Dropout(float(dropout)))
            width = out
        self.net = nn.Sequential(*layers)
        self.out_features = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, channels, length)`` (or ``(batch, length)``) -> ``(batch, out_features)``."""
        if self.vector_input:
            x = x.unsqueeze(1)
        return self.net(x).mean(dim=-1)
