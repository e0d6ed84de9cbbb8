"""Sliced models: encoders, fusion operators, heads and the training loss."""

from parsefl.model import encoders, fusion  # noqa: F401  (fill the registries)
from parsefl.model.loss import sliced_loss
from parsefl.model.sliced import ModelSpec, Output, SlicedModel, signature, slice_dims

__all__ = [
    "ModelSpec", "Output", "SlicedModel", "signature", "slice_dims", "sliced_loss",
]
