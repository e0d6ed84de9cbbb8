"""What every agent built from one model shares: the model with its initial values, its
parameter names, components and their signatures.

A component is initialised from (seed, name, signature) alone (``AgentModel.reset_components``),
so every agent of one architecture starts from the same values: a run builds and initialises one
model per architecture, not one per agent, and each agent starts as a reference to it. An agent
gets a module of its own only when something needs one (the reference backend trains it, a
checkpoint file is written from it); the vectorized backend stacks the blueprint's values into
its rows directly (``runtime.stacked_group``).
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping

import torch
from torch import nn
from torch.func import functional_call

from parsefl.model import AgentModel, signature


class Blueprint:
    """One architecture's initial model (never trained: agents copy it before they change it)
    and what the runtime reads from it, computed once."""

    def __init__(self, model: AgentModel) -> None:
        self.model = model
        self.modalities = model.modalities
        self.params: dict[str, nn.Parameter] = dict(model.named_parameters())
        self.names = list(self.params)
        self.components = model.components()
        # A component that does not train (a frozen pretrained trunk) is never offered.
        self.trains = {n for n, p in self.params.items() if p.requires_grad}
        self.signatures = {c: signature(model, names) for c, names in self.components.items()
                           if self.trains & set(names)}
        # Agents with equal keys have identical models: the vectorized backend's groups.
        self.key = (type(model).__name__, self.modalities, signature(model, self.names))
        self._logits = _Logits(model)

    @torch.no_grad()
    def logits(self, weights: Mapping[str, torch.Tensor], x: Mapping[str, torch.Tensor],
               drop: Collection[str] = ()) -> torch.Tensor:
        """The model's logits with ``weights`` (name -> tensor) as its parameters, in
        evaluation mode: an agent's predictions without a module of its own."""
        self.model.eval()
        values = {"model." + n: v for n, v in weights.items()}
        return functional_call(self._logits, values, (x, drop))

    def instantiate(self, values: Mapping[str, torch.Tensor] | None = None) -> AgentModel:
        """A module of its own: a copy of the initial model, or (``values``: name -> tensor)
        one whose parameters are those tensors (views of stacked rows: no copy)."""
        if values is None:
            return copy.deepcopy(self.model)
        memo = {id(p): None for p in self.params.values()}  # parameters not copied
        model = copy.deepcopy(self.model, memo)
        bind(model, values, self.trains)
        return model


class _Logits(nn.Module):
    """``forward(x, drop)`` = the wrapped model's logits (for ``functional_call``)."""

    def __init__(self, model: AgentModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Mapping[str, torch.Tensor], drop: Collection[str]) -> torch.Tensor:
        return self.model.logits(x, drop)


def bind(model: nn.Module, values: Mapping[str, torch.Tensor], trains: set[str]) -> None:
    """Make ``values`` (name -> tensor) the parameters of ``model`` (frozen ones stay
    frozen)."""
    for name, value in values.items():
        owner, _, attr = name.rpartition(".")
        module = model.get_submodule(owner)
        module._parameters[attr] = nn.Parameter(value, requires_grad=name in trains)
