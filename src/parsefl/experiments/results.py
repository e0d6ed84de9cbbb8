"""Assembling what a run reports: metrics rows, the results dict, checkpoints. Shared by the
simulator and any other runtime, so that every runtime writes the same schema."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.torch import save_file

from parsefl.config import RunConfig
from parsefl.experiments.build import Experiment
from parsefl.runtime import Agent, Evaluation, RoundStats
from parsefl.runtime.evaluate import mean_metrics, summarize_groups


def metrics_row(stats: RoundStats, ev: Evaluation, cum_bytes: int) -> dict[str, Any]:
    row: dict[str, Any] = {
        "round": stats.round + 1,
        "train_loss": round(stats.loss, 6),
        "bytes_round": sum(stats.link_bytes.values()),
        "bytes_max_link": max(stats.link_bytes.values(), default=0),
        "bytes_cumulative": cum_bytes,
        "accuracy.overall": ev.overall["accuracy"],
        "macro_f1.overall": ev.overall["macro_f1"],
    }
    for g, vals in ev.groups.items():
        row[f"accuracy.{g}"] = vals["accuracy"]
        row[f"macro_f1.{g}"] = vals["macro_f1"]
    for comp, value in stats.gradient_cosine.items():
        row[f"grad_cos.{comp}"] = value
    return row


def summarize_cosine(per_round: Sequence[dict[str, float]]) -> dict[str, Any]:
    """results.json's ``diagnostics.gradient_cosine``: the mean over rounds per component,
    the mean over components, and the per-round values."""
    comps = sorted({c for r in per_round for c in r})
    mean = {c: float(np.mean([r[c] for r in per_round if c in r])) for c in comps}
    return {
        "mean": mean,
        "overall_mean": float(np.mean(list(mean.values()))) if mean else None,
        "per_round": [{"round": k + 1, **r} for k, r in enumerate(per_round)],
    }


def results_dict(
    cfg: RunConfig, exp: Experiment, agent_rows: Sequence[dict], bytes_rounds: list[Counter],
    wall: float,
) -> dict[str, Any]:
    """The results.json schema. ``agent_rows`` are the per-agent evaluation rows (any order:
    a distributed run gathers them from every process); group and overall values are
    recomputed from them."""
    agent_rows = sorted(agent_rows, key=lambda row: row["id"])
    adversary = exp.loop.adversary
    attackers = adversary.agents if adversary is not None else frozenset()
    agent_rows = [{**row, "honest": row["id"] not in attackers} for row in agent_rows]
    # The headline numbers are the honest agents' (an attacker's own accuracy is not a loss).
    honest_rows = [row for row in agent_rows if row["honest"]] or agent_rows
    groups = summarize_groups(honest_rows)
    overall = mean_metrics(honest_rows)
    total = sum(sum(c.values()) for c in bytes_rounds)
    per_round_mean = [
        sum(c.values()) / max(1, exp.loop.topology.at(r).number_of_edges())
        for r, c in enumerate(bytes_rounds)
    ]
    return {
        "method": cfg.method,
        "dataset": cfg.data.name,
        "seed": cfg.seed,
        "rounds_completed": len(bytes_rounds),
        "final": {
            metric: {
                "overall": overall[metric],
                "groups": {g: v[metric] for g, v in groups.items()},
            }
            for metric in ("accuracy", "macro_f1")
        },
        "communication": {
            "bytes_total": int(total),
            "bytes_per_link_per_round_max": int(
                max((max(c.values(), default=0) for c in bytes_rounds), default=0)
            ),
            "bytes_per_link_per_round_mean": float(sum(per_round_mean) / len(per_round_mean)),
        },
        "adversary": adversary.describe() if adversary is not None else None,
        "rejected_messages": exp.loop.checks.counts,
        "wall_time_s": round(wall, 3),
        "device": str(exp.device),
        "agents": [
            {**row, "n_train": exp.n_train[row["id"]]} for row in agent_rows
        ],
    }


def save_checkpoints(agents: Sequence[Agent], folder: Path) -> None:
    """Each agent's weights as ``agent_NNNN.safetensors`` (written to a temp name, renamed)."""
    folder.mkdir(parents=True, exist_ok=True)
    for agent in agents:
        state = {k: v.detach().cpu().contiguous() for k, v in agent.model.state_dict().items()}
        tmp = folder / f".agent_{agent.id:04d}.safetensors.tmp"
        save_file(state, str(tmp))
        tmp.replace(folder / f"agent_{agent.id:04d}.safetensors")
