"""Shared pieces of the benchmark scripts: the synthetic workload, timing, and the RESULTS.md
appender (every figure recorded with its command, machine and date)."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import multiprocessing
import os
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def mfeat_like_npz(n_agents: int, per_agent: int = 100, n_test: int = 200, seed: int = 0) -> Path:
    """Synthetic data shaped like mfeat's fou (76) and pix (240) views, 10 classes, with
    ``per_agent`` training samples per agent (class-dependent means plus noise)."""
    path = Path(tempfile.gettempdir()) / f"parsefl-bench-{n_agents}x{per_agent}-{seed}.npz"
    if path.exists():  # drawn once: the draw's float64 arrays would be the process's peak
        return path
    rng = np.random.default_rng(seed)
    n = n_agents * per_agent + n_test
    y = rng.integers(0, 10, size=n)
    centers = {m: rng.normal(size=(10, d)) for m, d in (("fou", 76), ("pix", 240))}
    x = {f"x_{m}": c[y] + rng.normal(scale=2.0, size=(n, c.shape[1])) for m, c in centers.items()}
    split = np.array(["train"] * (n - n_test) + ["test"] * n_test)
    np.savez(path, y=y, split=split, **{k: v.astype(np.float32) for k, v in x.items()})
    return path


def scaling_overrides(n_agents: int, topology: str, backend: str) -> list[str]:
    """PARSE on the mfeat-like data, mix 1:1:1, 100 samples per agent, 1 local epoch (4
    steps of 25 samples), no evaluation inside the timed rounds."""
    third = n_agents // 3
    mix = f"{{fou: {third}, pix: {third}, fou+pix: {n_agents - 2 * third}}}"
    return [f"data.name=npz:{mfeat_like_npz(n_agents)}", f"mix={mix}", "partition.name=iid",
            "partition.min_samples=1", f"topology.name={topology}", "train.batch_size=25",
            "train.local_steps=4", "eval_every=1000000", "diagnostics.gradient_cosine=false",
            f"runtime.backend={backend}", "device=cpu", "model.encoder.name=mlp"]


def time_rounds(step: Callable[[int], object], rounds: int, warmup: int = 1) -> float:
    """Median seconds per round after ``warmup`` rounds."""
    for r in range(warmup):
        step(r)
    times = []
    for r in range(warmup, warmup + rounds):
        start = time.perf_counter()
        step(r)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def machine() -> str:
    return (f"{platform.platform()}, {os.cpu_count()} CPU cores, Python "
            f"{platform.python_version()}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} torch threads")


def timing_options(p: argparse.ArgumentParser, quick: str) -> argparse.ArgumentParser:
    """The options every timing script shares: ``--busy K`` CPU-bound processes beside it,
    ``--label`` for the RESULTS.md title, ``--quick`` (``quick``: what it then does)."""
    p.add_argument("--busy", type=int, default=0, help="CPU-bound processes beside it")
    p.add_argument("--label", default="", help="what the code is (before/after ...)")
    p.add_argument("--quick", action="store_true", help=quick)
    return p


def append_results(title: str, table: Sequence[str], notes: Sequence[str] = ()) -> None:
    """Add an entry to RESULTS.md (title, command, machine, date, table, notes), filed under
    its topic (benchmarks/results_book.py)."""
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    lines = [f"\n## {title} ({datetime.date.today().isoformat()})\n",
             f"`{command}` on {machine()}.\n", *table, "", *notes]
    with RESULTS.open("a") as fh:
        fh.write("\n".join(lines) + "\n")
    from results_book import organize  # filed under its topic, earlier passes folded

    RESULTS.write_text(organize(RESULTS.read_text()))


def _spin() -> None:
    while True:
        pass


@contextlib.contextmanager
def busy(k: int) -> Iterator[None]:
    """``k`` CPU-bound spinning processes while the block runs (the "another CPU-bound
    process running" condition of every busy measurement)."""
    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(k)]
    for proc in spinners:
        proc.start()
    try:
        yield
    finally:
        for proc in spinners:
            proc.terminate()
