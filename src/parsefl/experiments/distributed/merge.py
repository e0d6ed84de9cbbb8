"""Distributed runs, the shared parts: the rendezvous, gathering every rank's summary, and
merging the summaries into the simulator's ``results.json`` and ``metrics.csv``."""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch.distributed as dist

from parsefl.config import RunConfig
from parsefl.experiments.run.build import Experiment
from parsefl.experiments.run.results import merged_results
from parsefl.experiments.run.rundir import write_json

log = logging.getLogger(__name__)

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


def gather(store: dist.Store, world: int, own: dict, timeout_s: float, out: Path,
           verify: Callable[[int, bytes], dict | None] | None = None) -> dict[int, dict]:
    """Every rank's summary that arrives before the deadline. Stops waiting early for ranks
    that some survivor reported lost (a killed process never publishes).

    The store only says *that* rank k has finished: anyone who reaches it could write there.
    The summary itself is read from ``out/logs/summary_rank_k.json`` (the run folder: one
    machine, or a shared file system), else taken from the store only if ``verify`` accepts
    its signature (``verify(k, raw) -> summary or None``); an unsigned store copy is ignored."""
    got, deadline, refused = {own["rank"]: own}, time.monotonic() + timeout_s, set()
    while time.monotonic() < deadline:
        for k in set(range(world)) - set(got) - refused:
            if store.check([f"summary/{k}"]):
                summary = _summary(k, out, store, verify)
                if summary is None:
                    refused.add(k)
                    log.warning("rank %d's summary is neither in %s nor signed: ignored (copy "
                                "the logs/summary_rank_*.json files into one folder and run "
                                "`parsefl merge`)", k, out / "logs")
                else:
                    got[k] = summary
        lost = {int(p) for s in got.values() for p in s["lost"]}
        if not set(range(world)) - set(got) - lost - refused:
            break
        time.sleep(0.05)
    return got


def _summary(rank: int, out: Path, store: dist.Store,
             verify: Callable[[int, bytes], dict | None] | None) -> dict | None:
    path = out / "logs" / f"summary_rank_{rank}.json"
    if path.is_file():
        summary = json.loads(path.read_text())
        return summary if summary.get("rank") == rank else None
    return verify(rank, store.get(f"summary/{rank}")) if verify is not None else None


def finish(cfg: RunConfig, exp: Experiment, summaries: Mapping[int, dict], out: Path,
           world: int, wall: float, placement: str) -> dict[str, Any]:
    """Merge the ranks' records into the simulator's metrics.csv and results.json (plus a
    ``distributed`` section: placement, missing agents, lost peers, bytes on the wire)."""
    results = merged_results(cfg, exp, summaries, out, wall)
    missing = sorted(set(range(world)) - set(summaries))
    wire = sum((Counter(s["wire"]) for s in summaries.values()), Counter())
    first = summaries[min(summaries)]
    results["distributed"] = {
        "world_size": world, "placement": placement,
        # share of round 0's physical edges whose ends sit in different processes
        "cross_edge_share": first.get("cross_edge_share"),
        "backend": first.get("backend", "reference"),
        "missing_ranks": missing,
        "missing_agents": [i for i in range(len(exp.n_train)) if i not in
                           {row["id"] for row in results["agents"]}],
        "lost_peers": {str(k): s["lost"] for k, s in sorted(summaries.items()) if s["lost"]},
        "rejected_messages": wire.pop("rejected", 0),
        "wire_bytes": dict(wire),
        "resumed_from_round": first["resumed_from"],
        "transport": first.get("transport", "gloo"),
        # Every summary merged came from a process that signed and verified every frame.
        "authenticated": all(s.get("authenticated", False) for s in summaries.values()),
        # gRPC with mutual TLS; gloo sends plaintext (signatures: integrity, not secrecy).
        "encrypted": all(s.get("encrypted", False) for s in summaries.values()),
        "insecure": any(s.get("insecure", False) for s in summaries.values()),
    }
    write_json(out / "results.json", results)
    return results


def merge_run(folder: str | Path) -> dict[str, Any]:
    """``parsefl merge RUN_DIR``: rebuild ``results.json`` and ``metrics.csv`` from the
    ``logs/summary_rank_*.json`` files in ``folder`` (e.g. copied there from every machine of a
    run without a shared folder, or after rank 0 died). Ranks whose file is absent are listed
    as missing, as rank 0 would list them."""
    from parsefl.config import load_config
    from parsefl.errors import ConfigError
    from parsefl.experiments.run.build import build_experiment
    from parsefl.runtime.wire import WireError, loads_bounded

    out = Path(folder)
    summaries = {}
    for path in sorted((out / "logs").glob("summary_rank_*.json")):
        try:
            data = loads_bounded(path.read_bytes())
            summaries[int(data["rank"])] = data
        except (WireError, KeyError, TypeError, ValueError) as err:
            raise ConfigError("RUN_DIR", f"{path} is not a parsefl summary ({err})") from None
    if not summaries or not (out / "config.yaml").is_file():
        raise ConfigError("RUN_DIR", f"{out} has no config.yaml or logs/summary_rank_*.json")
    cfg = load_config(out / "config.yaml")
    first = summaries[min(summaries)]
    world = int(first.get("world_size", max(summaries) + 1))
    try:
        return finish(cfg, build_experiment(cfg, []), summaries, out, world,
                      max(float(s.get("wall_s", 0.0)) for s in summaries.values()),
                      str(first.get("placement", "block")))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
        raise ConfigError("RUN_DIR", f"the summaries in {out / 'logs'} do not fit this run "
                          f"({type(err).__name__}: {err})") from None
