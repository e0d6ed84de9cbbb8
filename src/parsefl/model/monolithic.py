"""The monolithic model of the baselines: encoders -> one fused embedding -> one classifier.

Options cover each baseline's variant: ``zero_fill`` (DSGD-Full: an encoder for every task
modality, missing inputs replaced by zeros) and ``unimodal_heads`` (Harmony: a classifier per
modality for stage 1, fusion + classifier trained on frozen encoders in stage 2).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from parsefl.model.base import AgentModel
from parsefl.model.encoders import build_trunks
from parsefl.model.pretrained import frozen
from parsefl.model.sliced import ModelSpec
from parsefl.model.weights import LossWeights


class MonolithicModel(AgentModel):
    """Components: ``enc.<m>`` (trunk + projection to D), ``fusion.<set>`` (multimodal),
    ``classifier``, and with ``unimodal_heads`` a ``head_u.<m>`` per modality."""

    def __init__(
        self,
        modalities: Sequence[str],
        input_shapes: Mapping[str, Sequence[int]],
        spec: ModelSpec,
        zero_fill: bool = False,
        unimodal_heads: bool = False,
    ) -> None:
        super().__init__()
        self.modalities = tuple(modalities)
        self.encoded = tuple(spec.task_modalities) if zero_fill else self.modalities
        self.input_shapes = {m: tuple(input_shapes[m]) for m in self.encoded}
        d, c = spec.dim, spec.n_classes
        self.trunks = build_trunks(self.encoded, input_shapes, spec.encoder, spec.encoder_params)
        self.proj = nn.ModuleDict({m: nn.Linear(self.trunks[m].out_features, d)
                                   for m in self.encoded})
        self.fused = len(self.encoded) > 1
        self.fusion = (nn.Sequential(nn.Linear(len(self.encoded) * d, d), nn.ReLU())
                       if self.fused else None)
        self.classifier = nn.Linear(d, c) if self.fused or not unimodal_heads else None
        self.head_u = nn.ModuleDict(
            {m: nn.Linear(d, c) for m in self.encoded} if unimodal_heads else {}
        )

    def embed(self, x: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per-modality embeddings; absent modalities are zero-filled inputs."""
        batch = next(iter(x.values())).shape[0]
        device = next(iter(x.values())).device
        return {
            m: self.proj[m](self.trunks[m](
                x[m] if m in x else torch.zeros(batch, *self.input_shapes[m], device=device)))
            for m in self.encoded
        }

    def _fuse(self, h: Mapping[str, torch.Tensor]) -> torch.Tensor:
        if self.fusion is None:
            return next(iter(h.values()))
        return self.fusion(torch.cat([h[m] for m in self.encoded], dim=-1))

    def logits(self, x: Mapping[str, torch.Tensor], drop: Collection[str] = ()) -> torch.Tensor:
        h = self.embed(x)
        if self.classifier is None:  # a Harmony unimodal agent
            return self.head_u[self.modalities[0]](h[self.modalities[0]])
        return self.classifier(self._fuse(h))

    def loss(
        self, x: Mapping[str, torch.Tensor], y: torch.Tensor, cfg: LossWeights, phase=None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        h = self.embed(x)
        if not self.head_u:
            loss = F.cross_entropy(self.classifier(self._fuse(h)), y)
            return loss, {"main": loss.detach()}
        if self.classifier is not None and phase == "fusion":
            # Harmony stage 2: fusion and classifier learn on frozen unimodal encoders.
            frozen = {m: v.detach() for m, v in h.items()}
            loss = F.cross_entropy(self.classifier(self._fuse(frozen)), y)
            return loss, {"main": loss.detach()}
        loss = torch.stack([F.cross_entropy(self.head_u[m](h[m]), y) for m in self.modalities])
        loss = loss.mean()
        return loss, {"unimodal": loss.detach()}

    def component_modules(self) -> dict[str, list[nn.Module]]:
        comps: dict[str, list[nn.Module]] = {}
        for m in self.encoded:
            if frozen(self.trunks[m]):  # a frozen pretrained trunk never travels
                comps[f"trunk.{m}"] = [self.trunks[m]]
                comps[f"enc.{m}"] = [self.proj[m]]
            else:
                comps[f"enc.{m}"] = [self.trunks[m], self.proj[m]]
        if self.fusion is not None:
            comps["fusion." + "+".join(self.encoded)] = [self.fusion]
        if self.classifier is not None:
            comps["classifier"] = [self.classifier]
        for m in self.head_u:
            comps[f"head_u.{m}"] = [self.head_u[m]]
        return comps
