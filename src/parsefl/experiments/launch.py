"""Multi-process runs over torch.distributed: the per-process worker (``python -m
parsefl.experiments.launch``, what torchrun starts on every machine) and :func:`launch`, which
starts N workers on this machine and returns the merged results (docs/distributed.md).

Each worker builds the whole experiment (deterministic), keeps the agents placed on its rank,
runs the simulator's round loop over a :class:`DistributedTransport`, checkpoints every K rounds
and at the end publishes a JSON summary (its rounds, evaluations, bytes) in the TCPStore;
rank 0 merges the summaries into the simulator's ``results.json`` and ``metrics.csv``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from parsefl.config import RunConfig, load_config, to_yaml
from parsefl.errors import ConfigError, ParseflError
from parsefl.experiments.build import Experiment, build_experiment
from parsefl.experiments.checkpoint import load_agent_state, save_agent_state
from parsefl.experiments.results import metrics_row, results_dict, save_checkpoints
from parsefl.experiments.rundir import atomic_write, write_csv, write_json
from parsefl.runtime import Evaluation, RoundStats, evaluate
from parsefl.runtime.distributed import (
    DistributedLoop,
    DistributedTransport,
    component_specs,
    peer_ranks,
    place_agents,
)
from parsefl.runtime.evaluate import summarize_groups
from parsefl.runtime.handshake import overlay_radius

log = logging.getLogger("parsefl.launch")
STARTUP_S = 120.0  # how long processes wait for each other to start (rendezvous, resume)


def runtime_setting(cfg: RunConfig, name: str, given: float | None) -> Any:
    """An explicit value, else ``cfg.runtime.<name>`` when the config has it, else the default."""
    if given is not None:
        return given
    return getattr(cfg.runtime, name)


def fingerprint(cfg: RunConfig) -> str:
    """What must not change between a run and its resume (rounds and evaluation may)."""
    data = cfg.model_dump(mode="json", exclude={"rounds", "eval_every", "device", "runtime"})
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


# --- the worker ---

class Worker:
    """One process of a distributed run: its agents, its transport, its history."""

    def __init__(self, args: argparse.Namespace, rank: int, world: int) -> None:
        cfg = load_config(args.config, args.override or [], args.method)
        if cfg.device == "auto" and torch.cuda.is_available():  # one GPU per local process
            local = int(os.environ.get("LOCAL_RANK", rank)) % torch.cuda.device_count()
            cfg = cfg.model_copy(update={"device": f"cuda:{local}"})
        self.cfg, self.rank, self.world, self.out = cfg, rank, world, Path(args.out)
        self.timeout_s = float(runtime_setting(cfg, "timeout_s", args.timeout_s))
        self.every = int(runtime_setting(cfg, "checkpoint_every", args.checkpoint_every))
        self.placement = args.placement
        self.start = time.perf_counter()
        # Build before the rendezvous, so that ranks reach their first exchange together.
        self.exp = build_experiment(cfg)
        self.store = connect(rank, world, self.timeout_s)
        self.owner = place_agents(len(self.exp.agents), world, args.placement)
        self.local = [a for a in self.exp.agents if self.owner[a.id] == rank]
        self.slots = [self.exp.slots[a.id] for a in self.local]
        for agent in self.local:  # the gradient-cosine diagnostic needs every agent's gradients
            agent.track_gradients = False
        topo = self.exp.loop.topology
        radius = overlay_radius(cfg.overlay.name, cfg.overlay.hops)
        peers = peer_ranks(topo.at(0), self.owner, rank, radius) if topo.static else None
        self.transport = DistributedTransport(rank, self.owner, component_specs(self.local),
                                              self.store, self.timeout_s, peers, self.exp.device)
        self.loop = DistributedLoop(self.local, self.exp.loop.strategy, topo, self.transport,
                                    cfg.overlay.name, cfg.overlay.hops,
                                    degree=cfg.overlay.degree)
        self.history: dict[str, Any] = {"rounds": [], "evals": {}}
        log.info("rank %d of %d, pid %d, agents %s, peer ranks %s, timeout %g s",
                 rank, world, os.getpid(), [a.id for a in self.local],
                 "all" if peers is None else sorted(peers), self.timeout_s)

    def run(self, resume: bool) -> None:
        first = self.restore() if resume else 0
        if self.rank == 0:
            atomic_write(self.out / "config.yaml", to_yaml(self.cfg))
        for r in range(first, self.cfg.rounds):
            self.round(r)
            if r == first:
                write_json(self.out / "logs" / f"plans_rank_{self.rank}.json", self.plans())
        save_checkpoints(self.local, self.out / "checkpoints")
        summary = {"rank": self.rank, "agents": [a.id for a in self.local],
                   "history": self.history, "wire": dict(self.transport.wire),
                   "lost": {str(p): why for p, why in self.transport.lost.items()},
                   "resumed_from": first}
        write_json(self.out / "logs" / f"summary_rank_{self.rank}.json", summary)
        self.store.set(f"summary/{self.rank}", json.dumps(summary))
        if self.rank == 0:
            summaries = gather(self.store, self.world, summary, self.timeout_s)
            finish(self.cfg, self.exp, summaries, self.out, self.world,
                   time.perf_counter() - self.start, self.placement)

    def round(self, r: int) -> None:
        t0 = time.perf_counter()
        stats = self.loop.step(r)
        self.history["rounds"].append({
            "round": r, "losses": {str(a.id): a.last_loss for a in self.local},
            "links": [[u, v, b] for (u, v), b in sorted(stats.link_bytes.items())],
        })
        if (r + 1) % self.cfg.eval_every == 0 or r == self.cfg.rounds - 1:
            ev = evaluate(self.slots, self.exp.test_x, self.exp.test_y,
                          self.exp.dataset.n_classes)
            self.history["evals"][str(r)] = ev.agents
        if (r + 1) % self.every == 0:
            self.checkpoint(r + 1)
        log.info("round %d done: loss %.4f, %d bytes counted, %.3f s", r, stats.loss,
                 sum(stats.link_bytes.values()), time.perf_counter() - t0)

    def checkpoint(self, done: int) -> None:
        """``state/round_<done>/``: agent files first, then this rank's JSON, which marks its
        part complete (an interrupted write leaves no marker and is never resumed from)."""
        folder = self.out / "state" / f"round_{done:06d}"
        folder.mkdir(parents=True, exist_ok=True)
        for agent in self.local:
            save_agent_state(agent, folder / f"agent_{agent.id:04d}.safetensors")
        write_json(folder / f"rank_{self.rank}.json", {
            "rounds_done": done, "world_size": self.world, "owner": self.owner,
            "fingerprint": fingerprint(self.cfg), "history": self.history,
            "wire": dict(self.transport.wire)})

    def restore(self) -> int:
        """Agree with every rank on the latest round all of them checkpointed; load it."""
        mine = [int(p.name[6:]) for p in (self.out / "state").glob("round_*")
                if (p / f"rank_{self.rank}.json").is_file()]
        self.store.set(f"resume/{self.rank}", json.dumps(mine))
        keys = [f"resume/{k}" for k in range(self.world)]
        self.store.wait(keys, timedelta(seconds=max(self.timeout_s, STARTUP_S)))
        done = max(set.intersection(*(set(json.loads(self.store.get(k))) for k in keys)),
                   default=0)
        if not done:
            log.warning("no checkpoint complete on every rank: starting from round 0")
            return 0
        folder = self.out / "state" / f"round_{done:06d}"
        meta = json.loads((folder / f"rank_{self.rank}.json").read_text())
        if meta["owner"] != self.owner or meta["fingerprint"] != fingerprint(self.cfg):
            raise ConfigError("--resume", f"{folder} was written with another placement, "
                              "process count or config; resume with the same ones")
        for agent in self.local:
            load_agent_state(agent, folder / f"agent_{agent.id:04d}.safetensors")
        self.history = meta["history"]
        self.transport.wire.update(meta["wire"])
        log.info("resumed from %s", folder)
        return done

    def plans(self) -> dict[str, Any]:
        """This round's gossip plans (peers with paths, MH weights), for inspection and tests."""
        return {str(i): {c: {"paths": {str(j): list(p) for j, p in paths.items()},
                             "self_weight": plan.self_weight[c],
                             "weights": {str(j): w for j, w in plan.weights[c].items()}}
                         for c, paths in plan.paths.items()}
                for i, plan in self.loop.plans.items()}


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
        if r in evals:
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
        "missing_agents": [i for i, a in enumerate(exp.agents) if i not in
                           {row["id"] for row in results["agents"]}],
        "lost_peers": {str(k): s["lost"] for k, s in sorted(summaries.items()) if s["lost"]},
        "rejected_messages": wire.pop("rejected", 0),
        "wire_bytes": dict(wire),
        "resumed_from_round": summaries[min(summaries)]["resumed_from"],
    }
    write_json(out / "results.json", results)
    return results


def _evaluation(rows: list[dict]) -> Evaluation:
    rows = sorted(rows, key=lambda row: row["id"])
    overall = {k: float(np.mean([row[k] for row in rows])) for k in ("accuracy", "macro_f1")}
    return Evaluation(rows, summarize_groups(rows), overall)


# --- entry points ---

def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m parsefl.experiments.launch",
                                description="One process of a distributed parsefl run.")
    p.add_argument("config", nargs="?", default=None, help="YAML preset (default: quickstart)")
    p.add_argument("-o", "--override", action="append", help="key=value, e.g. -o rounds=10")
    p.add_argument("--method", default=None, help="sharing strategy")
    p.add_argument("--out", required=True, help="run folder (the same for every process)")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
    p.add_argument("--timeout-s", type=float, default=None, help="deadline per exchange")
    p.add_argument("--checkpoint-every", type=int, default=None, help="rounds between saves")
    p.add_argument("--placement", choices=("block", "round_robin"), default="block")
    return p


def worker_main(argv: Sequence[str] | None = None) -> int:
    """Entry of one process (torchrun's environment: RANK, WORLD_SIZE, MASTER_ADDR,
    MASTER_PORT). Logs to ``OUT/logs/rank_<RANK>.log``; returns the exit code."""
    args = parser().parse_args(argv)
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        print("error: RANK/WORLD_SIZE are not set; start this under torchrun, or use "
              "`parsefl launch --nproc N` on one machine", file=sys.stderr)
        return 2
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    _log_to(Path(args.out) / "logs" / f"rank_{rank}.log", rank)
    try:
        Worker(args, rank, world).run(args.resume)
    except ParseflError as err:
        log.error("%s", err)
        return 2
    except Exception:
        log.exception("rank %d failed", rank)
        return 1
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


def _log_to(path: Path, rank: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    file = logging.FileHandler(path)
    file.setFormatter(logging.Formatter(
        f"%(asctime)s rank {rank} %(levelname)s %(name)s: %(message)s"))
    console = logging.StreamHandler()
    console.setLevel(logging.WARNING)
    logging.basicConfig(level=logging.INFO, handlers=[file, console], force=True)



if __name__ == "__main__":
    sys.exit(worker_main())
