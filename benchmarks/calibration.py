"""What planning a private run costs: Opacus's noise calibration of every distinct agent size of
the HAPT preset (30 agents, 28 sizes), cold in one process, cold on the idle cores (the
default), and from the cache (each kept value checked by one accountant call), each with an
empty cache folder of its own.

    python benchmarks/calibration.py                 # quiet; appended to RESULTS.md
    python benchmarks/calibration.py --busy 1        # beside one CPU-bound process
    python benchmarks/calibration.py --quick         # the quickstart preset; prints only
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_results, busy, timing_options  # noqa: E402

PRESETS = Path(__file__).resolve().parents[1] / "src" / "parsefl" / "presets"


def plan_seconds(cfg, n_train: list[int], workers) -> float:
    from parsefl.privacy import accounting

    accounting._CALIBRATED.clear()  # this process's memo: every pass starts from the files
    accounting.spent.cache_clear()
    start = time.perf_counter()
    accounting.plan_privacy(cfg, n_train, workers=workers)
    return time.perf_counter() - start


def main() -> None:
    p = timing_options(argparse.ArgumentParser(description=__doc__.splitlines()[0]),
                       "the quickstart preset (12 agents), prints only")
    p.add_argument("--epsilon", type=float, default=8.0)
    p.add_argument("--rounds", type=int, default=60)
    p.add_argument("--batch", type=int, default=64, help="train.batch_size (q = batch / n)")
    args = p.parse_args()

    from parsefl.config import load_config
    from parsefl.experiments.run.build import build_experiment
    from parsefl.runtime.threads import idle_cores

    preset = PRESETS / ("quickstart.yaml" if args.quick else "hapt.yaml")
    base = [f"rounds={args.rounds}", "device=cpu", f"train.batch_size={args.batch}"]
    n_train = build_experiment(load_config(preset, base)).n_train
    cfg = load_config(preset, [*base, f"privacy={{epsilon: {args.epsilon}, delta: 1.0e-5}}"])
    sizes = len(set(n_train))
    rows = ["| preset | agents (sizes) | pass | workers | seconds | load avg |",
            "|---|---|---|---|---|---|"]
    with busy(args.busy), tempfile.TemporaryDirectory() as tmp:
        for name, workers in [("cold, one process", 1), ("cold, idle cores", None),
                              ("from the cache", None)]:
            if name != "from the cache":  # a fresh, empty cache folder
                os.environ["PARSEFL_CACHE"] = str(Path(tmp) / name.replace(" ", "_"))
            chosen = []

            def count(chosen=chosen) -> int:
                chosen.append(idle_cores())
                return chosen[-1]

            secs = plan_seconds(cfg, n_train, workers or count)
            used = workers or (chosen[-1] if chosen else "– (nothing to calibrate)")
            rows.append(f"| {preset.stem} | {len(n_train)} ({sizes}) | {name} | {used} | "
                        f"{secs:.1f} | {os.getloadavg()[0]:.1f} |")
            print(rows[-1], flush=True)
    if not args.quick:
        label = f", {args.label}" if args.label else ""
        append_results(f"Privacy: planning a private run (noise calibration){label}", rows, [
            f"epsilon {args.epsilon}, delta 1e-5, {args.rounds} rounds, batch {args.batch}, RDP; "
            f"{'beside ' + str(args.busy) + ' CPU-bound process(es)' if args.busy else 'quiet'}"
            ". Workers = the processes calibrating (the idle cores, counted by "
            "runtime.threads). From the cache: one accountant call per size checks each kept "
            "value."])


if __name__ == "__main__":
    main()
