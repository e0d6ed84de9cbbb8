"""Held-out evaluation: accuracy and macro-F1 per agent, per group and overall."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from parsefl.runtime.agent import Agent


@dataclass(frozen=True)
class Slot:
    """One place in the agent mix as evaluated: normally an agent itself; for the centralized
    baseline, the pooled model used with that agent's modalities."""

    id: int
    modalities: tuple[str, ...]
    agent: Agent
    n_train: int

    @property
    def group(self) -> str:
        return "+".join(self.modalities)


def slots_of(agents: Sequence[Agent]) -> list[Slot]:
    return [Slot(a.id, a.modalities, a, a.n_samples) for a in agents]


@dataclass(frozen=True)
class Evaluation:
    agents: list[dict]  # id, group, modalities, accuracy, macro_f1
    groups: dict[str, dict[str, float]]  # group -> {"accuracy", "macro_f1"} (mean over agents)
    overall: dict[str, float]  # mean over agents


def evaluate(
    slots: Sequence[Slot], x: Mapping[str, torch.Tensor], y: torch.Tensor, n_classes: int,
    drop: Sequence[str] = (),
) -> Evaluation:
    """Each slot on the whole test set, using only its modalities (those it still holds, when
    a modality schedule took some away)."""
    from sklearn.metrics import f1_score  # lazy: `parsefl list` stays fast

    y_np = y.cpu().numpy()
    rows = []
    for slot in slots:
        mods = tuple(m for m in slot.modalities if m in slot.agent.held) or slot.modalities
        pred = slot.agent.predict(x, mods, drop=drop).cpu().numpy()
        rows.append({
            "id": slot.id,
            "group": slot.group,
            "modalities": list(slot.modalities),
            "accuracy": float((pred == y_np).mean()),
            "macro_f1": float(f1_score(y_np, pred, average="macro",
                                       labels=list(range(n_classes)), zero_division=0)),
        })
    return Evaluation(rows, summarize_groups(rows), mean_metrics(rows))


def summarize_groups(rows: Sequence[Mapping]) -> dict[str, dict[str, float]]:
    groups: dict[str, list[Mapping]] = {}
    for row in rows:
        groups.setdefault(row["group"], []).append(row)
    return {g: mean_metrics(members) for g, members in groups.items()}


def mean_metrics(rows: Sequence[Mapping]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) for k in ("accuracy", "macro_f1")}
