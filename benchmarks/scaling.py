"""Scaling: seconds per round and peak memory for N agents (100 training samples each, PARSE,
mfeat-like fou + pix data, mix 1:1:1, 1 local epoch), vectorized vs reference backend, on a
ring and an Erdős–Rényi graph. Each measurement runs in a fresh process (clean peak memory).

    python benchmarks/scaling.py            # full table, appended to RESULTS.md
    python benchmarks/scaling.py --quick    # N = 8, 32; prints only
    python benchmarks/scaling.py --linear   # N = 1,024 vs 4,096 (ring, vectorized), quiet
                                            # and beside a CPU-bound process; to RESULTS.md
    python benchmarks/scaling.py --build    # build time per agent at N = 1,024 and 4,096,
                                            # quiet and busy; to RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_results, scaling_overrides, time_rounds  # noqa: E402

REFERENCE_MAX = 128  # the per-agent loop takes minutes per round beyond this


def measure(n: int, topology: str, backend: str, rounds: int) -> dict:
    """One configuration, in this process: build time, median s/round, peak RSS."""
    from parsefl.config import load_config
    from parsefl.experiments.run.build import build_experiment

    overrides = scaling_overrides(n, topology, backend)
    if topology == "erdos_renyi":  # sparse enough to stay meaningful at N = 1024
        overrides.append(f"topology.params={{p: {min(1.0, 2 * math.log(n) / n):.4f}}}")
    start = time.perf_counter()
    exp = build_experiment(load_config(None, overrides))
    build = time.perf_counter() - start
    cpu = time.process_time()
    per_round = time_rounds(exp.loop.step, rounds)
    cpu_round = (time.process_time() - cpu) / (rounds + 1)  # the warm-up round included
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    edges = exp.loop.topology.at(0).number_of_edges()
    return {"n": n, "topology": topology, "backend": backend, "build_s": build,
            "s_per_round": per_round, "cpu_s_per_round": cpu_round, "peak_mib": peak_mib,
            "edges": edges}


def measure_build(n: int) -> dict:
    """Build time of the vectorized run (``build_experiment``: data, agents, graph, loop,
    stacked groups) and the part of it spent loading the data (``load_dataset``, timed where
    the build calls it)."""
    from parsefl.config import load_config
    from parsefl.experiments.run import build

    cfg = load_config(None, scaling_overrides(n, "ring", "vectorized"))
    loading = []
    load = build.load_dataset

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return load(*args, **kwargs)
        finally:
            loading.append(time.perf_counter() - start)

    build.load_dataset = timed
    start = time.perf_counter()
    build.build_experiment(cfg)
    return {"n": n, "build_s": time.perf_counter() - start, "load_s": sum(loading),
            "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def build_table(sizes: list[int]) -> None:
    """Build time per agent, quiet and beside one CPU-bound process (each size in a fresh
    process)."""
    rows = ["| load | N | build s | ms/agent | of which data loading s | ms/agent without "
            "loading the data | load average (1, 5, 15 min) | ≤ 0.1 ms/agent? |",
            "|---|---|---|---|---|---|---|---|"]
    for busy in (False, True):
        spin = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
        try:
            for n in sizes:
                out = subprocess.run([sys.executable, __file__, "--build-one", str(n)],
                                     capture_output=True, text=True, check=True)
                r = json.loads(out.stdout.strip().splitlines()[-1])
                per, rest = r["build_s"] / n * 1e3, (r["build_s"] - r["load_s"]) / n * 1e3
                load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
                rows.append(f"| {'busy' if busy else 'quiet'} | {n:,} | {r['build_s']:.2f} | "
                            f"{per:.3f} | {r['load_s']:.2f} | {rest:.3f} | {load} | "
                            f"{'met' if per <= 0.1 else 'NOT met'} |")
                print(rows[-1], flush=True)
        finally:
            if spin is not None:
                spin.kill()
                spin.wait()
    notes = ["Build = `build_experiment` of scaling.py's workload (vectorized, ring, mix 1:1:1, "
             "100 samples of 76 + 240 features per agent, read from an .npz and standardized): "
             "the data, the agents, the graph, the round loop and the stacked groups; the "
             "first round's handshake is not in it. Data loading = the build's call of "
             "`load_dataset` (reading the .npz, standardizing), timed where it is called. "
             "busy = plus one `python -c 'while True: pass'`."]
    append_results("Build time per agent (vectorized backend)", rows, notes)


def child(n: int, topology: str, backend: str, rounds: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--one", str(n), topology, backend,
                          "--rounds", str(rounds)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--one", nargs=3, metavar=("N", "TOPOLOGY", "BACKEND"))
    parser.add_argument("--linear", nargs="*", type=int, metavar="N",
                        help="linear scaling: the ratio of the round times of these sizes "
                             "(default 1024 4096), quiet and busy")
    parser.add_argument("--build", nargs="*", type=int, metavar="N",
                        help="build time per agent at these sizes (default 1024 4096)")
    parser.add_argument("--build-one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_one:
        print(json.dumps(measure_build(args.build_one)))
        return
    if args.build is not None:
        build_table(args.build or [1024, 4096])
        return
    if args.one:
        n, topo, backend = args.one
        print(json.dumps(measure(int(n), topo, backend, args.rounds)))
        return
    if args.linear is not None:
        linear(args.linear or [1024, 4096], args.rounds)
        return
    sizes = [8, 32] if args.quick else [8, 32, 128, 512, 1024]
    rounds = 1 if args.quick else args.rounds
    rows = ["| N | graph | edges | vectorized s/round | reference s/round | reference / "
            "vectorized | peak MiB (vectorized) |", "|---|---|---|---|---|---|---|"]
    mem = []
    for topo in ("ring", "erdos_renyi"):
        for n in sizes:
            vec = child(n, topo, "vectorized", rounds)
            ref = child(n, topo, "reference", rounds) if n <= REFERENCE_MAX else None
            ratio = f"{ref['s_per_round'] / vec['s_per_round']:.1f}x" if ref else "–"
            ref_s = f"{ref['s_per_round']:.3f}" if ref else "(not run)"
            rows.append(f"| {n} | {topo} | {vec['edges']} | {vec['s_per_round']:.3f} | "
                        f"{ref_s} | {ratio} | {vec['peak_mib']:.0f} |")
            print(rows[-1], flush=True)
            if topo == "ring":
                mem.append((n, vec["peak_mib"]))
    slope = _slope(mem)
    notes = [f"Memory: peak RSS grows by about {slope:.2f} MiB per agent (least-squares slope "
             f"over N = {', '.join(str(n) for n, _ in mem)} on the ring), on top of the "
             "interpreter, torch and the data.",
             f"Reference backend not run beyond N = {REFERENCE_MAX} (minutes per round).",
             "Erdős–Rényi with p = 2 ln(N) / N. Median over rounds after one warm-up round; "
             "evaluation is not in the timed rounds."]
    print("\n".join(notes))
    if not args.quick:
        append_results("Scaling: seconds per round vs N (simulator backends)", rows, notes)


def linear(sizes: list[int], rounds: int) -> None:
    """Round time of each size on the ring (vectorized), quiet and then beside one CPU-bound
    process; the ratio is taken within one pass (the sizes run one after the other)."""
    lo, hi = sizes[0], sizes[-1]
    target = 4.5 * hi / lo / 4  # 4.5x the time for 4x the agents
    rows = [f"| load | N | s/round | CPU s/round | peak MiB | build s | load average (1, 5, "
            f"15 min) | {hi} / {lo} (wall) | {hi} / {lo} (CPU) | wall ≤ {target:.2f}? |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for busy in (False, True):
        got = _linear_pass(sizes, rounds, busy)
        ratio = got[hi]["s_per_round"] / got[lo]["s_per_round"]
        cpu = got[hi]["cpu_s_per_round"] / got[lo]["cpu_s_per_round"]
        for n in sizes:
            r, last = got[n], n == hi
            load = ", ".join(f"{x:.1f}" for x in r["load"])
            verdict = ("met" if ratio <= target else "NOT met") if last else ""
            rows.append(f"| {'busy' if busy else 'quiet'} | {n:,} | {r['s_per_round']:.3f} | "
                        f"{r['cpu_s_per_round']:.3f} | {r['peak_mib']:.0f} | "
                        f"{r['build_s']:.1f} | {load} | {f'{ratio:.2f}' if last else ''} | "
                        f"{f'{cpu:.2f}' if last else ''} | {verdict} |")
            print(rows[-1], flush=True)
    notes = [f"Ratio = s/round at N = {hi:,} over N = {lo:,} in the same pass (CPU: the "
             "process's CPU seconds per round, warm-up included, less sensitive to other "
             "processes than wall time); linear is "
             f"{hi / lo:.0f}×, the target {target:.2f}×. busy = plus one `python -c 'while "
             f"True: pass'`. Median of {rounds} rounds after one warm-up round, a fresh process "
             "per size; scaling.py's workload (ring, 100 samples per agent, 4 steps of 25); "
             "load average read when each size finished."]
    append_results("Linear scaling: vectorized round time vs N (ring)", rows, notes)


def _linear_pass(sizes: list[int], rounds: int, busy: bool) -> dict[int, dict]:
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        got = {}
        for n in sizes:
            got[n] = child(n, "ring", "vectorized", rounds)
            got[n]["load"] = os.getloadavg()
        return got
    finally:
        if spin is not None:
            spin.kill()
            spin.wait()


def _slope(points: list[tuple[int, float]]) -> float:
    if len(points) < 2:
        return float("nan")
    xs, ys = zip(*points, strict=True)
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x in xs)


if __name__ == "__main__":
    main()
