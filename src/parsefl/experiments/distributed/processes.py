"""The processes of ``parsefl launch`` on one machine: the loopback store they meet at, starting
each worker with torchrun's environment, and waiting for them — with a wall-clock bound, a
quota on the store, and Ctrl-C passed on to every worker."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import torch.distributed as dist

from parsefl.errors import ConfigError
from parsefl.experiments.distributed.forks import WORKER, Forked, ForkServer


def loopback_store(timeout_s: float) -> dist.TCPStore:
    """A TCPStore that listens on 127.0.0.1 only. Given a host, torch's TCPStore (2.13) still
    listens on every interface (``*:port``); handed an already bound socket
    (``master_listen_fd``) it listens on that one, and owns (closes) it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    return dist.TCPStore("127.0.0.1", port, is_master=True, wait_for_workers=False,
                         timeout=timedelta(seconds=timeout_s), master_listen_fd=sock.detach())


FORK = hasattr(os, "fork")  # workers forked by the fork server (else fresh interpreters)


def spawn(rank: int, world: int, port: int, argv: list[str], out: Path,
          extra: dict[str, str] | None = None) -> Process:
    """Start rank ``rank`` of ``world`` with torchrun's environment; its stdout and stderr
    (tracebacks, C++ warnings) go to ``OUT/logs/rank_<rank>.out``. Where the platform can
    fork (Linux, macOS), the worker is forked by this process's :class:`ForkServer`, which
    imported torch and the worker module once for every launch from here: a fresh
    interpreter spends ~2 s of CPU on those imports, per worker. Elsewhere: ``python -m``."""
    env = {**os.environ, **(extra or {}), "RANK": str(rank), "LOCAL_RANK": str(rank),
           "WORLD_SIZE": str(world), "LOCAL_WORLD_SIZE": str(world), "GROUP_RANK": "0",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
           "TORCHELASTIC_USE_AGENT_STORE": "True"}
    # torchrun's default too: N processes with all cores each would oversubscribe the CPU.
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // world)))
    loopback = [n for _, n in socket.if_nameindex() if n in ("lo", "lo0")]
    if loopback:  # gloo's own listening sockets: on the loopback interface only
        env.setdefault("GLOO_SOCKET_IFNAME", loopback[0])
    log = out / "logs" / f"rank_{rank}.out"
    if FORK:
        return ForkServer.get().spawn(list(argv), env, log)
    with open(log, "ab") as fh:
        return subprocess.Popen([sys.executable, "-m", WORKER, *argv], env=env, stdout=fh,
                                stderr=subprocess.STDOUT)


Process = subprocess.Popen | Forked


class StoreQuota:
    """A bound on what the launcher's store holds. The TCPStore (torch's, in this process)
    has no quota and no access control: any local process can fill it. A run's own keys
    stay few (announcements are deleted once read), so more keys than ``keys``, or this
    process growing by more than ``grow_bytes``, means someone else is writing there: the
    run is stopped with one line rather than the machine running out of memory."""

    def __init__(self, store: dist.TCPStore, world: int, grow_bytes: int = 512 << 20) -> None:
        self.store, self.keys, self.grow = store, 256 + 16 * world * world, grow_bytes
        self.base = _rss()

    def check(self) -> str | None:
        """Why the quota is exceeded, or None."""
        n, grown = self.store.num_keys(), _rss() - self.base
        if n > self.keys:
            return f"it holds {n} keys (quota {self.keys})"
        if grown > self.grow:
            return f"this process grew by {grown >> 20} MiB (quota {self.grow >> 20} MiB)"
        return None


def _rss() -> int:
    """This process's resident memory in bytes (Linux; 0 elsewhere: no byte quota)."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def wait_all(procs: list[Process], wall_timeout_s: float | None,
              quota: StoreQuota | None = None, poll_s: float = 0.25) -> list[int]:
    deadline = None if wall_timeout_s is None else time.monotonic() + wall_timeout_s
    try:
        while running := [proc for proc in procs if proc.poll() is None]:
            if deadline is not None and time.monotonic() > deadline:
                kill_all(procs)
                raise TimeoutError(f"workers ran past {wall_timeout_s} s and were killed")
            why = quota.check() if quota is not None else None
            if why:
                kill_all(procs)
                raise ConfigError("rendezvous store", f"{why}: a process other than the "
                                  f"workers is writing to 127.0.0.1:{quota.store.port}; the "
                                  "run was stopped (its checkpoints are kept; --resume "
                                  "continues, or use --transport grpc on shared machines)")
            # back as soon as it ends (a sleep would add up to poll_s to every run)
            with contextlib.suppress(subprocess.TimeoutExpired):
                running[0].wait(poll_s)
    except KeyboardInterrupt:
        forward_interrupt(procs)
        raise
    return [proc.returncode for proc in procs]


def kill_all(procs: list[Process]) -> None:
    for proc in procs:
        proc.kill()
        proc.wait()


def forward_interrupt(procs: list[Process], grace_s: float = 30.0) -> None:
    """SIGINT may reach only this process (kill -INT): pass it on to every worker and wait for
    them, so that none is left failing on the store that dies with us; a second Ctrl-C, or
    the grace period, kills them."""
    import signal

    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + grace_s
    try:
        for proc in procs:
            proc.wait(max(0.0, deadline - time.monotonic()))
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        for proc in procs:
            proc.kill()
            proc.wait()
