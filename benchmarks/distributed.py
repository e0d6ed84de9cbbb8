"""Seconds per round of the multi-process runtime (2, 4, 8 gloo processes on this machine)
against the in-memory simulator on the same small synthetic_pid config, and the bytes counted
(simulator semantics: payload x hops) against the bytes that really crossed processes.

    python benchmarks/distributed.py            # 2/4/8 processes, appends to benchmarks/RESULTS.md
    python benchmarks/distributed.py --quick    # 2/4 processes, 5 rounds, prints only (< 1 min)
    python benchmarks/distributed.py --scale    # 1,024 agents: launch --nproc 2 vs simulator
    python benchmarks/distributed.py --scale --agents 64 --quick   # the same, small, prints only

``--scale`` runs the scaling workload (benchmarks/scaling.py: 100 samples per agent, 1 local
epoch as 4 fixed steps, ring) on the vectorized backend, in one process and as ``parsefl
launch --nproc 2`` (stacked agents in each worker, placement ``auto`` = blocks on the ring).

A round's time is the median over rounds 1..R-2 (round 0 holds the handshake, the last one the
evaluation): for the simulator, ``RoundEngine.step``; for a distributed run, rank 0's round time
from its log (ranks run in lockstep, so rank 0 waits for the slowest neighbour).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from parsefl.config import load_config
from parsefl.experiments.distributed.launcher import launch
from parsefl.experiments.run.build import build_experiment

CONFIG = [
    "data.name=synthetic_pid", "data.params={label: mixed, n_samples: 2400}",
    "mix={m1: 4, m2: 4, m1+m2: 4}", "partition.name=iid", "model.dim=48",
    "model.encoder.params.hidden=[64]", "device=cpu", "diagnostics.gradient_cosine=false",
]
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import scaling_overrides  # noqa: E402

ROUND_LINE = re.compile(r"round (\d+) done: .* ([\d.]+) s$")


def simulator_round_s(overrides: list[str], rounds: int, threads: int) -> float:
    """Median seconds per simulator round with ``threads`` torch threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        exp = build_experiment(load_config(None, [*overrides, f"runtime.threads={threads}"]))
        times = []
        for r in range(rounds):
            t0 = time.perf_counter()
            exp.loop.step(r)
            times.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(before)
    return statistics.median(times[1:-1])


def distributed_run(overrides: list[str], nproc: int, out: Path) -> dict:
    """One launch: median round seconds (rank 0's log), start-up seconds, bytes."""
    t0 = time.perf_counter()
    res = launch(None, overrides, nproc=nproc, out_dir=out, wall_timeout_s=900)
    wall = time.perf_counter() - t0
    times = [float(m.group(2)) for line in (out / "logs" / "rank_0.log").read_text().splitlines()
             if (m := ROUND_LINE.search(line))]
    wire = res["distributed"]["wire_bytes"]
    return {"round_s": statistics.median(times[1:-1]), "wall_s": wall,
            "backend": res["distributed"].get("backend"),
            "placement": res["distributed"].get("placement"),
            "cross": res["distributed"].get("cross_edge_share"),
            "counted": res["communication"]["bytes_total"],
            "wire_params": wire.get("params_bytes", 0),
            "wire_total": wire.get("header_bytes", 0) + wire.get("payload_bytes", 0),
            "headers": wire.get("header_bytes", 0)}


def table(rows: list[tuple]) -> str:
    head = ("runtime", "s/round", "wall s", "bytes counted", "params on wire",
            "all on wire", "of which headers")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def scale(args: argparse.Namespace) -> None:
    """``--scale``: N agents, the single-process vectorized simulator vs ``parsefl launch
    --nproc 2`` (one torch thread per process; the simulator also with one per core)."""
    rounds = 4 if args.quick else 8
    overrides = [*scaling_overrides(args.agents, "ring", "vectorized"), f"rounds={rounds}",
                 "eval_every=1000000"]
    cores = os.cpu_count() or 1
    # One thread: the default (runtime.threads), and the one that does not spin against
    # other processes on a loaded machine (RESULTS.md, thread policy).
    sims = {1: simulator_round_s(overrides, rounds, 1)}
    with tempfile.TemporaryDirectory() as tmp:
        d = distributed_run(overrides, 2, Path(tmp) / "p2")
    best = min(sims.values())
    rows = [f"| simulator, {t} thread(s) | {s:.3f} | | | |" for t, s in sims.items()]
    rows.append(f"| `parsefl launch --nproc 2` ({d['backend']} workers, placement "
                f"{d['placement']}) | {d['round_s']:.3f} | {d['wall_s']:.1f} | "
                f"{100 * d['cross']:.2f} % | {d['round_s'] / best:.2f} |")
    text = "\n".join(["| runtime | s/round | wall s | edges across processes | "
                      "× best simulator |", "|---|---|---|---|---|", *rows])
    verdict = "met" if d["round_s"] <= 1.5 * best else "NOT met"
    note = (f"Target: launch --nproc 2 within 1.5 × the single-process simulator's round "
            f"time: {d['round_s'] / best:.2f} × — {verdict}.")
    print(text + "\n" + note)
    if not args.quick:
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        with args.results.open("a") as fh:
            fh.write(f"\n## Distributed vectorized workers: {args.agents} agents, launch "
                     f"--nproc 2 vs simulator ({time.strftime('%Y-%m-%d')})\n\n"
                     f"`python benchmarks/distributed.py --scale --agents {args.agents}` on "
                     f"{platform.platform()}, {cores} CPU cores, Python "
                     f"{sys.version.split()[0]}, torch {torch.__version__}; load average at "
                     f"the end {load}. The scaling workload (benchmarks/scaling.py: PARSE, "
                     f"mix 1:1:1, 100 samples per agent, 4 local steps of 25, ring), "
                     f"vectorized backend, {rounds} rounds; s/round is the median over rounds "
                     "1..R-2 (rank 0's log for the launch, which runs in lockstep).\n\n"
                     f"{text}\n\n{note}\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 and 4 processes, 5 rounds")
    ap.add_argument("--scale", action="store_true",
                    help="many agents: launch --nproc 2 vs the vectorized simulator")
    ap.add_argument("--agents", type=int, default=1024, help="--scale: agents (default 1024)")
    ap.add_argument("--results", type=Path, default=RESULTS, help="file the table is appended to")
    args = ap.parse_args()
    if args.scale:
        scale(args)
        return
    rounds, procs = (5, (2, 4)) if args.quick else (20, (2, 4, 8))
    overrides = [*CONFIG, f"rounds={rounds}", f"eval_every={rounds}"]
    cores = os.cpu_count() or 1
    rows: list[tuple] = []
    for threads in [1] if args.quick else sorted({1, cores}):
        sim = simulator_round_s(overrides, rounds, threads)
        rows.append((f"simulator, {threads} thread(s)", f"{sim:.4f}", "", "", "", "", ""))
        print(rows[-1], flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for n in procs:
            d = distributed_run(overrides, n, Path(tmp) / f"p{n}")
            rows.append((f"{n} processes (gloo)", f"{d['round_s']:.4f}", f"{d['wall_s']:.1f}",
                         f"{d['counted']:,}", f"{d['wire_params']:,}", f"{d['wire_total']:,}",
                         f"{d['headers']:,}"))
            print(rows[-1], flush=True)
    text = table(rows)
    print(text)
    if not args.quick:
        with args.results.open("a") as fh:
            fh.write(f"\n## Distributed runtime vs simulator ({time.strftime('%Y-%m-%d')})\n\n"
                     f"`python benchmarks/distributed.py` on {platform.platform()}, "
                     f"{cores} CPU cores, Python {sys.version.split()[0]}, torch "
                     f"{torch.__version__}; 12 agents, synthetic_pid, {rounds} rounds.\n\n"
                     f"{text}\n")
        print(f"appended to {args.results}")


if __name__ == "__main__":
    main()
