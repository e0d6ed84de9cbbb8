"""Test hosts on one Linux machine: each in its own network namespace with its own address on a
bridge, its links rate-limited with ``tc`` (``tbf``), able to go down and come back, each
running gRPC workers with their own keys — what ``benchmarks/network.py`` and the network
tests run a multi-host parsefl run on. Needs root and ``ip`` (iproute2); :func:`available`
says whether this machine can, and why not.

A worker runs on a test host exactly as on a real one (docs/distributed.md, "Several machines,
step by step"): ``RANK=K WORLD_SIZE=N python -m parsefl.experiments.distributed.worker CONFIG
--out RUN --transport grpc --keys KEYS``, with the peers file naming each rank's address.
Everything the harness creates (namespaces, links, processes) is removed when it closes, on
an exception or Ctrl-C too, and namespaces left by a harness whose process died are removed by
the next one (their names carry the creating pid).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

PREFIX = "pfl"  # every namespace and link the harness makes starts with this
PORT = 50051
SUBNET = "10.77.0"  # host i is SUBNET.(i + 1)/24; each harness has its own bridge


def _ip(*args: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    cmd = ["ip", "netns", "exec", ns, *args] if ns is not None else list(args)
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=30)


_AVAILABLE: tuple[bool, str] | None = None


def available() -> tuple[bool, str]:
    """(whether test hosts can be made here, why not): root, iproute2, network namespaces,
    veth pairs, a bridge and the tbf qdisc."""
    global _AVAILABLE
    if _AVAILABLE is None:
        _AVAILABLE = _probe()
    return _AVAILABLE


def _probe() -> tuple[bool, str]:
    if not sys.platform.startswith("linux"):
        return False, "network namespaces are Linux only"
    if os.geteuid() != 0:
        return False, "test hosts need root (network namespaces, tc)"
    if shutil.which("ip") is None or shutil.which("tc") is None:
        return False, "iproute2 (ip, tc) is not installed"
    try:
        with TestNet(1, rate_mbit=100.0):
            pass
    except (OSError, subprocess.SubprocessError, NetlabError) as err:
        return False, f"cannot make a test host here: {str(err)[:200]}"
    return True, ""


class NetlabError(RuntimeError):
    """A command of the harness failed (the message names it and what ``ip`` or ``tc`` said)."""


@dataclass
class Host:
    """One test host: a namespace, its address, its link (``veth`` on the host side)."""

    index: int
    ns: str
    link: str  # the host-side end of its veth pair (on the bridge)
    address: str  # its IPv4 address

    def endpoint(self, port: int = PORT) -> str:
        return f"{self.address}:{port}"


@dataclass
class TestNet:
    """``n`` test hosts on one bridge. ``rate_mbit``: every link's rate both ways (None: not
    shaped); :meth:`shape` sets one host's rates (upload and download apart), :meth:`set_link`
    takes its link down or up. Use as a context manager."""

    __test__ = False  # not a pytest class

    n: int
    rate_mbit: float | None = None
    tag: str = field(default_factory=lambda: f"{os.getpid() % 100000}{os.urandom(1).hex()}")
    hosts: list[Host] = field(default_factory=list)
    procs: dict[int, Any] = field(default_factory=dict)  # pid -> Popen or forked worker

    def __post_init__(self) -> None:
        if not 1 <= self.n <= 250:
            raise ValueError(f"1 to 250 test hosts, got {self.n}")
        self.bridge = f"{PREFIX}{self.tag}b"
        self._closed, self._term = True, None

    def __enter__(self) -> TestNet:
        sweep_stale()
        self._closed = False
        atexit.register(self.close)
        self._term = None
        if threading.current_thread() is threading.main_thread():  # `kill PID`: clean up too
            self._term = signal.signal(signal.SIGTERM, _terminated)
        try:
            self._run("ip", "link", "add", self.bridge, "type", "bridge")
            self._run("ip", "link", "set", self.bridge, "up")
            for i in range(self.n):
                self.hosts.append(self._make_host(i))
                if self.rate_mbit is not None:
                    self.shape(i, self.rate_mbit, self.rate_mbit)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _make_host(self, i: int) -> Host:
        ns, link = f"{PREFIX}{self.tag}n{i}", f"{PREFIX}{self.tag}h{i}"
        self._run("ip", "netns", "add", ns)
        self._run("ip", "link", "add", link, "type", "veth", "peer", "name", f"{link}p")
        self._run("ip", "link", "set", f"{link}p", "netns", ns)
        self._run("ip", "link", "set", f"{link}p", "name", "eth0", ns=ns)
        address = f"{SUBNET}.{i + 1}"
        self._run("ip", "addr", "add", f"{address}/24", "dev", "eth0", ns=ns)
        self._run("ip", "link", "set", "eth0", "up", ns=ns)
        self._run("ip", "link", "set", "lo", "up", ns=ns)
        self._run("ip", "link", "set", link, "master", self.bridge)
        self._run("ip", "link", "set", link, "up")
        return Host(i, ns, link, address)

    def shape(self, i: int, up_mbit: float | None, down_mbit: float | None = None) -> None:
        """Host ``i``'s upload (what it sends) and download rates in Mbit/s (None: unshaped),
        each a token bucket (``tbf``) on the sending end of its link."""
        host = self.hosts[i]
        for rate, dev, ns in ((up_mbit, "eth0", host.ns), (down_mbit, host.link, None)):
            self._run("tc", "qdisc", "del", "dev", dev, "root", ns=ns, check=False)
            if rate is not None:
                # a burst of at least 10 ms of traffic (and one full-size packet), 1 s of queue
                burst = max(15000, int(rate * 1e6 / 8 / 100))
                self._run("tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate",
                          f"{rate}mbit", "burst", str(burst), "latency", "1000ms", ns=ns)

    def set_link(self, i: int, up: bool) -> None:
        """Take host ``i``'s link down (nothing reaches it or leaves it) or bring it back."""
        self._run("ip", "link", "set", self.hosts[i].link, "up" if up else "down")

    def spawn(self, i: int, argv: Sequence[str], env: Mapping[str, str] | None = None,
              log: Path | None = None, cwd: Path | None = None) -> subprocess.Popen:
        """Run ``argv`` on host ``i`` (its own session, so that :meth:`kill` reaches its
        children); stdout and stderr to ``log`` (None: discarded)."""
        out: IO | int = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115
        try:
            proc = subprocess.Popen(["ip", "netns", "exec", self.hosts[i].ns, *argv],
                                    env={**os.environ, **(env or {})}, stdout=out,
                                    stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True)
        finally:
            if log is not None:
                out.close()
        self.procs[proc.pid] = proc
        return proc

    def kill(self, proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        """Signal ``proc``'s whole session (a forked worker: itself), by its pid, and reap
        it."""
        with contextlib.suppress(ProcessLookupError):
            if isinstance(proc, subprocess.Popen):
                os.killpg(proc.pid, sig)
            else:
                os.kill(proc.pid, sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            self.procs.pop(proc.pid, None)

    def close(self) -> None:
        """Kill every process started here, remove the namespaces, links and bridge."""
        if self._closed:
            return
        self._closed = True
        for proc in list(self.procs.values()):
            if proc.poll() is None:
                self.kill(proc)
        self.procs.clear()
        for host in self.hosts:
            self._run("ip", "netns", "del", host.ns, check=False)
            self._run("ip", "link", "del", host.link, check=False)
        for i in range(self.n):  # a host whose setup failed half way
            self._run("ip", "netns", "del", f"{PREFIX}{self.tag}n{i}", check=False)
        self._run("ip", "link", "del", self.bridge, check=False)
        self.hosts = []
        atexit.unregister(self.close)
        if self._term is not None:
            signal.signal(signal.SIGTERM, self._term)

    def _run(self, *cmd: str, ns: str | None = None, check: bool = True) -> None:
        got = _ip(*cmd, ns=ns, check=False)
        if check and got.returncode != 0:
            where = f" (in {ns})" if ns else ""
            raise NetlabError(f"`{' '.join(cmd)}`{where} failed: {got.stderr.strip()[:300]}")


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through close() (finally, __exit__)


def sweep_stale() -> list[str]:
    """Remove namespaces and links left by a harness whose process is gone; their names."""
    gone = []
    listing = _ip("ip", "netns", "list", check=False).stdout
    for ns in re.findall(rf"^({PREFIX}(\d+)[0-9a-f]{{2}}n\d+)", listing, re.M):
        if not _alive(int(ns[1])):
            _ip("ip", "netns", "del", ns[0], check=False)
            gone.append(ns[0])
    links = _ip("ip", "-o", "link", "show", check=False).stdout
    for name, pid in re.findall(rf"\d+: ({PREFIX}(\d+)[0-9a-f]{{2}}[bh]\d*)[@:]", links):
        if not _alive(int(pid)):
            _ip("ip", "link", "del", name, check=False)
            gone.append(name)
    return gone


def _alive(pid: int) -> bool:
    """Whether a process whose pid ends in these digits (pid mod 100,000) may still exist."""
    return any(int(p) % 100000 == pid for p in os.listdir("/proc") if p.isdigit())


def worker_argv(config: Path, out: Path, keys: Path, *extra: str) -> list[str]:
    """A gRPC worker's command line, as on a real host."""
    return [sys.executable, "-m", "parsefl.experiments.distributed.worker", str(config),
            "--out", str(out), "--transport", "grpc", "--keys", str(keys), *extra]


def worker_env(rank: int, world: int, threads: int = 1) -> dict[str, str]:
    return {"RANK": str(rank), "WORLD_SIZE": str(world), "OMP_NUM_THREADS": str(threads)}


def wait_for(predicate, timeout_s: float, every_s: float = 0.1) -> bool:
    """Poll ``predicate`` until true or ``timeout_s`` passes; whether it became true."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every_s)
    return bool(predicate())


@dataclass
class NetRun:
    """One gRPC run across the hosts of ``net``: rank ``r`` on host ``host_of(r)`` (default:
    rank mod hosts), listening on ``PORT + r``. :meth:`prepare` writes the resolved config and
    a keys folder whose peers file names each rank's address; :meth:`start` starts a rank's
    worker; :meth:`merge` merges the summaries as ``parsefl merge`` does."""

    net: TestNet
    out: Path
    world: int
    host_of: Mapping[int, int] | None = None

    def prepare(self, config: str | Path | None, overrides: Sequence[str]) -> Path:
        from parsefl.config import load_config, to_yaml
        from parsefl.experiments.distributed.placing import placement
        from parsefl.experiments.run.roster import agent_count
        from parsefl.security import init_keys

        cfg = load_config(config, list(overrides))
        self.out.mkdir(parents=True, exist_ok=True)
        self.config = self.out / "config.yaml"
        self.config.write_text(to_yaml(cfg))
        _, owner, _ = placement(cfg, None, self.world)
        self.keys = self.out / "keys"
        init_keys(self.keys, agent_count(cfg), {
            owner.index(r): self.host(r).endpoint(PORT + r) for r in range(self.world)},
            force=True)
        # What each machine gets (docs/distributed.md, step 2): the CA certificate, every
        # certificate, the peers file and only its own agents' private keys; no CA key.
        for r in range(self.world):
            mine = self._keys(r)
            shutil.rmtree(mine, ignore_errors=True)
            (mine / "private").mkdir(parents=True, mode=0o700)
            shutil.copytree(self.keys / "certs", mine / "certs")
            for name in ("ca.pem", "peers.json"):
                shutil.copy2(self.keys / name, mine / name)
            for agent in (i for i, o in enumerate(owner) if o == r):
                shutil.copy2(self.keys / "private" / f"agent_{agent:04d}.key", mine / "private")
        self.ranks: dict[int, Any] = {}
        return self.config

    def _keys(self, rank: int) -> Path:
        return self.out / "hostkeys" / f"rank_{rank}"

    def host(self, rank: int) -> Host:
        i = self.host_of[rank] if self.host_of is not None else rank % self.net.n
        return self.net.hosts[i]

    def start(self, rank: int, *extra: str, threads: int = 1, fork: bool = True) -> Any:
        """Rank ``rank``'s worker on its host (``extra``: more worker flags). ``fork``:
        forked by the launcher's fork server into the host's namespace (milliseconds; the
        worker is the same), else a fresh ``ip netns exec python -m ...`` (seconds)."""
        (self.out / "logs").mkdir(parents=True, exist_ok=True)
        argv = worker_argv(self.config, self.out, self._keys(rank), *extra)
        env, log = worker_env(rank, self.world, threads), self.out / "logs" / f"rank_{rank}.out"
        if fork:
            from parsefl.experiments.distributed.forks import ForkServer

            proc = ForkServer.get().spawn(argv[3:], {**os.environ, **env}, log,
                                          self.host(rank).ns)
            self.net.procs[proc.pid] = proc
        else:
            proc = self.net.spawn(self.host(rank).index, argv, env, log)
        self.ranks[rank] = proc
        return proc

    def log(self, rank: int) -> str:
        path = self.out / "logs" / f"rank_{rank}.log"
        return path.read_text() if path.is_file() else ""

    def done(self, rank: int) -> int:
        """Rounds rank ``rank`` has logged as done (the highest round number + 1)."""
        rounds = [int(m) for m in re.findall(r"round (\d+) done", self.log(rank))]
        return max(rounds) + 1 if rounds else 0

    def wait(self, timeout_s: float) -> dict[int, int | None]:
        """Wait for every started worker (up to ``timeout_s`` in all); their exit codes (None:
        still running when the time was up, then killed)."""
        deadline, codes = time.monotonic() + timeout_s, {}
        for rank, proc in sorted(self.ranks.items()):
            try:
                codes[rank] = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.net.kill(proc)
                codes[rank] = None
        return codes

    def merge(self) -> dict:
        from parsefl.experiments.distributed.merge import merge_run

        return merge_run(self.out, self.keys)
