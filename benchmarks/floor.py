"""Compute floor: parsefl's vectorized round time divided by the time of the same forward and
backward steps (same stacked models, same loss, same batch shapes, same optimizer) in a plain
single-process PyTorch loop with no federation machinery (no handshake, batch streams,
gossip, byte accounting or diagnostics).

    python benchmarks/floor.py              # N = 32, 128, 512; appended to RESULTS.md
    python benchmarks/floor.py --quick      # N = 32; prints only
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_results, scaling_overrides  # noqa: E402


def plain_round(groups: list, steps: int, batch: int) -> None:
    """One round of the bare stacked training loop over the executor's groups."""
    for g in groups:
        g.bare_steps(steps, batch)


def measure(n: int, rounds: int) -> tuple[float, float]:
    from parsefl.config import load_config
    from parsefl.experiments.run.build import build_experiment

    cfg = load_config(None, scaling_overrides(n, "ring", "vectorized"))
    exp = build_experiment(cfg)
    steps, batch = cfg.train.local_steps, cfg.train.batch_size
    exp.loop.step(0)  # warm-up (handshake, plans, allocator)
    plain_round(exp.loop.executor.groups, steps, batch)
    # Alternate the two so that machine noise hits both alike.
    parsefl_t, floor_t = [], []
    for r in range(1, rounds + 1):
        start = time.perf_counter()
        exp.loop.step(r)
        parsefl_t.append(time.perf_counter() - start)
        start = time.perf_counter()
        plain_round(exp.loop.executor.groups, steps, batch)
        floor_t.append(time.perf_counter() - start)
    return float(np.median(parsefl_t)), float(np.median(floor_t))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    sizes = [32] if args.quick else [32, 128, 512]
    rows = ["| N | parsefl s/round | plain loop s/round | parsefl / floor |", "|---|---|---|---|"]
    for n in sizes:
        ours, floor = measure(n, 2 if args.quick else args.rounds)
        rows.append(f"| {n} | {ours:.3f} | {floor:.3f} | {ours / floor:.2f} |")
        print(rows[-1], flush=True)
    notes = ["Same workload as scaling.py (ring, 1 local epoch = 4 steps of 25); the plain loop "
             "reuses parsefl's stacked parameters, vmapped loss and optimizer, so the ratio is "
             "the cost of the federation machinery. Target: <= 1.3 at N = 128."]
    if not args.quick:
        append_results("Compute floor: parsefl round time / plain stacked PyTorch loop", rows,
                       notes)


if __name__ == "__main__":
    main()
