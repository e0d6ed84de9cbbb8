"""Distributed runs, the shared parts: the rendezvous, gathering every rank's summary, and
merging the summaries into the simulator's ``results.json`` and ``metrics.csv``."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch.distributed as dist

from parsefl.config import RunConfig
from parsefl.experiments.build import Experiment
from parsefl.experiments.results import metrics_row, results_dict
from parsefl.experiments.rundir import write_csv, write_json
from parsefl.runtime import Evaluation, RoundStats
from parsefl.runtime.evaluate import summarize_groups

STARTUP_S = 120.0  # how long processes wait for each other to start (rendezvous, resume)


def connect(rank: int, world: int, timeout_s: float) -> dist.Store:
    """Rendezvous from torchrun's environment, start gloo, return a store for our own keys.

    Processes start seconds apart (imports, data), so the rendezvous gets at least
    ``STARTUP_S``; gloo uses the same value as its own operation timeout, a backstop only:
    exchanges never post a receive that the deadline-checked announcement did not promise."""
    timeout = timedelta(seconds=max(timeout_s, STARTUP_S))
    store, rank, world = next(dist.rendezvous("env://", rank, world, timeout=timeout))
    dist.init_process_group("gloo", store=dist.PrefixStore("gloo", store), rank=rank,
                            world_size=world, timeout=timeout)
    return dist.PrefixStore(f"parsefl/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}", store)


def gather(store: dist.Store, world: int, own: dict, timeout_s: float) -> dict[int, dict]:
    """Every rank's summary that arrives before the deadline. Stops waiting early for ranks
    that some survivor reported lost (a killed process never publishes)."""
    got, deadline = {own["rank"]: own}, time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for k in set(range(world)) - set(got):
            if store.check([f"summary/{k}"]):
                got[k] = json.loads(store.get(f"summary/{k}"))
        lost = {int(p) for s in got.values() for p in s["lost"]}
        if not set(range(world)) - set(got) - lost:
            break
        time.sleep(0.05)
    return got


def finish(cfg: RunConfig, exp: Experiment, summaries: Mapping[int, dict], out: Path,
           world: int, wall: float, placement: str) -> dict[str, Any]:
    """Merge the summaries into the simulator's metrics.csv and results.json (plus a
    ``distributed`` section: placement, missing agents, lost peers, bytes on the wire)."""
    bytes_rounds = [Counter() for _ in range(cfg.rounds)]
    losses: list[dict[int, float]] = [{} for _ in range(cfg.rounds)]
    evals: dict[int, list[dict]] = {}
    for s in summaries.values():
        for rec in s["history"]["rounds"]:
            bytes_rounds[rec["round"]].update({(u, v): b for u, v, b in rec["links"]})
            losses[rec["round"]].update({int(k): v for k, v in rec["losses"].items()})
        for r, rows in s["history"]["evals"].items():
            evals.setdefault(int(r), []).extend(rows)
    rows, cum = [], 0
    for r in range(cfg.rounds):
        cum += sum(bytes_rounds[r].values())
        if r in evals and ((r + 1) % cfg.eval_every == 0 or r == cfg.rounds - 1):
            ev = _evaluation(evals[r])
            loss = float(np.nanmean([losses[r][i] for i in sorted(losses[r])]))
            rows.append(metrics_row(RoundStats(r, loss, bytes_rounds[r]), ev, cum))
    write_csv(out / "metrics.csv", rows)
    results = results_dict(cfg, exp, evals[cfg.rounds - 1], bytes_rounds, wall)
    missing = sorted(set(range(world)) - set(summaries))
    wire = sum((Counter(s["wire"]) for s in summaries.values()), Counter())
    results["diagnostics"] = {"gradient_cosine": None}  # not gathered across processes
    results["ablations"] = {"slice_drop": None}  # needs every agent's model in one place
    results["distributed"] = {
        "world_size": world, "placement": placement,
        "missing_ranks": missing,
        "missing_agents": [i for i in range(len(exp.n_train)) if i not in
                           {row["id"] for row in results["agents"]}],
        "lost_peers": {str(k): s["lost"] for k, s in sorted(summaries.items()) if s["lost"]},
        "rejected_messages": wire.pop("rejected", 0),
        "wire_bytes": dict(wire),
        "resumed_from_round": summaries[min(summaries)]["resumed_from"],
    }
    results["rejected_messages"] = dict(sum((Counter(s.get("rejected", {}))
                                             for s in summaries.values()), Counter()))
    write_json(out / "results.json", results)
    return results


def _evaluation(rows: list[dict]) -> Evaluation:
    rows = sorted(rows, key=lambda row: row["id"])
    overall = {k: float(np.mean([row[k] for row in rows])) for k in ("accuracy", "macro_f1")}
    return Evaluation(rows, summarize_groups(rows), overall)
