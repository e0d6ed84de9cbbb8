"""The loss weights a model trains with: a validated, frozen model owned by ``model/`` (the
run config's ``loss`` section is this very class, re-exported as ``parsefl.config.LossConfig``),
so that models never import the run configuration."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class LossWeights(BaseModel):
    """Weights of the loss terms (0 switches a term off)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    aux: float = Field(0.5, ge=0)
    align: float = Field(0.5, ge=0)
    align_kind: Literal["infonce", "cosine"] = "infonce"
    temperature: float = Field(0.2, gt=0)
    decorrelation: float = Field(0.1, ge=0)
    unimodal_path: float = Field(1.0, ge=0)
    # parse_proto only: pull unimodal r slices toward the gossiped multimodal class prototypes
    proto: float = Field(1.0, ge=0)
    # parse_distill only: distil the multimodal class-wise soft labels into unimodal H_r paths
    distill: float = Field(1.0, ge=0)
