"""Helpers shared by the peers benchmark scripts. Plain numpy and the standard library only:
every framework script imports this module under its own venv's Python.

The workload (identical for every framework) is fixed here: the generated data set, the
784-256-128-10 MLP and the local training settings.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

FEATURES, CLASSES, HIDDEN, DIM = 784, 10, 256, 128
BATCH, LR, LOCAL_EPOCHS = 32, 0.01, 1  # plain SGD (no momentum) everywhere
N_TEST = 1000
SEED = 0

# Two regimes. "compute": a 784-256-128-10 MLP on 4,000 samples shared by 8-16 peers, where
# every framework sits near the same compute floor. "overhead": many small agents (100
# samples each, N = 64..1,024) with benchmarks/scaling.py's small model (MLP encoder with one
# hidden layer of 128, embedding width 96, on the scaling data's 76 + 240 = 316 features) and
# batch (25: one local epoch = 4 steps), where a framework's cost per agent shows.
REGIMES = {"compute": {"FEATURES": 784, "HIDDEN": 256, "DIM": 128, "BATCH": 32},
           "overhead": {"FEATURES": 316, "HIDDEN": 128, "DIM": 96, "BATCH": 25}}
PER_AGENT = 100  # overhead regime: training samples per agent
ENV_REGIME = "PEERS_BENCH_REGIME"  # children (and Flower's Ray actors) inherit it
REGIME = "compute"


def set_regime(name: str) -> None:
    """Switch the workload constants of this module to regime ``name``."""
    global REGIME
    globals().update(REGIMES[name])
    REGIME = name


set_regime(os.environ.get(ENV_REGIME, "compute"))


def generate(path: Path, n_train: int, seed: int = SEED) -> Path:
    """Write ``n_train`` training + ``N_TEST`` test samples: 784 features, 10 classes, a
    class-dependent Gaussian mean plus unit noise (fixed seed). Arrays ``x_img``, ``y`` and
    ``split`` (the npz form that ``parsefl run -o data.name=npz:PATH`` reads)."""
    rng = np.random.default_rng(seed)
    n = n_train + N_TEST
    means = rng.normal(0.0, 0.3, size=(CLASSES, FEATURES)).astype(np.float32)
    y = np.concatenate([np.arange(n) % CLASSES])
    rng.shuffle(y)
    x = means[y] + rng.normal(0.0, 1.0, size=(n, FEATURES)).astype(np.float32)
    split = np.array(["train"] * n_train + ["test"] * N_TEST)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, x_img=x.astype(np.float32), y=y.astype(np.int64), split=split)
    tmp.replace(path)
    return path


def load(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test), standardized with training statistics (as parsefl's
    npz loader does)."""
    with np.load(path, allow_pickle=False) as f:
        x, y, split = f["x_img"], f["y"], f["split"]
    tr = split == "train"
    mu, sd = x[tr].mean(0), x[tr].std(0)
    sd[sd == 0] = 1.0
    x = ((x - mu) / sd).astype(np.float32)
    return x[tr], y[tr], x[~tr], y[~tr]


_CACHE: dict[str, tuple] = {}


def load_cached(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``load`` once per process (a Flower actor serves many rounds and clients)."""
    key = str(path)
    if key not in _CACHE:
        _CACHE[key] = load(Path(path))
    return _CACHE[key]


def iid_parts(n: int, peers: int, seed: int = SEED) -> list[np.ndarray]:
    """An IID split of ``range(n)`` into ``peers`` near-equal slices (seeded)."""
    perm = np.random.default_rng(seed + 1).permutation(n)
    return [np.sort(p) for p in np.array_split(perm, peers)]


def ring(peers: int) -> list[list[int]]:
    """Neighbours of each peer on a ring."""
    return [sorted({(i - 1) % peers, (i + 1) % peers} - {i}) for i in range(peers)]


def group_cpu_s() -> float:
    """CPU seconds used so far by every live process of this process group (the benchmark
    process, and for Flower its Ray workers and helpers, which run.py starts in one group):
    a round's cost in CPU work, which a loaded machine stretches far less than its wall time.
    Linux /proc only (0.0 elsewhere)."""
    try:
        pgid, tick = os.getpgid(0), os.sysconf("SC_CLK_TCK")
        pids = [d for d in os.listdir("/proc") if d.isdigit()]
    except (OSError, AttributeError, ValueError):
        return 0.0
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[2]) == pgid:  # fields after the name: state, ppid, pgrp, ...
            total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / tick


def summarize(round_times: list[float], wall_s: float, **extra) -> dict:
    """The figures every framework script reports: median seconds per round over the rounds
    after the first, end-to-end wall time, and start-up = wall - rounds x median."""
    steady = round_times[1:] or round_times
    per_round = statistics.median(steady) if steady else float("nan")
    return {"round_times": round_times, "s_per_round": per_round, "wall_s": wall_s,
            "startup_s": wall_s - len(round_times) * per_round if round_times else wall_s,
            **extra}


def emit(result: dict, out: Path | None) -> None:
    """Write the result JSON to ``out`` (atomically) and print it."""
    text = json.dumps(result, indent=1)
    if out is not None:
        tmp = out.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(out)
    print(text, file=sys.stderr)


class Clock:
    """Wall time since the process started (``time.perf_counter`` is per process, so the
    parent passes its launch time through ``--t0`` as ``time.time()``)."""

    def __init__(self, t0: float | None) -> None:
        self.t0 = t0 if t0 is not None else time.time()

    def now(self) -> float:
        return time.time() - self.t0
