"""The quickstart (`parsefl run`, 60 rounds of PARSE on mfeat, 12 agents) on the reference and
the vectorized backend: wall and CPU seconds of the whole command, and how far the two
backends' results.json lie apart. Each run is a fresh `parsefl run` process; the backends
alternate so that both see the same machine.

    python benchmarks/quickstart.py             # one run each; appended to RESULTS.md
    python benchmarks/quickstart.py --repeat 2  # two each (medians)
    python benchmarks/quickstart.py --quick     # 5 rounds, prints only
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_results  # noqa: E402

BACKENDS = ("reference", "vectorized")


def run_once(backend: str, out: Path, extra: list[str]) -> dict:
    """One `parsefl run` of the quickstart in a child process: wall and CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "from parsefl.cli import main; main()", "run",
                    "--out", str(out), "-o", f"runtime.backend={backend}", *extra],
                   check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return {"wall": wall, "cpu": cpu, "load": os.getloadavg(),
            "results": json.loads((out / "results.json").read_text())}


def largest_gap(a: object, b: object) -> tuple[float, int]:
    """The largest |difference| between two results' numbers, and how many numbers differ
    (wall time left out)."""
    if isinstance(a, dict) and isinstance(b, dict):
        gaps = [largest_gap(v, b.get(k)) for k, v in a.items() if k != "wall_time_s"]
    elif isinstance(a, list) and isinstance(b, list):
        gaps = [largest_gap(u, v) for u, v in zip(a, b, strict=False)]
    elif isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(float(a) - float(b)), int(a != b)
    else:
        return (0.0, 0) if a == b else (float("inf"), 1)
    return max((g for g, _ in gaps), default=0.0), sum(n for _, n in gaps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    extra = ["-o", "rounds=5", "-o", "eval_every=5"] if args.quick else []
    got: dict[str, list[dict]] = {b: [] for b in BACKENDS}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.repeat):
            for b in BACKENDS:
                got[b].append(run_once(b, Path(tmp) / f"{b}{k}", extra))
                print(b, f"{got[b][-1]['wall']:.1f} s wall", flush=True)
    rows = ["| backend | wall s (median) | CPU s (median) | load average at the end |",
            "|---|---|---|---|"]
    for b in BACKENDS:
        wall = statistics.median(r["wall"] for r in got[b])
        cpu = statistics.median(r["cpu"] for r in got[b])
        load = "; ".join(", ".join(f"{x:.1f}" for x in r["load"]) for r in got[b])
        rows.append(f"| {b} | {wall:.1f} | {cpu:.1f} | {load} |")
    gap, n = largest_gap(got["reference"][0]["results"], got["vectorized"][0]["results"])
    notes = [f"results.json, reference vs vectorized: {n} numbers differ, the largest by "
             f"{gap:.2e} (wall time left out). {args.repeat} run(s) per backend, alternating; "
             "each a fresh `parsefl run` process (imports, data and evaluation included)."]
    print("\n".join(rows + notes))
    if not args.quick:
        append_results("Quickstart: reference vs vectorized backend", rows, notes)


if __name__ == "__main__":
    main()
