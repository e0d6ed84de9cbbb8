"""``runtime.threads: auto``: use the cores no other process is using, re-checked as the run goes.

Why not simply one thread per core: torch's worker threads spin while they wait for a core, so
on a machine that another CPU-bound process shares, one thread per core ran the quickstart 4 to
17 times slower than one thread (benchmarks/RESULTS.md, "Thread policy"). Why not always one
thread: on a quiet machine the second core then stays idle.

The policy measures, between two checks, how many cores were busy (``/proc/stat``) and how many
of them this process kept busy itself (its CPU seconds over the wall seconds). The rest is what
others use; the threads are the cores left, at least one. Time of niced processes does not
count against a process that is not niced itself: the scheduler gives its threads the core
first (a nice-10 sweep beside a nice-0 run gets about a tenth of a contested core). It
re-checks every ``every_s`` seconds of wall time after a round: it drops threads at the first
check that asks for fewer (a busy neighbour costs most when we spin against it) and adds them
only when two checks in a row agree. Without ``/proc/stat`` (not Linux) it keeps one thread.
Threads change how fast a run goes, never its numbers.

Not the default: a second thread pays off only for large stacked groups (quiet: 0.53x the
1-thread round at N = 1,024; beside two niced sweeps 0.70x at 1,024, 0.84x at 128, +20 % at
N = 8), and the policy counts free cores, not the size of the work (benchmarks/RESULTS.md,
issue 27).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

log = logging.getLogger(__name__)

STAT = "/proc/stat"
HEADROOM = 0.25  # a core counts as free once others use at most 0.75 of it


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def read_stat(path: str = STAT, count_nice: bool | None = None) -> tuple[int, int] | None:
    """(busy, total) jiffies over every core since boot, or None where there is no /proc/stat.
    ``count_nice`` (default: whether this process is niced itself): whether niced processes'
    time counts as busy."""
    try:
        with open(path) as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu" or len(fields) < 5:
        return None
    # user nice system idle iowait irq softirq steal (guest time is inside user already)
    values = [int(v) for v in fields[1:9]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    if count_nice is None:
        count_nice = niceness() > 0
    yielding = 0 if count_nice else values[1]  # niced time yields to an un-niced process
    return sum(values) - idle - yielding, sum(values)


def niceness() -> int:
    try:
        return os.getpriority(os.PRIO_PROCESS, 0)
    except (AttributeError, OSError):
        return 0


def free_cores(cores: int, busy_share: float, own_cores: float) -> float:
    """Cores nobody else uses: all of them minus what was busy that was not ours."""
    others = max(0.0, busy_share * cores - own_cores)
    return max(0.0, cores - others)


def threads_for(free: float, cores: int) -> int:
    return max(1, min(cores, int(free + HEADROOM)))


@dataclass
class ThreadPolicy:
    """A round hook (see experiments/run/driver.py) that sets torch's thread count from the cores
    other processes leave free. ``clock``, ``cpu`` and ``stat`` are injectable for tests."""

    every_s: float = 5.0
    cores: int = field(default_factory=usable_cores)
    clock: Callable[[], float] = time.perf_counter
    cpu: Callable[[], float] = time.process_time
    stat: Callable[[], tuple[int, int] | None] = read_stat
    set_threads: Callable[[int], None] = torch.set_num_threads
    threads: int = 1
    changes: list[tuple[int, int]] = field(default_factory=list)  # (rounds done, threads)
    _last: tuple[float, float, tuple[int, int]] | None = None
    _want_more: int = 0

    def start(self, sample_s: float = 0.2) -> int:
        """The first choice, from a short sample before the run (this process is idle then)."""
        self.set_threads(1)
        self._mark()
        if self._last is not None:
            time.sleep(sample_s)
            self.threads = self._choose(first=True)
        self.set_threads(self.threads)
        self.changes.append((0, self.threads))
        return self.threads

    def __call__(self, end: Any) -> None:
        if self._last is None or self.clock() - self._last[0] < self.every_s:
            return
        before = self.threads
        self.threads = self._choose(first=False)
        if self.threads != before:
            self.set_threads(self.threads)
            self.changes.append((end.done, self.threads))
            log.info("runtime.threads auto: %d -> %d torch threads after round %d",
                     before, self.threads, end.done)

    def _mark(self) -> None:
        now = self.stat()
        self._last = None if now is None else (self.clock(), self.cpu(), now)

    def _choose(self, first: bool) -> int:
        assert self._last is not None
        wall0, cpu0, (busy0, total0) = self._last
        self._mark()
        if self._last is None:
            return self.threads
        wall1, cpu1, (busy1, total1) = self._last
        if total1 <= total0 or wall1 <= wall0:
            return self.threads
        share = (busy1 - busy0) / (total1 - total0)
        want = threads_for(free_cores(self.cores, share, (cpu1 - cpu0) / (wall1 - wall0)),
                           self.cores)
        if first or want <= self.threads:
            self._want_more = 0
            return want
        self._want_more += 1  # more threads only when two checks in a row ask for them
        if self._want_more >= 2:
            self._want_more = 0
            return want
        return self.threads


def apply_threads(setting: int | str) -> ThreadPolicy | None:
    """``runtime.threads``: a count (0: torch's default) is set once; ``auto`` starts a policy,
    returned for the run's round hooks."""
    if setting == "auto":
        policy = ThreadPolicy()
        policy.start()
        return policy
    if setting:
        torch.set_num_threads(int(setting))
    return None


def idle_cores() -> int:
    """The cores no other process keeps busy now, as ``runtime.threads: auto`` counts them (a
    0.2 s sample; 1 where there is no /proc/stat)."""
    return ThreadPolicy(set_threads=lambda _: None).start()
