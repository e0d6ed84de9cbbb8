"""Compression cost: vectorized-backend seconds per round with each ``communication:`` setting
vs uncompressed, at N agents (scaling.py's workload: PARSE, ring, mix 1:1:1, 100 samples per
agent, 4 local steps). Each measurement runs in a fresh process; the settings are measured in
turn, ``--repeat`` times, and each ratio is the median over the repeats. The target (issue 16)
is at most 1.3x the uncompressed round time at N = 128.

    python benchmarks/compression.py                  # N = 128, appended to RESULTS.md
    python benchmarks/compression.py --busy           # beside one CPU-bound process
    python benchmarks/compression.py --quick          # N = 32, prints only
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
from _common import append_results, scaling_overrides, time_rounds  # noqa: E402

SETTINGS = {
    "none": [],
    "fp16": ["communication.compressor=fp16"],
    "int8": ["communication.compressor=int8"],
    "topk 0.1": ["communication.compressor=topk", "communication.params={fraction: 0.1}"],
    "topk 0.1 + CHOCO": ["communication.compressor=topk", "communication.params={fraction: 0.1}",
                         "communication.error_feedback=true", "communication.gamma=0.5"],
    "int8 + CHOCO": ["communication.compressor=int8", "communication.error_feedback=true"],
    "enc int8 every 4, heads every round": [
        "communication.kinds={enc: {compressor: int8, period: 4}, enc_s: {compressor: int8, "
        "period: 4}}"],
}


def measure(n: int, setting: str, rounds: int) -> dict:
    from parsefl.config import load_config
    from parsefl.experiments.run.build import build_experiment

    overrides = [*scaling_overrides(n, "ring", "vectorized"), "runtime.threads=1",
                 *SETTINGS[setting]]
    exp = build_experiment(load_config(None, overrides))
    total, cpu = {}, []

    def step(r: int) -> None:
        start = time.process_time()
        total[r] = sum(exp.loop.step(r).link_bytes.values())
        cpu.append(time.process_time() - start)

    seconds = time_rounds(step, rounds)
    return {"n": n, "setting": setting, "s_per_round": seconds,
            "cpu_s_per_round": float(np.median(cpu[1:])),
            "bytes_per_round": float(np.mean(list(total.values())))}


def child(n: int, setting: str, rounds: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--one", str(n), setting,
                          "--rounds", str(rounds)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--busy", action="store_true", help="beside one CPU-bound process")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--one", nargs=2, metavar=("N", "SETTING"))
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(int(args.one[0]), args.one[1], args.rounds)))
        return
    n = 32 if args.quick else 128
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None
    before = os.getloadavg()[0]
    try:
        runs: dict[str, list[dict]] = {s: [] for s in SETTINGS}
        for _ in range(args.repeat):  # settings in turn: a load change hits all of them
            for setting in SETTINGS:
                runs[setting].append(child(n, setting, args.rounds))
    finally:
        if busy is not None:
            busy.kill()
    rows = table(runs)
    load = "busy (one CPU-bound process beside it)" if args.busy else "quiet (as found)"
    notes = [f"N = {n}, ring, vectorized backend, 1 torch thread; {load}; each cell the median "
             f"over {args.repeat} fresh processes of the median of {args.rounds} rounds after "
             f"one warm-up; ratio = median of per-repeat ratios to `none`; CPU = the process's "
             f"CPU time per round (less sensitive than wall time to other processes on a "
             f"shared machine); load average (1 min) {before:.1f} before, "
             f"{os.getloadavg()[0]:.1f} after."]
    if args.quick:
        print("\n".join(rows + notes))
    else:
        append_results(f"Compression: vectorized round time at N = {n}, {load.split()[0]}",
                       rows, notes)


def table(runs: dict[str, list[dict]]) -> list[str]:
    rows = ["| setting | wall s/round | / none | CPU s/round | / none | within 1.3x (CPU) "
            "| bytes/round | / none |", "|---|---|---|---|---|---|---|---|"]
    base = runs["none"]
    for setting, got in runs.items():
        cells = []
        for key in ("s_per_round", "cpu_s_per_round"):
            secs = float(np.median([g[key] for g in got]))
            ratio = float(np.median([g[key] / b[key] for g, b in zip(got, base, strict=True)]))
            cells += [f"{secs:.3f}", f"{ratio:.2f}x"]
        nbytes = got[0]["bytes_per_round"]
        rows.append(f"| {setting} | {' | '.join(cells)} | "
                    f"{'yes' if float(cells[3][:-1]) <= 1.3 else 'NO'} | {nbytes:,.0f} | "
                    f"{nbytes / base[0]['bytes_per_round']:.3f} |")
        print(rows[-1], flush=True)
    return rows


if __name__ == "__main__":
    main()
