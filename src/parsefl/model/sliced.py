"""The sliced (feature-fission) model of one agent, and its named components.

Each encoder E_m emits h_m in R^D, produced by three separate output layers so that the
redundant, unique and synergistic slices (r_m, u_m, s_m) can travel to different audiences.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from parsefl.errors import ConfigError
from parsefl.model.base import AgentModel
from parsefl.model.encoders import build_trunks
from parsefl.model.fusion import build_fusion
from parsefl.model.loss import sliced_loss
from parsefl.model.output import Output
from parsefl.model.pretrained import frozen
from parsefl.model.weights import LossWeights

SLICES = ("r", "u", "s")


def slice_dims(dim: int, split: Sequence[float]) -> tuple[int, int, int]:
    """Cut ``dim`` into (d_r, d_u, d_s) in proportion to ``split`` (largest remainder)."""
    if len(split) != 3 or any(w < 0 for w in split) or sum(split) <= 0:
        raise ConfigError("model.split", f"need three non-negative weights r:u:s, got {split}")
    total = float(sum(split))
    raw = [dim * w / total for w in split]
    dims = [int(v) for v in raw]
    for i in sorted(range(3), key=lambda i: raw[i] - dims[i], reverse=True)[: dim - sum(dims)]:
        dims[i] += 1
    return dims[0], dims[1], dims[2]


@dataclass(frozen=True)
class ModelSpec:
    """Everything that shapes an agent's model (the protocol constants plus its own trunk)."""

    n_classes: int
    dim: int = 96
    split: tuple[float, float, float] = (1.0, 1.0, 1.0)
    encoder: str = "mlp"
    encoder_params: Mapping[str, object] = field(default_factory=dict)
    fusion: str = "concat"
    task_modalities: tuple[str, ...] = ()  # every modality of the task (all agents together)


class SlicedModel(AgentModel):
    """An agent's model for the modalities it holds.

    Components: ``enc.<m>`` trunk + r/u rows, ``enc_s.<m>`` s rows (multimodal only),
    ``head_r``, ``head_u.<m>``, ``synergy.<m1+m2..>`` fusion + synergy head (multimodal only).
    ``all_heads`` (the sliced-hybrid control) gives every agent s rows and a unique head for
    every task modality, as a monolithic classifier would have.
    """

    def __init__(
        self,
        modalities: Sequence[str],
        input_shapes: Mapping[str, Sequence[int]],
        spec: ModelSpec,
        all_heads: bool = False,
    ) -> None:
        super().__init__()
        if not modalities:
            raise ConfigError("mix", "an agent needs at least one modality")
        self.modalities = tuple(modalities)
        self.multimodal = len(self.modalities) > 1
        self.spec = spec
        d_r, d_u, d_s = slice_dims(spec.dim, spec.split)
        self.dims = {"r": d_r, "u": d_u, "s": d_s if self.multimodal or all_heads else 0}
        self.trunks = build_trunks(self.modalities, input_shapes, spec.encoder,
                                   spec.encoder_params)
        for name in SLICES:
            width = self.dims[name]
            rows = {
                m: nn.Linear(self.trunks[m].out_features, width) for m in self.modalities if width
            }
            self.add_module(f"out_{name}", nn.ModuleDict(rows))
        c = spec.n_classes
        head_mods = sorted(set(spec.task_modalities) | set(self.modalities)) if all_heads \
            else self.modalities
        self.head_r = nn.Linear(d_r, c) if d_r else None
        self.head_u = nn.ModuleDict({m: nn.Linear(d_u, c) for m in head_mods} if d_u else {})
        if self.multimodal and d_s:
            self.fusion = build_fusion(spec.fusion, len(self.modalities), d_s)
            self.head_s = nn.Linear(self.fusion.out_features, c)
        else:
            self.fusion = self.head_s = None

    def forward(self, x: Mapping[str, torch.Tensor], drop: Collection[str] = ()) -> Output:
        """Logits = mean_m H_r(r_m) + sum_m H_u[m](u_m) + H_s(F(s)) over the modalities present
        in ``x`` (synergy only when all are); ``drop`` removes whole slice kinds ("r", "u",
        "s") from that sum (slice-drop ablation)."""
        present = [m for m in self.modalities if m in x]
        h = {m: self.trunks[m](x[m]) for m in present}
        r = {m: self.out_r[m](h[m]) for m in present if m in self.out_r}
        u = {m: self.out_u[m](h[m]) for m in present if m in self.out_u}
        s = {m: self.out_s[m](h[m]) for m in present if m in self.out_s}
        r_logits = {m: self.head_r(v) for m, v in r.items()} if self.head_r else {}
        u_logits = {m: self.head_u[m](v) for m, v in u.items()}
        s_logits = None
        if self.fusion is not None and len(present) == len(self.modalities):
            s_logits = self.head_s(self.fusion([s[m] for m in self.modalities]))
        parts: list[torch.Tensor] = []
        if r_logits and "r" not in drop:
            parts.append(torch.stack(list(r_logits.values())).mean(0))
        if u_logits and "u" not in drop:
            parts.append(torch.stack(list(u_logits.values())).sum(0))
        if s_logits is not None and "s" not in drop:
            parts.append(s_logits)
        batch = next(iter(h.values())).shape[0]
        logits = sum(parts) if parts else torch.zeros(batch, self.spec.n_classes)
        return Output(logits, r, u, s, r_logits, u_logits, s_logits)

    def logits(self, x: Mapping[str, torch.Tensor], drop: Collection[str] = ()) -> torch.Tensor:
        return self(x, drop).logits

    def loss(self, x, y, cfg: LossWeights, phase: str | None = None):  # noqa: D102
        return sliced_loss(self(x), y, cfg)

    def active_components(self, held: Collection[str]) -> set[str]:
        """A lost modality's trunk, rows and unique head, and the synergy path (s rows,
        fusion, synergy head: used only when every modality is there) are kept but idle."""
        comps = set(self.component_modules())
        lost = set(self.modalities) - set(held)
        if not lost:
            return comps
        idle = {f"{kind}.{m}" for m in lost for kind in ("enc", "head_u", "trunk")}
        return {c for c in comps if c not in idle
                and c.partition(".")[0] not in ("enc_s", "synergy")}

    def component_modules(self) -> dict[str, list[nn.Module]]:
        comps: dict[str, list[nn.Module]] = {}
        for m in self.modalities:
            # A frozen (pretrained) trunk is a component of its own that never travels.
            trunk = [] if frozen(self.trunks[m]) else [self.trunks[m]]
            if not trunk:
                comps[f"trunk.{m}"] = [self.trunks[m]]
            comps[f"enc.{m}"] = trunk + [
                rows[m] for rows in (self.out_r, self.out_u) if m in rows
            ]
            if m in self.out_s:
                comps[f"enc_s.{m}"] = [self.out_s[m]]
        for m in self.head_u:
            comps[f"head_u.{m}"] = [self.head_u[m]]
        if self.head_r is not None:
            comps["head_r"] = [self.head_r]
        if self.fusion is not None:
            comps[f"synergy.{self.group}"] = [self.fusion, self.head_s]
        return comps
