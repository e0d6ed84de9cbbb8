"""Assembling what a run reports: metrics rows, the results dict, checkpoints, and both merged
from the records of :class:`~parsefl.experiments.run.session.RunSession` (one, the simulator's,
or one per rank), so that every runtime writes and reads the same schema."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.torch import save_file

from parsefl.config import RunConfig
from parsefl.experiments.run.build import Experiment
from parsefl.experiments.run.convergence import (
    convergence_summary,
    final_phase_start,
    stop_record,
)
from parsefl.experiments.run.dynamics import dynamics_record
from parsefl.experiments.run.network_stop import StopRule
from parsefl.experiments.run.rundir import write_csv, write_json
from parsefl.overlays.summary import overlay_summary
from parsefl.runtime import Agent, Evaluation, RoundStats
from parsefl.runtime.evaluate import mean_metrics, summarize_groups

RESULTS_MANIFEST = "manifest_results.json"


def publish_results(out: Path, results: Mapping[str, Any], run: str, signer: Any = None) -> None:
    """``results.json``, then its manifest over it and ``metrics.csv`` (written last; signed
    by ``signer``, a :class:`~parsefl.security.manifest.Signer`, when the run has keys)."""
    from parsefl.security.manifest import seal

    write_json(out / "results.json", results)
    files = ["results.json", *(["metrics.csv"] if (out / "metrics.csv").is_file() else [])]
    seal(out, RESULTS_MANIFEST, files, {"kind": "results", "run": run}, signer)


def read_results(run_dir: Path, field: str) -> dict[str, Any]:
    """A run folder's ``results.json``, read only after its manifest verified it and
    ``metrics.csv`` (:func:`~parsefl.security.manifest.unseal`); bounded in depth."""
    from parsefl.runtime.wire import WireError, loads_bounded
    from parsefl.security.manifest import unseal

    unseal(run_dir, RESULTS_MANIFEST, {"kind": "results"}, field, require=["results.json"])
    try:
        data = loads_bounded((run_dir / "results.json").read_bytes())
    except (OSError, WireError) as err:
        from parsefl.errors import ConfigError

        raise ConfigError(field, f"{run_dir / 'results.json'} cannot be read ({err})") from None
    return data


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
    final: dict[str, Any] = _metrics(overall, groups)
    if attackers:
        final.update(adjacency_split(agent_rows, attackers, exp, len(bytes_rounds)))
    return {
        "method": cfg.method,
        "dataset": cfg.data.name,
        "seed": cfg.seed,
        "rounds_completed": len(bytes_rounds),
        "final": final,
        "communication": {
            "bytes_total": int(total),
            "bytes_per_link_per_round_max": int(
                max((max(c.values(), default=0) for c in bytes_rounds), default=0)
            ),
            "bytes_per_link_per_round_mean": float(sum(per_round_mean) / len(per_round_mean)),
        },
        "adversary": adversary.describe() if adversary is not None else None,
        "rejected_messages": exp.loop.checks.counts,
        # a screening aggregator's own rejections (aggregation robust), after the checks
        **({"screened": exp.loop.aggregator.report()}
           if hasattr(exp.loop.aggregator, "report") else {}),
        "wall_time_s": round(wall, 3),
        "device": str(exp.device),
        "agents": [
            {**row, "n_train": exp.n_train[row["id"]]} for row in agent_rows
        ],
    }


def _metrics(overall: Mapping[str, float],
             groups: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
    return {metric: {"overall": overall[metric],
                     "groups": {g: v[metric] for g, v in groups.items()}}
            for metric in ("accuracy", "macro_f1")}


def adjacency_split(agent_rows: Sequence[dict], attackers: frozenset[int], exp: Experiment,
                    rounds: int) -> dict[str, Any]:
    """``final.adjacent`` / ``final.non_adjacent``: the honest agents with an attacker among
    their physical neighbours in some round run (the graph of round 0 for a static one), and
    the others, each with its ids and its accuracy and macro-F1 overall and per group (an
    empty side has ``agents: []`` and no metrics)."""
    topology = exp.loop.topology
    graphs = [topology.at(0)] if topology.static else [topology.at(r) for r in range(rounds)]
    near = {j for g in graphs for a in attackers if a in g for j in g.neighbors(a)}
    out: dict[str, Any] = {}
    for side, rows in (("adjacent", [r for r in agent_rows if r["honest"] and r["id"] in near]),
                       ("non_adjacent", [r for r in agent_rows
                                         if r["honest"] and r["id"] not in near])):
        metrics = _metrics(mean_metrics(rows), summarize_groups(rows)) if rows else {}
        out[side] = {"agents": [r["id"] for r in rows], **metrics}
    return out


def save_checkpoints(agents: Sequence[Agent], folder: Path) -> None:
    """Each agent's weights as ``agent_NNNN.safetensors`` (written to a temp name, renamed)."""
    folder.mkdir(parents=True, exist_ok=True)
    for agent in agents:
        state = {k: v.detach().cpu().contiguous() for k, v in agent.state_dict().items()}
        tmp = folder / f".agent_{agent.id:04d}.safetensors.tmp"
        save_file(state, str(tmp))
        tmp.replace(folder / f"agent_{agent.id:04d}.safetensors")


def merged_results(cfg: RunConfig, exp: Experiment, records: Mapping[int, dict], out: Path,
                   wall: float) -> dict[str, Any]:
    """results.json (without what only one runtime knows) from the records of
    :class:`~parsefl.experiments.run.session.RunSession`: one (the simulator's) or one per rank;
    metrics.csv is written from them too (:func:`metrics_rows`)."""
    history = [r["history"] for r in records.values()]
    ran = 1 + max((rec["round"] for h in history for rec in h["rounds"]),
                  default=cfg.rounds - 1)
    cfg = cfg.model_copy(update={"rounds": ran})  # rounds: auto may have stopped early
    rows, bytes_rounds, evals = metrics_rows(cfg, history)
    write_csv(out / "metrics.csv", rows)
    results = results_dict(cfg, exp, evals[ran - 1], bytes_rounds, wall)
    cosines = [rec.get("cosine", {}) for rec in history[0]["rounds"]]
    results["diagnostics"] = {
        # per process: a whole-run figure only when one process held every agent
        "gradient_cosine": summarize_cosine(cosines) if len(records) == 1 else None,
        "overlay": overlay_summary(tuple(link) for r in records.values()
                                   for link in r.get("overlay_links", []))}
    phases = exp.loop.strategy.phases
    first = records[min(records)]
    if "phases" in first:  # every rank agreed on the same phase starts (older records: none)
        phases.load(first["phases"])
    results["convergence"] = convergence_summary(
        [r["validation"] for r in records.values() if "validation" in r], ran,
        final_phase_start(phases, ran),
        StopRule.of(cfg.train) if cfg.train.stop_rule == "network" else None)
    results.update(stop_record(phases, ran, any(r.get("plateau") for r in records.values())))
    results["rejected_messages"] = dict(sum((Counter(r.get("rejected", {}))
                                             for r in records.values()), Counter()))
    screened = [r["screened"] for r in records.values() if "screened" in r]
    if screened:  # each process screened what its own receivers got
        results["screened"] = merge_screened(screened)
    if (record := dynamics_record(cfg, exp.loop, len(exp.n_train))) is not None:
        results["dynamics"] = record
    if exp.privacy is not None:  # every agent's steps, from whichever process trained it
        steps = {int(k): v for r in records.values() for k, v in r.get("privacy_steps", {}).items()}
        results["privacy"] = exp.privacy.record(cfg, steps, ran)
        if results["privacy"]["stopped_at_budget"] and results["stopped_by"] == "max_rounds":
            results["stopped_by"] = "privacy_budget"
    return results


def merge_screened(reports: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The screen's counts of several processes (``Robust.report``) as one run's: each count
    summed, rejections per sender summed by sender."""
    out: dict[str, Any] = {k: sum(r[k] for r in reports) for k in reports[0]
                           if k != "rejected_from"}
    per: Counter = Counter()
    for r in reports:
        per.update({j: n for j, n in r.get("rejected_from", [])})
    out["rejected_from"] = [[j, n] for j, n in sorted(per.items())]
    return out


def metrics_rows(cfg: RunConfig, history: list[dict]) -> tuple[list[dict], list[Counter],
                                                                 dict[int, list[dict]]]:
    """metrics.csv's rows from the records' histories (rounds ``0 .. cfg.rounds - 1``), the
    bytes per link of every round, and the evaluation rows by round."""
    bytes_rounds = [Counter() for _ in range(cfg.rounds)]
    losses: list[dict[int, float]] = [{} for _ in range(cfg.rounds)]
    cosine: list[dict[str, float]] = [{} for _ in range(cfg.rounds)]
    evals: dict[int, list[dict]] = {}
    for h in history:
        for rec in h["rounds"]:
            bytes_rounds[rec["round"]].update({(u, v): b for u, v, b in rec["links"]})
            losses[rec["round"]].update({int(k): v for k, v in rec["losses"].items()})
            if len(history) == 1:
                cosine[rec["round"]] = rec.get("cosine", {})
        for r, rows in h["evals"].items():
            evals.setdefault(int(r), []).extend(rows)
    rows, cum = [], 0
    for r in range(cfg.rounds):
        cum += sum(bytes_rounds[r].values())
        if r in evals and ((r + 1) % cfg.eval_every == 0 or r == cfg.rounds - 1):
            rows.append(metrics_row(RoundStats(r, round_loss(losses[r]), bytes_rounds[r],
                                               cosine[r]), _evaluation(evals[r]), cum))
    return rows, bytes_rounds, evals


def round_loss(losses: Mapping[int, float]) -> float:
    """A round's train loss: the mean over the agents that trained, in id order (the same in
    every runtime, however its agents were ordered)."""
    return float(np.nanmean([losses[i] for i in sorted(losses)])) if losses else float("nan")


def _evaluation(rows: list[dict]) -> Evaluation:
    rows = sorted(rows, key=lambda row: row["id"])
    overall = {k: float(np.mean([row[k] for row in rows])) for k in ("accuracy", "macro_f1")}
    return Evaluation(rows, summarize_groups(rows), overall)
