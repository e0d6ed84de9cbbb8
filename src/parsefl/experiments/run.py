"""Run one experiment from a config: build, loop over rounds, evaluate, write the run folder."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from parsefl.config import RunConfig, to_yaml
from parsefl.experiments.build import Experiment, build_experiment
from parsefl.experiments.divergence import stop_if_diverged
from parsefl.experiments.results import (
    metrics_row,
    results_dict,
    save_checkpoints,
    summarize_cosine,
)
from parsefl.experiments.rundir import atomic_write, write_csv, write_json
from parsefl.model import SlicedModel
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
    cosines: list[dict[str, float]] = []
    cum_bytes = 0
    last: Evaluation | None = None
    for r in range(cfg.rounds):
        stats = exp.loop.step(r)
        stop_if_diverged(cfg, exp.agents, stats, out_dir)
        bytes_rounds.append(stats.link_bytes)
        cosines.append(stats.gradient_cosine)
        cum_bytes += sum(stats.link_bytes.values())
        last_round = r == cfg.rounds - 1
        ev = None
        if (r + 1) % cfg.eval_every == 0 or last_round:
            exp.loop.sync()
            ev = last = evaluate(exp.slots, exp.test_x, exp.test_y, exp.dataset.n_classes)
            rows.append(metrics_row(stats, ev, cum_bytes))
            write_csv(out_dir / "metrics.csv", rows)
        if on_round:
            on_round(stats, ev)
    assert last is not None
    save_checkpoints(exp.agents, out_dir / "checkpoints")
    results = results_dict(cfg, exp, last.agents, bytes_rounds, time.perf_counter() - start)
    results["diagnostics"] = {"gradient_cosine": summarize_cosine(cosines)}
    results["ablations"] = {"slice_drop": slice_drop(exp)}
    write_json(out_dir / "results.json", results)
    return results


def slice_drop(exp: Experiment) -> dict[str, Any] | None:
    """Accuracy when one slice kind's logits are removed from the sum at inference (sliced
    models only): how much each of r, u and s carries, per group."""
    if not all(isinstance(slot.agent.model, SlicedModel) for slot in exp.slots):
        return None
    out: dict[str, Any] = {}
    for kind in ("r", "u", "s"):
        ev = evaluate(exp.slots, exp.test_x, exp.test_y, exp.dataset.n_classes, drop=(kind,))
        out[kind] = {"accuracy": {"overall": ev.overall["accuracy"],
                                  "groups": {g: v["accuracy"] for g, v in ev.groups.items()}}}
    return out


