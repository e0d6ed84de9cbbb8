"""Held-out evaluation: accuracy and macro-F1 per agent, per group and overall."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import f1_score

from parsefl.runtime.agent import Agent


@dataclass(frozen=True)
class Evaluation:
    agents: list[dict]  # id, group, modalities, accuracy, macro_f1
    groups: dict[str, dict[str, float]]  # group -> {"accuracy", "macro_f1"} (mean over agents)
    overall: dict[str, float]  # mean over agents


def evaluate(
    agents: Sequence[Agent], x: Mapping[str, torch.Tensor], y: torch.Tensor, n_classes: int
) -> Evaluation:
    """Each agent on the whole test set, using only the modalities it holds."""
    y_np = y.cpu().numpy()
    rows = []
    for agent in agents:
        pred = agent.predict(x).cpu().numpy()
        rows.append({
            "id": agent.id,
            "group": agent.group,
            "modalities": list(agent.modalities),
            "accuracy": float((pred == y_np).mean()),
            "macro_f1": float(f1_score(y_np, pred, average="macro",
                                       labels=list(range(n_classes)), zero_division=0)),
        })
    return Evaluation(rows, summarize_groups(rows), _mean(rows))


def summarize_groups(rows: Sequence[Mapping]) -> dict[str, dict[str, float]]:
    groups: dict[str, list[Mapping]] = {}
    for row in rows:
        groups.setdefault(row["group"], []).append(row)
    return {g: _mean(members) for g, members in groups.items()}


def _mean(rows: Sequence[Mapping]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) for k in ("accuracy", "macro_f1")}
