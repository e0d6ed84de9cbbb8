"""The parent side of ``parsefl launch``: write the run's config file, start N worker processes
on this machine (with torchrun's environment; the worker entry is ``python -m
parsefl.experiments.distributed.worker``), host the TCPStore, wait, and collect the merged
results."""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from parsefl.config import RunConfig, load_config, to_yaml
from parsefl.data import dataset_slug
from parsefl.errors import ConfigError, ParseflError, PartialRun
from parsefl.experiments.distributed.merge import RUN_TOKEN, STARTUP_S, merge_run
from parsefl.experiments.distributed.placing import placement as resolve_placement
from parsefl.experiments.distributed.placing import refuse_unstackable
from parsefl.experiments.distributed.processes import (
    StoreQuota,
    loopback_store,
    spawn,
    wait_all,
)
from parsefl.experiments.distributed.worker import progress_path, runtime_setting
from parsefl.experiments.run.build import resolve_device
from parsefl.experiments.run.results import read_results
from parsefl.experiments.run.roster import agent_count
from parsefl.experiments.run.rundir import atomic_write, default_run_dir
from parsefl.plugins import load_plugins
from parsefl.runtime.transport_base import transport_class
from parsefl.security import init_keys

log = logging.getLogger(__name__)


def launch(
    config: str | Path | None = None,
    overrides: Sequence[str] = (),
    nproc: int = 2,
    out_dir: str | Path | None = None,
    resume: bool = False,
    *,
    method: str | None = None,
    timeout_s: float | None = None,
    checkpoint_every: int | None = None,
    placement: str | None = None,
    wall_timeout_s: float | None = None,
    plugins: Sequence[str | Path] = (),
    keys: str | Path | None = None,
    transport: str = "gloo",
    insecure: bool = False,
    allow_partial: bool = False,
    on_start: Callable[[Path, RunConfig], None] | None = None,
    on_round: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Run ``config`` (+ ``overrides``) as ``nproc`` processes on this machine and return the
    merged results dict (also in ``out_dir/results.json``). The resolved config travels to the
    workers as ``out_dir/config.yaml``; ``plugins`` are imported here and by every worker.
    ``keys`` (a ``parsefl keys init`` folder) makes every process sign and verify every wire
    message; with ``runtime.auth: true`` and no ``keys``, a throwaway CA is made in
    ``out_dir/keys``. ``on_start(out, cfg)`` is called once the run folder is chosen, before
    any worker starts; ``on_round(done)`` whenever rank 0 reports rounds done.

    Workers are started directly, with torchrun's environment, rather than by torchrun: its
    agent stops every worker as soon as one fails, and a lost process must not end the run.
    The TCPStore lives in this process, so no worker's death takes it down.

    Raises:
        ConfigError: bad config, ``nproc`` outside 1..agents, or ``resume`` with no state.
        WorkersRefused: every worker refused the config before a checkpoint (the run folder
            is removed when this launch made it).
        PartialRun: a process was lost or its summary refused (results.json says so), unless
            ``allow_partial``.
        TimeoutError: the workers ran past ``wall_timeout_s`` (they are killed).
        WorkersFailed: no fresh results.json and no process's summary (see ``out_dir/logs``);
            when only rank 0 failed, the others' summaries are merged instead.
    """
    load_plugins(plugins)
    kind = transport_class(transport)  # an unknown name: one line listing the registered ones
    cfg = load_config(config, overrides, method)
    placement = resolve_placement(cfg, placement, nproc)[0]  # bad name or nproc: exit 2 here
    refuse_unstackable(cfg)  # as parsefl run refuses it: exit 2 before any worker starts
    resolve_device(cfg.device)  # no CUDA here: one line now, not one from every worker
    out = Path(out_dir) if out_dir else \
        default_run_dir(cfg.method, dataset_slug(cfg.data.name), cfg.seed)
    if resume and not (out / "state").is_dir():
        raise ConfigError("--resume", f"no checkpoints under {out / 'state'}")
    if on_start is not None:
        on_start(out, cfg)
    created = not out.exists()
    (out / "logs").mkdir(parents=True, exist_ok=True)
    progress_path(out).unlink(missing_ok=True)  # a previous launch's
    atomic_write(out / "config.yaml", to_yaml(cfg))
    timeout = float(runtime_setting(cfg, "timeout_s", timeout_s))
    if insecure and not kind.encrypts:
        raise ConfigError("--insecure", f"applies to a TLS transport only, not {transport}")
    if keys is None and (cfg.runtime.auth or (kind.encrypts and not insecure)):
        keys = out / "keys"  # a throwaway CA for this run, reused on resume
        if not (keys / "peers.json").is_file():  # ours: an interrupted creation is redone
            init_keys(keys, agent_count(cfg), force=True)
    argv = [*_worker_argv(out, resume, placement, timeout_s, checkpoint_every, plugins),
            "--transport", transport]
    try:
        with _watching(out, on_round):
            if not kind.needs_store:  # peer to peer: each worker is told every rank's address
                if insecure:
                    log.warning("INSECURE: gRPC links will be plaintext and unauthenticated")
                return _whole(_launch_peers(out, nproc, keys, insecure, wall_timeout_s, argv),
                              out, allow_partial)
            store = loopback_store(max(STARTUP_S, timeout))
            argv += ["--keys", str(Path(keys).resolve())] if keys is not None else []
            started = time.time()
            token = {RUN_TOKEN: secrets.token_hex(16)}  # the store namespace of this launch
            procs = [spawn(rank, nproc, store.port, argv, out, token) for rank in range(nproc)]
            codes = wait_all(procs, wall_timeout_s, StoreQuota(store, nproc))
            results = _collect(out, codes, started, keys)
    except WorkersRefused:
        if created and not (out / "state").exists():  # nothing but this launch's logs
            shutil.rmtree(out, ignore_errors=True)
        raise
    except KeyboardInterrupt:  # the workers got it too; results.json says so, no numbers
        from parsefl.experiments.run.checkpoint import fingerprint
        from parsefl.experiments.run.divergence import interrupted_results
        from parsefl.experiments.run.interrupt import launch_interrupted
        from parsefl.experiments.run.results import publish_results

        kept = [int(p.name.split("_")[1]) for p in (out / "state").glob("round_*")]
        publish_results(out, interrupted_results(cfg, max(kept, default=0)), fingerprint(cfg))
        raise launch_interrupted(out, nproc) from None
    return _whole(results, out, allow_partial)


@contextmanager
def _watching(out: Path, on_round: Callable[[int], None] | None, poll_s: float = 0.5
              ) -> Iterator[None]:
    """While the block runs, ``on_round(done)`` each time rank 0's progress file changes."""
    if on_round is None:
        yield
        return
    stop = threading.Event()

    def poll() -> None:
        seen = None
        while True:
            stopped = stop.wait(poll_s)  # and one last look once the workers are done
            try:
                with progress_path(out).open("rb") as fh:  # a few bytes: bounded
                    done = json.loads(fh.read(4096))["done"]
            except (OSError, ValueError, KeyError, TypeError):
                done = None  # not written yet
            if type(done) is int and done != seen:
                seen = done
                on_round(done)
            if stopped:
                return

    thread = threading.Thread(target=poll, name="launch-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _whole(results: dict[str, Any], out: Path, allow_partial: bool) -> dict[str, Any]:
    """``results``, unless the run lost a process and that was not accepted."""
    if results.get("partial") and not allow_partial:
        raise PartialRun(results, str(out / "results.json"))
    return results


def _launch_peers(out: Path, nproc: int, keys: str | Path | None, insecure: bool,
                  wall_timeout_s: float | None, argv: list[str]) -> dict[str, Any]:
    """Workers over a transport with no store (gRPC) on 127.0.0.1 (a free port each), then
    merge their own summaries (:func:`merge_run`)."""
    ports = []
    for _ in range(nproc):
        with socket.socket() as s:  # a free port now; the worker binds it a moment later
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    argv = [*argv, "--addresses",
            ",".join(f"127.0.0.1:{p}" for p in ports),
            *(["--keys", str(Path(keys).resolve())] if keys is not None else []),
            *(["--insecure"] if insecure else [])]
    started = time.time()
    codes = wait_all([spawn(rank, nproc, 0, argv, out) for rank in range(nproc)],
                      wall_timeout_s)
    for rank, code in enumerate(codes):
        if code:
            log.warning("rank %d exited with code %d (see %s)", rank, code,
                        out / "logs" / f"rank_{rank}.log")
    for f in (out / "logs").glob("summary_rank_*.json"):
        if f.stat().st_mtime < started:  # a previous run's
            f.unlink()
    return merge_run(out, keys)


def _worker_argv(out: Path, resume: bool, placement: str, timeout_s: float | None,
                 checkpoint_every: int | None, plugins: Sequence[str | Path]) -> list[str]:
    """The worker's command line (see ``worker.parser``): the config is the run's file."""
    return [str(out / "config.yaml"), "--out", str(out),
            *(["--resume"] if resume else []), "--placement", placement,
            *(arg for p in plugins for arg in ("--plugin", str(Path(p).resolve())
                                               if str(p).endswith(".py") else str(p))),
            *(["--timeout-s", str(timeout_s)] if timeout_s is not None else []),
            *(["--checkpoint-every", str(checkpoint_every)] if checkpoint_every else [])]


def _collect(out: Path, codes: list[int], started: float, keys: str | Path | None
             ) -> dict[str, Any]:
    """The results.json written by this launch's rank 0."""
    path = out / "results.json"
    published = path.is_file() and path.stat().st_mtime >= started
    if not published and all(code == 2 for code in codes):  # each refused it in one line
        raise WorkersRefused(f"{_first_error(out, len(codes))} (every process refused it)")
    for rank, code in enumerate(codes):
        if code:
            log.warning("rank %d exited with code %d (see %s)", rank, code,
                        out / "logs" / f"rank_{rank}.log")
    if published:
        return read_results(out, "results.json")
    # Rank 0 died: merge the survivors' own summaries here (those written by this launch).
    fresh = [f for f in (out / "logs").glob("summary_rank_*.json") if f.stat().st_mtime >= started]
    if not fresh:
        raise WorkersFailed(f"no results: every process failed (exit codes {codes}); "
                            f"{_first_error(out, len(codes))}; see {out / 'logs'}")
    for f in (out / "logs").glob("summary_rank_*.json"):
        if f not in fresh:  # a previous run's: not this one's
            f.unlink()
    log.warning("rank 0 exited with %d: merging the other ranks' summaries", codes[0])
    return merge_run(out, keys)


class WorkersFailed(ParseflError):
    """No process of a launch left a result: one line with the first error they logged."""

    exit_code = 1


class WorkersRefused(ParseflError):
    """Every process of a launch exited with a one-line refusal (bad config, data, device)
    before any result: that line, exit 2."""

    exit_code = 2


def _first_error(out: Path, world: int) -> str:
    """The first error a worker logged (its rank log), else the tail of its raw output."""
    for rank in range(world):
        for name in (f"rank_{rank}.log", f"rank_{rank}.out"):
            path = out / "logs" / name
            lines = path.read_text(errors="replace").splitlines() if path.is_file() else []
            errors = [ln for ln in lines if " ERROR " in ln or ln.startswith(("error", "Error"))]
            if errors:
                return f"rank {rank}: {errors[0].split(': ', 1)[-1][:300]}"
    return "no worker logged an error"
