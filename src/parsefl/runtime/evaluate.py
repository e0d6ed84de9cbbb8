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
            "macro_f1": macro_f1(y_np, pred, n_classes),
        })
    return Evaluation(rows, summarize_groups(rows), mean_metrics(rows))


def macro_f1(y: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    """The mean over classes ``0..n_classes-1`` of ``2 TP / (2 TP + FP + FN)``, 0 for a class
    neither present nor predicted: scikit-learn's ``f1_score(average="macro", labels=...,
    zero_division=0)`` (checked against it in the tests), without importing scikit-learn
    (1.6 s in every process that evaluates)."""
    tp = np.bincount(y[pred == y], minlength=n_classes)[:n_classes].astype(np.float64)
    fp = np.bincount(pred[pred != y], minlength=n_classes)[:n_classes]
    fn = np.bincount(y[pred != y], minlength=n_classes)[:n_classes]
    denom = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denom, out=np.zeros(n_classes), where=denom > 0)
    return float(f1.mean())


def summarize_groups(rows: Sequence[Mapping]) -> dict[str, dict[str, float]]:
    groups: dict[str, list[Mapping]] = {}
    for row in rows:
        groups.setdefault(row["group"], []).append(row)
    return {g: mean_metrics(members) for g, members in groups.items()}


def mean_metrics(rows: Sequence[Mapping]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) for k in ("accuracy", "macro_f1")}
