"""Agent models (sliced and monolithic), encoders and fusion operators, and the loss."""

from parsefl.model import conv, encoders, fusion  # noqa: F401  (fill the registries)
from parsefl.model.base import AgentModel, signature
from parsefl.model.loss import sliced_loss
from parsefl.model.monolithic import MonolithicModel
from parsefl.model.output import Output
from parsefl.model.sliced import ModelSpec, SlicedModel, slice_dims

__all__ = [
    "AgentModel", "ModelSpec", "MonolithicModel", "Output", "SlicedModel", "signature",
    "slice_dims", "sliced_loss",
]
