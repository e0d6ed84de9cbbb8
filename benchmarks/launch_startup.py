"""What starting the processes of `parsefl launch` costs: ``--launches`` launches of a tiny
config (2 processes, 3 rounds) one after another from one Python process, with workers forked
by the fork server (the default where the platform can fork) and as fresh interpreters
(``processes.FORK = False``), quiet or beside ``--busy K`` CPU-bound processes. Reports the
first launch (the fork server starts then) and the median of the later ones, in wall seconds,
and the CPU seconds of all processes together per launch.

    python benchmarks/launch_startup.py --label after            # quiet, appended to RESULTS.md
    python benchmarks/launch_startup.py --busy 1 --label after   # beside one CPU-bound process
    python benchmarks/launch_startup.py --quick                  # 3 launches each, prints only
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_results, busy, timing_options  # noqa: E402

TINY = ["data.name=synthetic_pid", "data.params={label: mixed, n_samples: 240}",
        "mix={m1: 2, m2: 2, m1+m2: 2}", "partition.name=iid", "model.dim=6",
        "model.encoder.params.hidden=[8]", "rounds=3", "eval_every=3", "device=cpu"]


def _cpu() -> float:
    """CPU seconds of this process and every child it has waited for."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), \
        resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run(fork: bool, launches: int) -> tuple[float, float, float]:
    """(first launch's wall s, median wall s of the rest, CPU s per launch), in a child
    process of its own (the fork server and its workers count when it has ended)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_measure, args=(fork, launches, queue))
    before = _cpu()
    proc.start()
    walls = queue.get()
    proc.join()
    return walls[0], statistics.median(walls[1:]), (_cpu() - before) / launches


def _measure(fork: bool, launches: int, queue) -> None:
    from parsefl.experiments.distributed import processes
    from parsefl.experiments.distributed.launcher import launch

    processes.FORK = fork
    walls = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(launches):
            start = time.perf_counter()
            launch(None, TINY, nproc=2, out_dir=Path(tmp) / f"run{k}", wall_timeout_s=300)
            walls.append(time.perf_counter() - start)
    from parsefl.experiments.distributed.forks import ForkServer

    ForkServer.stop()  # reaped here: its CPU (and its workers') counts
    queue.put(walls)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--launches", type=int, default=6)
    timing_options(p, "3 launches each, print only")
    args = p.parse_args()
    launches = 3 if args.quick else args.launches
    load = os.getloadavg()[0]
    with busy(args.busy):
        rows = {name: run(fork, launches) for name, fork in
                (("fresh interpreters", False), ("fork server", True))}
    fresh = rows["fresh interpreters"]
    table = ["| workers started as | first launch (s) | later launches (s, median) | "
             "CPU s per launch | later, x fresh |", "|---|---:|---:|---:|---:|",
             *(f"| {name} | {a:.2f} | {b:.2f} | {c:.2f} | {b / fresh[1]:.2f} |"
               for name, (a, b, c) in rows.items())]
    print("\n".join(table))
    if not args.quick:
        cond = f"beside {args.busy} CPU-bound process(es)" if args.busy else "quiet"
        append_results(f"Distributed: launch start-up, {args.label or 'as found'}, {cond}",
                       table, [f"{launches} launches of a 6-agent, 3-round config "
                               f"(2 processes each) from one Python process; 1-minute load "
                               f"average {load:.1f} before it started."])


if __name__ == "__main__":
    main()
