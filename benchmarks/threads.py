"""Thread policy: the quickstart (and a few scaling rows) at 1 and 2 torch threads, on the
machine as it is ("quiet") and with one extra CPU-bound process spinning beside it ("busy").
Each measurement runs in a fresh process; the load average is recorded with each, because a
shared machine is never truly quiet.

    python benchmarks/threads.py            # quickstart (60 rounds) + scaling rows; RESULTS.md
    python benchmarks/threads.py --quick    # 15 rounds, N = 8 and 32; prints only
    python benchmarks/threads.py --threads 1,2,auto --ns 1024 --no-quickstart   # issue 27's
        # target: a quiet 1,024-agent round on 2 threads <= 0.6x of 1 thread, busy <= 2x quiet

``auto`` is `runtime.threads: auto` (runtime/threads.py): its policy re-checks between the
timed rounds, as in a run, and the row says which thread counts it chose.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

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


def quickstart(threads: int | str, rounds: int | None) -> dict:
    overrides = [f"runtime.threads={threads}", *([f"rounds={rounds}"] if rounds else [])]
    try:
        out = subprocess.run([sys.executable, "-c", QUICKSTART, json.dumps(overrides)],
                             capture_output=True, text=True, check=True, timeout=LIMIT_S)
    except subprocess.TimeoutExpired:
        return {"s": float("inf"), "acc": float("nan"), "threads": threads}
    return json.loads(out.stdout.strip().splitlines()[-1])


def scaling_rows(threads: int | str, ns: list[int]) -> dict[str, Any]:
    """Median s/round of scaling.py's workload (vectorized, ring) per N, in this process; with
    ``auto``, also the thread counts the policy chose (``chosen``)."""
    from types import SimpleNamespace

    from parsefl.config import load_config
    from parsefl.experiments.run.build import build_experiment

    out: dict[str, Any] = {}
    chosen: list[int] = []
    for n in ns:
        exp = build_experiment(load_config(None, [*scaling_overrides(n, "ring", "vectorized"),
                                                  f"runtime.threads={threads}"]))
        policy, done = exp.threads, [0]

        def step(r: int, exp: Any = exp, policy: Any = policy, done: list = done) -> Any:
            stats = exp.loop.step(r)
            done[0] += 1
            if policy is not None:
                policy(SimpleNamespace(done=done[0]))
            return stats

        out[str(n)] = time_rounds(step, 3)
        if policy is not None:
            chosen += [t for _, t in policy.changes]
    if chosen:
        out["chosen"] = chosen
    return out


def _scaling(threads: int | str, ns: list[int]) -> dict[str, Any]:
    here = str(Path(__file__).parent)
    code = (f"import json, sys; sys.path.insert(0, {here!r}); from threads import scaling_rows; "
            f"print(json.dumps(scaling_rows({threads!r}, {ns!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


class Spinner:
    """One extra CPU-bound process for the duration of a ``with`` block."""

    def __enter__(self) -> Spinner:
        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(1.0)
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.kill()
        self.proc.wait()


def measure(rounds: int | None, ns: list[int], counts: list[int | str],
            with_quickstart: bool = True) -> list[dict]:
    rows = []
    skipped = {"s": float("nan"), "acc": float("nan")}
    for load in ("quiet", "busy"):
        for threads in counts:
            before = os.getloadavg()[0]
            if load == "busy":
                with Spinner():
                    q = quickstart(threads, rounds) if with_quickstart else skipped
                    s = _scaling(threads, ns)
            else:
                q = quickstart(threads, rounds) if with_quickstart else skipped
                s = _scaling(threads, ns)
            rows.append({"load": load, "threads": threads, "quickstart_s": q["s"],
                         "accuracy": q["acc"], "scaling": s,
                         "loadavg": (before, os.getloadavg()[0])})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", default="1,2", help="thread counts to compare (or auto)")
    parser.add_argument("--ns", default=None, help="scaling rows' agent counts, e.g. 1024")
    parser.add_argument("--no-quickstart", action="store_true", help="scaling rows only")
    args = parser.parse_args()
    ns = [int(n) for n in args.ns.split(",")] if args.ns else \
        ([8, 32] if args.quick else [8, 32, 128])
    counts = [t if t == "auto" else int(t) for t in args.threads.split(",")]
    rows = measure(15 if args.quick else None, ns, counts, not args.no_quickstart)
    if args.quick:
        return
    head = ["| load | threads | quickstart s | accuracy | "
            + " | ".join(f"N={n} s/round" for n in ns) + " | load avg (1 min) before → after |",
            "|---" * (5 + len(ns)) + "|"]
    table = head + [
        f"| {r['load']} | {r['threads']} | "
        + _seconds(r["quickstart_s"]) + f" | {r['accuracy']:.4f} | "
        + " | ".join(f"{r['scaling'][str(n)]:.3f}" for n in ns)
        + f" | {r['loadavg'][0]:.1f} → {r['loadavg'][1]:.1f} |"
        + (f" chose {r['scaling']['chosen']}" if "chosen" in r["scaling"] else "") for r in rows]
    append_results("Thread policy: 1 vs 2 torch threads, quiet and beside a CPU-bound process",
                   table, ["quiet = the machine as it was (shared: see the load average); "
                           "busy = plus one `python -c 'while True: pass'` process. Quickstart "
                           "= `parsefl run` (60 rounds, reference backend) timed in-process; "
                           "N rows = scaling.py's workload (vectorized, ring), median of 3 "
                           "rounds."])


def _seconds(s: float) -> str:
    if s != s:  # nan: not measured (--no-quickstart)
        return "–"
    return f"{s:.1f}" if s < LIMIT_S else f"> {LIMIT_S}"


if __name__ == "__main__":
    main()
