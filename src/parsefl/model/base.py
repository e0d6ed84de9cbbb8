"""What every agent model offers the runtime: named components, seeded initialisation, logits
and a loss. Sharing strategies and the round loop see models only through this interface."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, Sequence

import torch
from torch import nn

from parsefl.model.weights import LossWeights


class AgentModel(nn.Module):
    """Base class of agent models (sliced, monolithic, ...)."""

    modalities: tuple[str, ...]  # the modalities the agent holds data for

    @property
    def group(self) -> str:
        return "+".join(self.modalities)

    def component_modules(self) -> dict[str, list[nn.Module]]:
        """Component name -> the modules it owns; every parameter lies in exactly one."""
        raise NotImplementedError

    def logits(self, x: Mapping[str, torch.Tensor], drop: Collection[str] = ()) -> torch.Tensor:
        raise NotImplementedError

    def loss(
        self, x: Mapping[str, torch.Tensor], y: torch.Tensor, cfg: LossWeights, phase: str | None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def active_components(self, held: Collection[str]) -> set[str]:
        """The components an agent holding only ``held`` (of its modalities) uses, trains and
        offers. Default: all of them (a model that zero-fills missing inputs)."""
        return set(self.component_modules())

    def components(self) -> dict[str, list[str]]:
        """Component name -> the names of the parameters it owns."""
        owner = {id(p): c for c, mods in self.component_modules().items()
                 for mod in mods for p in mod.parameters()}
        comps: dict[str, list[str]] = {}
        for name, p in self.named_parameters():
            comps.setdefault(owner[id(p)], []).append(name)
        return comps

    def reset_components(self, seed: int) -> None:
        """Re-initialise each component from a seed derived from (seed, name, signature), so
        that every holder of a component starts from the same values, whatever else it holds."""
        names = self.components()
        with torch.random.fork_rng(devices=[]):
            for comp, modules in self.component_modules().items():
                key = f"{seed}:{comp}:{signature(self, names[comp])}"
                torch.manual_seed(int(hashlib.sha256(key.encode()).hexdigest()[:15], 16))
                for module in modules:
                    for sub in module.modules():
                        if hasattr(sub, "reset_parameters"):
                            sub.reset_parameters()


def signature(model: nn.Module, param_names: Sequence[str]) -> str:
    """A short hash of a component's parameter names, shapes and dtypes: two agents exchange a
    component only when their signatures agree (so a wide and a narrow trunk never mix)."""
    params = dict(model.named_parameters())
    text = ";".join(f"{n}:{tuple(params[n].shape)}:{params[n].dtype}" for n in sorted(param_names))
    return hashlib.sha1(text.encode()).hexdigest()[:16]
