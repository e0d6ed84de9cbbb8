"""A fork server for the workers of ``parsefl launch``: one process that imports torch and the
worker module once, then forks a worker whenever the launcher asks. A fresh interpreter spends
~2 s of CPU importing those, per worker; a fork spends milliseconds, and every launch from the
same process (a sweep, a test session) shares the server.

The server is a child of the launcher, speaking JSON lines: on its stdin, requests
``{"argv", "env", "log", "cwd"}``; on its stdout, ``{"started": pid}`` per request in order and
``{"ended": pid, "code": c}`` when a worker ends (``c`` as ``subprocess.Popen`` gives it:
negative for the signal that ended it). It reaps its workers itself; it ends once its stdin
closes (the launcher's process ended) and its last worker has ended.

It forks while holding no lock of its own and running nothing else: its one other thread is
the idle one that ``import torch`` starts. The workers do not re-run the launcher's
``__main__`` (multiprocessing's fork server would, in every worker of a script without a main
guard)."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

WORKER = "parsefl.experiments.distributed.worker"  # the module every process runs


class ForkServer:
    """The launcher's side: one server per process, started on first use."""

    _lock = threading.Lock()
    _running: ForkServer | None = None

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)
        self.codes: dict[int, int] = {}
        self.started: list[int] = []
        self.changed = threading.Condition()
        threading.Thread(target=self._read, name="parsefl-fork-server", daemon=True).start()

    @classmethod
    def get(cls) -> ForkServer:
        with cls._lock:
            if cls._running is None or cls._running.proc.poll() is not None:
                if cls._running is None:  # ended (and reaped) with this process
                    atexit.register(cls.stop, 10.0)
                cls._running = cls()
            return cls._running

    @classmethod
    def stop(cls, timeout: float | None = None) -> None:
        """End this process's server (it waits for its workers first); the next spawn starts
        a new one."""
        with cls._lock:
            server, cls._running = cls._running, None
        if server is not None:
            server.proc.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.proc.wait(timeout)

    def _read(self) -> None:
        for line in self.proc.stdout:
            note = json.loads(line)
            with self.changed:
                if "started" in note:
                    self.started.append(note["started"])
                else:
                    self.codes[note["ended"]] = note["code"]
                self.changed.notify_all()
        with self.changed:  # the server is gone: nothing more will be reported
            self.changed.notify_all()

    def spawn(self, argv: list[str], env: dict[str, str], log: Path,
              netns: str | None = None) -> Forked:
        """A worker with ``argv``, ``env`` and its output on ``log``; ``netns``: the name of a
        network namespace it runs in (``ip netns``: the test hosts of ``netlab``)."""
        with self.changed:
            self.proc.stdin.write((json.dumps({"argv": argv, "env": env, "log": str(log),
                                               "cwd": os.getcwd(), "netns": netns}
                                              ) + "\n").encode())
            self.proc.stdin.flush()
            while not self.started:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the fork server ended (exit code "
                                       f"{self.proc.returncode}) before starting a worker")
                self.changed.wait(1.0)
            return Forked(self.started.pop(0), self)


class Forked:
    """A worker forked by the server, seen through the part of ``subprocess.Popen`` that the
    launcher uses: ``pid``, ``poll``, ``wait``, ``returncode``, ``send_signal``, ``kill``."""

    def __init__(self, pid: int, server: ForkServer) -> None:
        self.pid, self.server = pid, server

    @property
    def returncode(self) -> int | None:
        return self.server.codes.get(self.pid)

    def poll(self) -> int | None:
        if self.pid not in self.server.codes and self.server.proc.poll() is not None:
            self.server.codes[self.pid] = -signal.SIGKILL  # ended with the server
        return self.server.codes.get(self.pid)

    def wait(self, timeout: float | None = None) -> int:
        with self.server.changed:
            if not self.server.changed.wait_for(lambda: self.poll() is not None, timeout):
                raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout or 0)
        return self.server.codes[self.pid]

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def _serve() -> None:
    """The server's loop: fork a worker per request, report every worker's end."""
    import importlib

    importlib.import_module(WORKER)  # torch, torch.distributed, parsefl: once, for all
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the workers and launcher
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    selector = selectors.DefaultSelector()
    selector.register(stdin, selectors.EVENT_READ)
    children: set[int] = set()
    pending, open_ = b"", True

    def tell(note: dict[str, Any]) -> None:
        stdout.write((json.dumps(note) + "\n").encode())
        stdout.flush()

    while open_ or children:
        if open_ and selector.select(timeout=0.02):
            chunk = os.read(stdin.fileno(), 1 << 16)
            if not chunk:
                open_ = False
                selector.unregister(stdin)
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                request = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    _child(request, stdin.fileno(), stdout.fileno())
                children.add(pid)
                tell({"started": pid})
        elif not open_:
            time.sleep(0.02)
        for pid in list(children):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                children.discard(pid)
                tell({"ended": pid, "code": os.waitstatus_to_exitcode(status)})


def _child(request: dict[str, Any], *server_fds: int) -> None:
    """A worker, in the forked child: what ``python -m WORKER`` would have had (its working
    directory and environment, ``sys.argv``, stdout and stderr on its log, Ctrl-C, the
    threads OMP_NUM_THREADS asks for: the library read that variable when the server
    imported torch), then the worker's main. Never returns. (Unlike a fresh process's,
    ``/proc/PID/environ`` and ``cmdline`` still show the server's.)"""
    code = 1
    try:
        for fd in server_fds:
            os.close(fd)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if request.get("netns"):
            _enter_netns(request["netns"])
        os.chdir(request["cwd"])  # the launcher's, now: relative paths mean the same
        os.environ.clear()
        os.environ.update(request["env"])
        fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        import torch

        threads = os.environ.get("OMP_NUM_THREADS", "")
        if threads.isdigit() and int(threads) > 0:
            torch.set_num_threads(int(threads))
        from parsefl.experiments.distributed import worker

        sys.argv = [worker.__file__, *request["argv"]]  # as `python -m` sets it
        try:
            code = worker.worker_main(request["argv"])
        except KeyboardInterrupt:
            code = 130
    except BaseException:  # noqa: BLE001  (reported on the worker's own log, as python would)
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _enter_netns(name: str) -> None:
    """Move this (single-threaded, just forked) process into the network namespace ``name``
    made by ``ip netns add`` (as ``ip netns exec`` does; Python 3.11 has no ``os.setns``)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
            err = ctypes.get_errno()
            raise OSError(err, f"setns into {name}: {os.strerror(err)}")
    finally:
        os.close(fd)


if __name__ == "__main__":
    _serve()
