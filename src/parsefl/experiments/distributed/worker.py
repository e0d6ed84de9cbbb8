"""One process of a multi-process run over torch.distributed (``python -m
parsefl.experiments.distributed.worker``, what torchrun starts on every machine; ``parsefl
launch`` starts N of them on one machine, see :mod:`parsefl.experiments.distributed.launcher`
and docs/distributed.md).

Each worker reads the run's config file, builds only the agents placed on its rank (data,
partition and graph are those of the whole experiment), and drives them through the one driver
(:func:`~parsefl.experiments.run.driver.run_rounds`) over a registered transport (gloo, gRPC):
evaluation, checkpoints every K rounds and the log are hooks. At the end it publishes a JSON
summary (its rounds, evaluations, bytes) in the TCPStore; rank 0 merges the summaries into the
simulator's ``results.json`` and ``metrics.csv`` (:mod:`parsefl.experiments.distributed.merge`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from parsefl.config import RunConfig, load_config, to_yaml
from parsefl.errors import ConfigError, ParseflError
from parsefl.experiments.distributed.links import make_auth, transport_settings
from parsefl.experiments.distributed.merge import (
    STARTUP_S,
    RunParts,
    connect,
    finish,
    gather,
    write_summary,
)
from parsefl.experiments.distributed.placing import choose_executor, placement
from parsefl.experiments.run.build import build_experiment
from parsefl.experiments.run.checkpoint import complete_rounds, fingerprint
from parsefl.experiments.run.driver import RoundEnd, run_rounds
from parsefl.experiments.run.results import save_checkpoints
from parsefl.experiments.run.rundir import atomic_write, write_json
from parsefl.experiments.run.session import RunSession
from parsefl.plugins import load_plugins
from parsefl.runtime import evaluate
from parsefl.runtime.distributed import DistributedEngine, StoreNotes, peer_ranks
from parsefl.runtime.handshake import overlay_radius
from parsefl.runtime.transport_base import Wiring, build_transport, transport_class
from parsefl.runtime.wire import WireError, component_specs, loads_bounded
from parsefl.security.manifest import Signer

log = logging.getLogger("parsefl.worker")


def progress_path(out: Path) -> Path:
    """Rank 0's rounds done, rewritten after every round (``parsefl launch`` shows it)."""
    return out / "logs" / "progress.json"


def runtime_setting(cfg: RunConfig, name: str, given: float | None) -> Any:
    """An explicit value, else ``cfg.runtime.<name>``."""
    return given if given is not None else getattr(cfg.runtime, name)


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
        self.insecure = args.insecure
        self.joining = args.join
        if args.join and (args.resume or args.transport != "grpc"):
            raise ConfigError("--join", "needs --transport grpc and no --resume (a joiner "
                              "starts from its own newest checkpoint by itself)")
        self.marker = f"rank_{rank}.json"
        self.start = time.perf_counter()
        self.placement, self.owner, self.cross_share = placement(cfg, args.placement, world)
        mine = [i for i, r in enumerate(self.owner) if r == rank]
        self.auth = make_auth(cfg, args.keys, mine)  # bad keys: fail before the rendezvous
        # Signs this rank's manifests (checkpoints, summary; rank 0: results) with keys.
        self.signer = Signer(self.auth.ids, mine[0]) if self.auth is not None and mine \
            else None
        self.parts = RunParts(fingerprint(cfg), cfg.rounds, world, self.owner,
                              self.auth.ids if self.auth is not None else None, self.placement)
        self.settings = transport_settings(args, rank, world, self.timeout_s,
                                           cfg.rounds)  # a known kind
        # Build before the rendezvous, so that ranks reach their first exchange together.
        self.exp = build_experiment(cfg, mine)
        self.kind = self.settings.kind
        self.store = connect(rank, world, self.timeout_s) \
            if transport_class(self.kind).needs_store else None
        self.notes = StoreNotes(self.store, rank, self.owner, self.auth)
        self.local, self.slots = self.exp.agents, self.exp.slots
        for agent in self.local:  # the gradient-cosine diagnostic needs every agent's gradients
            agent.track_gradients = False
        topo = self.exp.loop.topology
        radius = overlay_radius(cfg.overlay.name, cfg.overlay.hops)
        peers = peer_ranks(topo.at(0), self.owner, rank, radius) if topo.static else None
        self.transport = build_transport(self.settings, Wiring(
            self.owner, component_specs(self.local), peers, self.exp.device, self.auth,
            self.exp.loop.communication, self.store))
        self.loop = DistributedEngine.from_engine(self.exp.loop, self.local, self.transport)
        self.backend = choose_executor(self.exp, self.loop, cfg)
        self.transport.checks = self.loop.checks  # one count per reason, wire and merge
        self.clock = time.perf_counter()
        log.info("rank %d of %d, pid %d, agents %s, peer ranks %s, timeout %g s, %s, "
                 "%s backend, placement %s (%.1f%% of edges cross processes)",
                 rank, world, os.getpid(), [a.id for a in self.local],
                 "all" if peers is None else sorted(peers), self.timeout_s,
                 f"signed frames (keys {args.keys})" if self.auth else "unsigned frames",
                 self.backend, self.placement, 100 * self.cross_share)

    def run(self, resume: bool) -> bool:
        """Run this rank's part; whether the run stayed whole as far as this process can tell
        (rank 0 over the store: every summary merged; otherwise: no peer lost)."""
        self.session = session = RunSession(
            self.cfg, self.exp, self.loop, self.local, self.out, self.marker,
            lambda: {"world_size": self.world, "owner": self.owner,
                     "wire": dict(self.transport.wire)}, self.signer)
        first = session.restore(self.agreed_round()) if resume else 0
        if first:
            self.transport.wire.update(session.restored["wire"])
        joined = self.join(session) if self.joining else None
        if joined is not None:
            first = joined["round"]
        if self.rank == 0:
            atomic_write(self.out / "config.yaml", to_yaml(self.cfg))
        ds = self.exp.dataset
        hooks = [*session.hooks(lambda: evaluate(self.slots, self.exp.test_x, self.exp.test_y,
                                                 ds.n_classes), self.every),
                 lambda end: end.round == first and write_json(
                     self.out / "logs" / f"plans_rank_{self.rank}.json", self.plans()),
                 self.log_round]
        if self.rank == 0:
            hooks.append(lambda end: write_json(progress_path(self.out), {
                "done": end.done, "rounds": self.cfg.rounds}))
        run_rounds(self.loop, self.cfg.rounds, hooks, first)
        save_checkpoints(self.local, self.out / "checkpoints")
        tls = type(self.transport).encrypts and not self.insecure  # the channel authenticates
        summary = {**session.summary(), "rank": self.rank, "agents": [a.id for a in self.local],
                   "wire": dict(self.transport.wire),
                   "lost": {str(p): why for p, why in self.transport.lost.items()},
                   "resumed_from": first, "insecure": self.insecure,
                   "authenticated": self.auth is not None or tls,
                   "world_size": self.world, "placement": self.placement,
                   "cross_edge_share": self.cross_share, "backend": self.backend,
                   "wall_s": time.perf_counter() - self.start, "transport": self.kind,
                   "encrypted": tls, "joined": joined,
                   "readmitted": [{"rank": p, "round": r}
                                  for p, r in self.transport.readmitted]}
        write_summary(self.out, summary, self.parts, self.signer)
        if self.transport.lost:
            log.error("this process lost rank(s) %s: the run is partial (results.json will "
                      "say so)", sorted(self.transport.lost))
        if self.store is None:  # gRPC: no store, no rank 0; `parsefl merge` (or launch) merges
            self.transport.close()
            return not self.transport.lost
        self.notes.put(f"summary/{self.rank}", json.dumps(summary, sort_keys=True))
        if self.rank == 0:
            summaries, refused = gather(self.store, summary, self.timeout_s, self.out,
                                        self.parts, self.verify if self.auth else None)
            # A summary that arrived verified: signed when this run has keys.
            signed = set(summaries) if self.auth is not None else set()
            results = finish(self.cfg, self.exp, summaries, self.out, self.parts,
                             time.perf_counter() - self.start, self.placement, signed=signed,
                             refused=refused, signer=self.signer)
            if results.get("partial"):
                log.error("PARTIAL RUN: ranks %s missing, agents %s have no results (%s)",
                          results["distributed"]["missing_ranks"],
                          results["distributed"]["missing_agents"], self.out / "results.json")
                return False
        return not self.transport.lost

    def verify(self, rank: int, raw: bytes) -> dict | None:
        """Rank ``rank``'s summary from the store, if signed by it (runs with keys only: rank
        0 takes a summary from the store only then; the caller bounds and fits it)."""
        try:
            return loads_bounded(self.notes.read(f"summary/{rank}", rank, raw).encode())
        except (ValueError, WireError):
            return None

    def log_round(self, end: RoundEnd) -> None:
        now = time.perf_counter()
        log.info("round %d done: loss %.4f, %d bytes counted, %.3f s", end.round,
                 end.stats.loss, sum(end.stats.link_bytes.values()), now - self.clock)
        self.clock = now

    def join(self, session: RunSession) -> dict[str, Any]:
        """``--join`` (gRPC): take part in a run that is going on. The peers say the round
        they are in and take this process back a few rounds later; its agents start from its
        own newest checkpoint up to that round, or, with none, from their neighbours' copies
        (the warm start of agents that join, runtime/warm_start.py)."""
        start = self.transport.join()
        done = max((r for r in complete_rounds(self.out, self.marker) if r <= start),
                   default=0)
        if done:
            session.restore(done)
            self.transport.wire.update(session.restored["wire"])
        else:
            self.loop.arrive()
        log.warning("joined at round %d from %s", start,
                    f"its checkpoint of round {done}" if done else "its neighbours' copies")
        return {"round": start, "from_checkpoint": done}

    def agreed_round(self) -> int:
        """The latest round every rank checkpointed (agreed through the store, or over gRPC
        by asking every process)."""
        if self.store is None:
            return self.transport.agree_resume(complete_rounds(self.out, self.marker))
        self.notes.put(f"resume/{self.rank}", json.dumps(complete_rounds(self.out, self.marker)))
        keys = [f"resume/{k}" for k in range(self.world)]
        self.store.wait(keys, timedelta(seconds=max(self.timeout_s, STARTUP_S)))
        rounds = []
        for k in range(self.world):
            try:
                got = loads_bounded(self.notes.read(keys[k], k).encode())
                if not (isinstance(got, list) and len(got) <= 10**6
                        and all(type(r) is int and 0 <= r <= self.cfg.rounds for r in got)):
                    raise ValueError(f"not a list of rounds: {str(got)[:80]}")
            except (ValueError, WireError) as err:
                raise ConfigError("--resume", f"rank {k}'s checkpointed rounds in the store "
                                  f"cannot be used ({err})") from None
            rounds.append(set(got))
        return max(set.intersection(*rounds), default=0)

    def plans(self) -> dict[str, Any]:
        """This round's gossip plans (peers with paths, MH weights), for inspection and tests."""
        return {str(i): {c: {"paths": {str(j): list(p) for j, p in paths.items()},
                             "self_weight": plan.self_weight[c],
                             "weights": {str(j): w for j, w in plan.weights[c].items()}}
                         for c, paths in plan.paths.items()}
                for i, plan in self.loop.plans.items()}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m parsefl.experiments.distributed.worker",
                                description="One process of a distributed parsefl run.")
    p.add_argument("config", nargs="?", default=None,
                   help="YAML config (parsefl launch passes the run folder's config.yaml)")
    p.add_argument("-o", "--override", action="append", help="key=value, e.g. -o rounds=10")
    p.add_argument("--method", default=None, help="sharing strategy")
    p.add_argument("--out", required=True, help="run folder (the same for every process)")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
    p.add_argument("--timeout-s", type=float, default=None, help="deadline per exchange")
    p.add_argument("--checkpoint-every", type=int, default=None, help="rounds between saves")
    p.add_argument("--placement", default=None,
                   help="which process hosts each agent: auto, block, partition or "
                        "round_robin (default: runtime.placement)")
    p.add_argument("--keys", default=None,
                   help="keys folder (parsefl keys init): sign and verify every wire message")
    p.add_argument("--transport", default="gloo",
                   help="a registered transport (parsefl list transport): gloo "
                        "(torch.distributed, a rendezvous store) or grpc (mutual TLS, peer "
                        "to peer, addresses from the keys' peers file)")
    p.add_argument("--insecure", action="store_true",
                   help="grpc without TLS (plaintext, unauthenticated links)")
    p.add_argument("--addresses", default=None,
                   help="grpc: HOST:PORT per rank, comma-separated (default: the peers file's "
                        "address of each rank's first agent)")
    p.add_argument("--join", action="store_true",
                   help="grpc: join a run that is going on (late, or after a crash): from "
                        "this process's newest checkpoint in --out, else warm-started from "
                        "its neighbours")
    p.add_argument("--startup-s", type=float, default=None,
                   help="how long the first exchange (and --join, --resume) waits for the "
                        "other processes (default 120)")
    p.add_argument("--allow-partial", action="store_true",
                   help="exit 0 even when this process lost a peer (results say so anyway)")
    p.add_argument("--plugin", action="append", default=[],
                   help="a Python file or module that registers components (repeatable)")
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
        load_plugins(args.plugin)
        if not Worker(args, rank, world).run(args.resume) and not args.allow_partial:
            return 1
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
