"""Robust aggregation cost: vectorized-backend seconds per round with each aggregator vs the
gossip mean, at N agents (scaling.py's workload: PARSE, ring, mix 1:1:1, 100 samples per
agent, 4 local steps), optionally with one attacker (sign_flip). Each measurement runs in a
fresh process; the target (issue 12) is at most 1.5x the mean's round time at N = 128.

Both wall-clock and CPU seconds per round (the process's own CPU time, ``time.process_time``)
are recorded: on a shared machine the wall clock measures the other jobs as much as ours, the
CPU time much less so. ``--busy K`` runs K CPU-bound spinning processes during the
measurement (the "another CPU-bound process running" condition).

    python benchmarks/robust.py                 # N = 128, appended to RESULTS.md
    python benchmarks/robust.py --quick         # N = 32, prints only
    python benchmarks/robust.py --attacks none --busy 1 --label after
    python benchmarks/robust.py --aggregators mean,robust,robust:batch=16 --label 'issue 25'

An aggregator is a registered name, optionally with params after a colon (``robust:batch=16,
inner=clipped``; each value is read as YAML).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_results, busy, scaling_overrides  # noqa: E402

AGGREGATORS = ("mean", "clipped", "trimmed_mean", "median", "geomed", "cs_plus_rg", "robust")


def aggregation_overrides(spec: str) -> list[str]:
    """``name`` or ``name:key=value,...`` as config overrides."""
    name, _, params = spec.partition(":")
    out = [f"aggregation.name={name}"]
    if params:
        body = ", ".join(f"{k}: {v}" for k, v in (kv.split("=", 1) for kv in params.split(",")))
        out.append(f"aggregation.params={{{body}}}")
    return out


def measure(n: int, aggregator: str, attack: str, rounds: int) -> dict:
    from parsefl.config import load_config
    from parsefl.experiments.run.build import build_experiment

    overrides = [*scaling_overrides(n, "ring", "vectorized"), *aggregation_overrides(aggregator),
                 "runtime.threads=1"]
    if attack != "none":
        overrides.append(f"adversary={{agents: [1], attack: {attack}}}")
    exp = build_experiment(load_config(None, overrides))
    exp.loop.step(0)  # warm-up
    wall, cpu = [], []
    for r in range(1, rounds + 1):
        w, c = time.perf_counter(), time.process_time()
        exp.loop.step(r)
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return {"n": n, "aggregator": aggregator, "attack": attack,
            "s_per_round": float(np.median(wall)), "cpu_s_per_round": float(np.median(cpu))}


def child(n: int, aggregator: str, attack: str, rounds: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--one", str(n), aggregator, attack,
                          "--rounds", str(rounds)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--one", nargs=3, metavar=("N", "AGGREGATOR", "ATTACK"))
    parser.add_argument("--aggregators", default=",".join(AGGREGATORS))
    parser.add_argument("--attacks", default="none,sign_flip")
    parser.add_argument("--busy", type=int, default=0, help="CPU-bound processes alongside")
    parser.add_argument("--label", default="", help="a word for the section title")
    args = parser.parse_args()
    if args.one:
        n, agg, attack = args.one
        print(json.dumps(measure(int(n), agg, attack, args.rounds)))
        return
    n = 32 if args.quick else 128
    rows = ["| aggregator | attack | wall s/round | / mean | CPU s/round | / mean | "
            "within 1.5x (CPU) |", "|---|---|---|---|---|---|---|"]
    load_start = os.getloadavg()[0]
    with busy(args.busy):
        for attack in args.attacks.split(","):
            base = None
            for agg in args.aggregators.split(","):
                got = child(n, agg, attack, args.rounds)
                base = base or got
                wall, cpu = got["s_per_round"], got["cpu_s_per_round"]
                ratio = cpu / base["cpu_s_per_round"]
                rows.append(f"| {agg} | {attack} | {wall:.3f} | "
                            f"{wall / base['s_per_round']:.2f}x | {cpu:.3f} | {ratio:.2f}x | "
                            f"{'yes' if ratio <= 1.5 else 'NO'} |")
                print(rows[-1], flush=True)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    notes = [f"N = {n}, ring, vectorized backend, 1 torch thread, median of {args.rounds} "
             f"rounds after one warm-up, {args.busy} CPU-bound spinning process(es) started "
             f"by the script; load average {load_start:.1f} at the start, {load} at the end."]
    if not args.quick:
        append_results(f"Robust aggregation: vectorized round time at N = {n}"
                       + (f", {args.label}" if args.label else ""), rows, notes)
    else:
        print("\n".join(rows + notes))


if __name__ == "__main__":
    main()
