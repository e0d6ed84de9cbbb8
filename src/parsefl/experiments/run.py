"""Run one experiment from a config: build, loop over rounds, evaluate, write the run folder."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from parsefl.config import RunConfig, to_yaml
from parsefl.experiments.build import Experiment, build_experiment
from parsefl.experiments.rundir import atomic_write, write_csv, write_json
from parsefl.runtime import Evaluation, RoundStats, evaluate

ProgressFn = Callable[[RoundStats, Evaluation | None], None]


def run_experiment(
    cfg: RunConfig, out_dir: Path, on_round: ProgressFn | None = None
) -> dict[str, Any]:
    """Run ``cfg`` to completion, writing config.yaml, metrics.csv, results.json and the final
    per-agent checkpoints into ``out_dir``; returns the results dict."""
    start = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / "config.yaml", to_yaml(cfg))
    exp = build_experiment(cfg)
    rows: list[dict[str, Any]] = []
    bytes_rounds: list[Counter] = []
    cum_bytes = 0
    last: Evaluation | None = None
    for r in range(cfg.rounds):
        stats = exp.loop.step(r)
        bytes_rounds.append(stats.link_bytes)
        cum_bytes += sum(stats.link_bytes.values())
        last_round = r == cfg.rounds - 1
        ev = None
        if (r + 1) % cfg.eval_every == 0 or last_round:
            ev = last = evaluate(exp.agents, exp.test_x, exp.test_y, exp.dataset.n_classes)
            rows.append(_metrics_row(stats, ev, cum_bytes))
            write_csv(out_dir / "metrics.csv", rows)
        if on_round:
            on_round(stats, ev)
    assert last is not None
    _save_checkpoints(exp, out_dir / "checkpoints")
    results = _results(cfg, exp, last, bytes_rounds, time.perf_counter() - start)
    write_json(out_dir / "results.json", results)
    return results


def _metrics_row(stats: RoundStats, ev: Evaluation, cum_bytes: int) -> dict[str, Any]:
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
    return row


def _results(
    cfg: RunConfig, exp: Experiment, ev: Evaluation, bytes_rounds: list[Counter], wall: float
) -> dict[str, Any]:
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
                "overall": ev.overall[metric],
                "groups": {g: v[metric] for g, v in ev.groups.items()},
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
        "wall_time_s": round(wall, 3),
        "device": str(exp.device),
        "agents": [
            {**row, "n_train": exp.agents[k].n_samples} for k, row in enumerate(ev.agents)
        ],
    }


def _save_checkpoints(exp: Experiment, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for agent in exp.agents:
        state = {k: v.detach().cpu().contiguous() for k, v in agent.model.state_dict().items()}
        tmp = folder / f".agent_{agent.id:04d}.safetensors.tmp"
        save_file(state, str(tmp))
        tmp.replace(folder / f"agent_{agent.id:04d}.safetensors")
