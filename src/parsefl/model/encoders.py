"""Modality encoders. Each returns a trunk ``nn.Module`` mapping one modality's input to a
hidden vector; the sliced model adds the r/u/s output rows on top, so that those rows can be
separate components with separate audiences."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from parsefl.errors import ConfigError
from parsefl.registry import ENCODERS


class Trunk(nn.Module):
    """An encoder trunk: ``forward(x) -> (batch, out_features)``."""

    out_features: int


@ENCODERS.register("mlp", "multilayer perceptron for vector views (hidden widths configurable)")
class MLPTrunk(Trunk):
    def __init__(
        self, input_shape: Sequence[int], hidden: Sequence[int] = (128,), dropout: float = 0.0
    ) -> None:
        super().__init__()
        if not hidden or any(int(h) <= 0 for h in hidden):
            raise ConfigError("model.encoder.hidden", f"need positive widths, got {list(hidden)}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError("model.encoder.dropout", f"must be in [0, 1), got {dropout}")
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for h in hidden:
            layers += [nn.Linear(width, int(h)), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = int(h)
        self.net = nn.Sequential(*layers)
        self.out_features = width

    def forward(self, x):  # noqa: D102
        return self.net(x)


def build_trunks(modalities, input_shapes, name: str, params) -> nn.ModuleDict:
    """One trunk per modality, all of the same registered encoder."""
    return nn.ModuleDict({m: build_trunk(name, input_shapes[m], dict(params)) for m in modalities})


def build_trunk(name: str, input_shape: Sequence[int], params: dict) -> Trunk:
    """Instantiate the registered encoder ``name`` for a modality of ``input_shape``."""
    cls = ENCODERS.get(name, field="model.encoder.name")
    try:
        return cls(input_shape, **params)
    except TypeError as err:
        raise ConfigError("model.encoder", f"bad parameters for encoder {name!r}: {err}") from None
