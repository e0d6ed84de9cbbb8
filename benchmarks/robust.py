"""Robust aggregation cost: vectorized-backend seconds per round with each aggregator vs the
gossip mean, at N agents (scaling.py's workload: PARSE, ring, mix 1:1:1, 100 samples per
agent, 4 local steps), optionally with one attacker (sign_flip). Each measurement runs in a
fresh process; the target (issue 12) is at most 1.5x the mean's round time at N = 128.

    python benchmarks/robust.py                 # N = 128, appended to RESULTS.md
    python benchmarks/robust.py --quick         # N = 32, prints only
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_results, scaling_overrides, time_rounds  # noqa: E402

AGGREGATORS = ("mean", "clipped", "trimmed_mean", "median", "geomed")


def measure(n: int, aggregator: str, attack: str, rounds: int) -> dict:
    from parsefl.config import load_config
    from parsefl.experiments.build import build_experiment

    overrides = [*scaling_overrides(n, "ring", "vectorized"), f"aggregation.name={aggregator}",
                 "runtime.threads=1"]
    if attack != "none":
        overrides.append(f"adversary={{agents: [1], attack: {attack}}}")
    exp = build_experiment(load_config(None, overrides))
    return {"n": n, "aggregator": aggregator, "attack": attack,
            "s_per_round": time_rounds(exp.loop.step, rounds)}


def child(n: int, aggregator: str, attack: str, rounds: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--one", str(n), aggregator, attack,
                          "--rounds", str(rounds)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--one", nargs=3, metavar=("N", "AGGREGATOR", "ATTACK"))
    args = parser.parse_args()
    if args.one:
        n, agg, attack = args.one
        print(json.dumps(measure(int(n), agg, attack, args.rounds)))
        return
    n = 32 if args.quick else 128
    rows = ["| aggregator | attack | s/round | / mean (same attack) | within 1.5x |",
            "|---|---|---|---|---|"]
    for attack in ("none", "sign_flip"):
        base = None
        for agg in AGGREGATORS:
            got = child(n, agg, attack, args.rounds)["s_per_round"]
            base = base or got
            rows.append(f"| {agg} | {attack} | {got:.3f} | {got / base:.2f}x | "
                        f"{'yes' if got / base <= 1.5 else 'NO'} |")
            print(rows[-1], flush=True)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    notes = [f"N = {n}, ring, vectorized backend, 1 torch thread, median of {args.rounds} "
             f"rounds after one warm-up; load average at the end {load} (the machine is "
             "shared: absolute times are noisy, the ratios within one attack column less so).",
             "`mean` without an attacker runs the sparse mixing-matrix product with the "
             "receive checks folded in; every other row runs the padded (H, K, numel) stack."]
    if not args.quick:
        append_results(f"Robust aggregation: vectorized round time at N = {n}", rows, notes)
    else:
        print("\n".join(rows + notes))


if __name__ == "__main__":
    main()
