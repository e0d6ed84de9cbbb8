"""Compute floor: parsefl's vectorized round time divided by the time of the same forward and
backward steps (same stacked models, same loss, same batch shapes, same optimizer) in a plain
single-process PyTorch loop with no federation machinery (no handshake, batch streams,
gossip, byte accounting or diagnostics).

    python benchmarks/floor.py              # N = 32, 128, 512; appended to RESULTS.md
    python benchmarks/floor.py --quick      # N = 32; prints only
    python benchmarks/floor.py --gemm --sizes 1024 --threads 1,2   # against the GEMM limit
    python benchmarks/floor.py --bandwidth --threads 1              # memory GB/s (prints)

``--gemm`` (issue 27): the round against the hardware. Every matrix product of one round (mm,
addmm, bmm, baddbmm, as the vectorized backend issues them under vmap) is recorded with its
shapes; the **GEMM limit** is the time of exactly those products alone, each shape timed in a
tight loop on fresh tensors at the same thread count, summed over the round. The round's
FLOPs come from torch's FlopCounterMode. Target: round time <= 1.5x the limit at N = 1,024, on
one thread and on two.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

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


GEMMS = ("mm.default", "addmm.default", "bmm.default", "baddbmm.default")


def record_gemms(step) -> tuple[Counter, float]:
    """(op, input shapes) -> count for one call of ``step``, and its FLOPs."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import FlopCounterMode

    calls: Counter = Counter()

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            op = str(func).removeprefix("aten.")  # e.g. "bmm.default"
            if op in GEMMS:
                shapes = tuple(tuple(a.shape) for a in args if isinstance(a, torch.Tensor))
                calls[(op, shapes)] += 1
            return func(*args, **(kwargs or {}))

    flops = FlopCounterMode(display=False)
    with flops, Record():
        step()
    return calls, float(flops.get_total_flops())


def gemm_time(op: str, shapes: tuple, repeat: int = 5) -> float:
    """Median seconds of one product of these shapes, alone, on fresh float32 tensors."""
    tensors = [torch.randn(*s) for s in shapes]
    fn = {"mm.default": torch.mm, "bmm.default": torch.bmm,
          "addmm.default": torch.addmm, "baddbmm.default": torch.baddbmm}[op]
    fn(*tensors)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn(*tensors)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def gemm_row(n: int, threads: int, rounds: int) -> dict:
    from parsefl.config import load_config
    from parsefl.experiments.run.build import build_experiment

    torch.set_num_threads(threads)
    exp = build_experiment(load_config(None, [*scaling_overrides(n, "ring", "vectorized"),
                                              f"runtime.threads={threads}"]))
    exp.loop.step(0)
    calls, flops = record_gemms(lambda: exp.loop.step(1))
    limit = sum(count * gemm_time(op, shapes) for (op, shapes), count in calls.items())
    times = []
    for r in range(2, 2 + rounds):
        start = time.perf_counter()
        exp.loop.step(r)
        times.append(time.perf_counter() - start)
    round_s = float(np.median(times))
    return {"n": n, "threads": threads, "round_s": round_s, "limit_s": limit,
            "gflop": flops / 1e9, "products": sum(calls.values()), "shapes": len(calls),
            "ratio": round_s / limit}


def gemm_main(sizes: list[int], threads: list[int], rounds: int, quick: bool) -> None:
    import os

    rows = ["| N | threads | round s | GEMM limit s | ratio | GFLOP/round | GFLOP/s (round) | "
            "GFLOP/s (limit) | products (shapes) | load avg |", "|---" * 10 + "|"]
    for n in sizes:
        for t in threads:
            r = gemm_row(n, t, rounds)
            rows.append(f"| {n} | {t} | {r['round_s']:.3f} | {r['limit_s']:.3f} | "
                        f"{r['ratio']:.2f} | {r['gflop']:.1f} | {r['gflop'] / r['round_s']:.1f}"
                        f" | {r['gflop'] / r['limit_s']:.1f} | {r['products']} ({r['shapes']})"
                        f" | {os.getloadavg()[0]:.1f} |")
            print(rows[-1], flush=True)
    if not quick:
        append_results("Compute floor: the round against the GEMM limit (issue 27)", rows, [
            "Same workload as scaling.py (ring, 1 local epoch = 4 steps of 25). GEMM limit = "
            "the round's own matrix products (recorded with their shapes under vmap), each "
            "timed alone on fresh tensors at the same thread count, summed; ratio = round / "
            "limit (target <= 1.5 at N = 1,024, 1 and 2 threads). GFLOP from torch's "
            "FlopCounterMode over one round."])


def bandwidth(n_floats: int, threads: int, repeat: int = 5) -> dict[str, float]:
    """GB/s of a copy (one read, one write) and an ``add_`` (two reads, one write) over float32
    tensors of ``n_floats`` elements, best of ``repeat``: the memory side of the limit (Adam
    reads and writes the whole stacked state every step)."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n_floats), torch.empty(n_floats)
    ops = {"copy": (lambda: b.copy_(a), 2), "add_": (lambda: a.add_(b, alpha=0.5), 3)}
    out = {}
    for name, (fn, touched) in ops.items():
        fn()
        best = min(_timed(fn) for _ in range(repeat))
        out[name] = touched * n_floats * 4 / best / 1e9
    return out


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--gemm", action="store_true", help="the round against the GEMM limit")
    parser.add_argument("--sizes", default=None, help="agent counts, e.g. 1024")
    parser.add_argument("--threads", default="1,2", help="--gemm: torch thread counts")
    parser.add_argument("--bandwidth", action="store_true",
                        help="GB/s of copy and add_ over the stacked parameters' size at N = "
                             "1,024 of this workload (55.2 M float32); prints only")
    args = parser.parse_args()
    if args.bandwidth:
        for t in [int(t) for t in args.threads.split(",")]:
            got = bandwidth(55_224_320, t)
            print(f"threads {t}: copy {got['copy']:.1f} GB/s, add_ {got['add_']:.1f} GB/s "
                  f"(load avg {os.getloadavg()[0]:.1f})", flush=True)
        return
    if args.gemm:
        gemm_main([int(n) for n in (args.sizes or ("128" if args.quick else "1024")).split(",")],
                  [int(t) for t in args.threads.split(",")], 2 if args.quick else args.rounds,
                  args.quick)
        return
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
