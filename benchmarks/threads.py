"""Thread policy: the quickstart (and a few scaling rows) at 1 and 2 torch threads, on the
machine as it is ("quiet") and with one extra CPU-bound process spinning beside it ("busy").
Each measurement runs in a fresh process; the load average is recorded with each, because a
shared machine is never truly quiet.

    python benchmarks/threads.py            # quickstart (60 rounds) + scaling rows; RESULTS.md
    python benchmarks/threads.py --quick    # 15 rounds, N = 8 and 32; prints only
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_results, scaling_overrides, time_rounds  # noqa: E402

QUICKSTART = """
import json, sys, tempfile, time, torch
from pathlib import Path
from parsefl.config import load_config
from parsefl.experiments.run.simulate import run_experiment
cfg = load_config(None, json.loads(sys.argv[1]))
start = time.perf_counter()
res = run_experiment(cfg, Path(tempfile.mkdtemp()) / "run")
print(json.dumps({"s": time.perf_counter() - start, "acc": res["final"]["accuracy"]["overall"],
                  "threads": torch.get_num_threads()}))
"""


LIMIT_S = 900  # a quickstart slower than this is recorded as "> LIMIT_S"


def quickstart(threads: int, rounds: int | None) -> dict:
    overrides = [f"runtime.threads={threads}", *([f"rounds={rounds}"] if rounds else [])]
    try:
        out = subprocess.run([sys.executable, "-c", QUICKSTART, json.dumps(overrides)],
                             capture_output=True, text=True, check=True, timeout=LIMIT_S)
    except subprocess.TimeoutExpired:
        return {"s": float("inf"), "acc": float("nan"), "threads": threads}
    return json.loads(out.stdout.strip().splitlines()[-1])


def scaling_rows(threads: int, ns: list[int]) -> dict[int, float]:
    """Median s/round of scaling.py's workload (vectorized, ring) per N, in this process."""
    import torch

    from parsefl.config import load_config
    from parsefl.experiments.run.build import build_experiment

    torch.set_num_threads(threads)
    out = {}
    for n in ns:
        exp = build_experiment(load_config(None, scaling_overrides(n, "ring", "vectorized")))
        out[n] = time_rounds(exp.loop.step, 3)
    return out


def _scaling(threads: int, ns: list[int]) -> dict[int, float]:
    here = str(Path(__file__).parent)
    code = (f"import json, sys; sys.path.insert(0, {here!r}); from threads import scaling_rows; "
            f"print(json.dumps(scaling_rows({threads}, {ns!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return {int(k): v for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()}


class Spinner:
    """One extra CPU-bound process for the duration of a ``with`` block."""

    def __enter__(self) -> Spinner:
        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(1.0)
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.kill()
        self.proc.wait()


def measure(rounds: int | None, ns: list[int], counts: list[int]) -> list[dict]:
    rows = []
    for load in ("quiet", "busy"):
        for threads in counts:
            before = os.getloadavg()[0]
            if load == "busy":
                with Spinner():
                    q, s = quickstart(threads, rounds), _scaling(threads, ns)
            else:
                q, s = quickstart(threads, rounds), _scaling(threads, ns)
            rows.append({"load": load, "threads": threads, "quickstart_s": q["s"],
                         "accuracy": q["acc"], "scaling": s,
                         "loadavg": (before, os.getloadavg()[0])})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", default="1,2", help="thread counts to compare")
    args = parser.parse_args()
    ns = [8, 32] if args.quick else [8, 32, 128]
    rows = measure(15 if args.quick else None, ns, [int(t) for t in args.threads.split(",")])
    if args.quick:
        return
    head = ["| load | threads | quickstart s | accuracy | "
            + " | ".join(f"N={n} s/round" for n in ns) + " | load avg (1 min) before → after |",
            "|---" * (5 + len(ns)) + "|"]
    table = head + [
        f"| {r['load']} | {r['threads']} | "
        + (f"{r['quickstart_s']:.1f}" if r["quickstart_s"] < LIMIT_S else f"> {LIMIT_S}")
        + f" | {r['accuracy']:.4f} | "
        + " | ".join(f"{r['scaling'][n]:.3f}" for n in ns)
        + f" | {r['loadavg'][0]:.1f} → {r['loadavg'][1]:.1f} |" for r in rows]
    append_results("Thread policy: 1 vs 2 torch threads, quiet and beside a CPU-bound process",
                   table, ["quiet = the machine as it was (shared: see the load average); "
                           "busy = plus one `python -c 'while True: pass'` process. Quickstart "
                           "= `parsefl run` (60 rounds, reference backend) timed in-process; "
                           "N rows = scaling.py's workload (vectorized, ring), median of 3 "
                           "rounds."])


if __name__ == "__main__":
    main()
