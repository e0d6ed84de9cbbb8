"""GPU: seconds per round, build time and peak memory for N = 1,000 / 10,000 / 100,000 agents on
the vectorized backend, plus a CPU≡GPU check at small N.

Workload: scaling.py's (PARSE, fou + pix views shaped like mfeat's, mix 1:1:1, 100 training
samples per agent, 4 local steps of 25, ring), but the data is drawn in memory by a dataset
registered here (``gpu_bench``): no file, no network, no parsefl data cache — the GPU machine
has none. Each size runs in a fresh subprocess (clean peak memory) under what is left of
``--budget-s``; a size whose time or memory, extrapolated from the sizes before it, does not fit
is skipped and says why.

    python benchmarks/gpu.py --device cuda --json gpu.json    # a GPU machine, < 8 minutes
    python benchmarks/gpu.py --device cpu --quick --json g.json  # CI smoke run, seconds
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_report import record, table, write_json  # noqa: E402

SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (16,)
CHECK_N, CHECK_ROUNDS = 30, 3
# CPU≡GPU tolerance after CHECK_ROUNDS rounds of Adam (lr 1e-3): float32 kernels differ in
# summation order (~1e-7 relative per op); Adam's normalisation can turn that into up to one
# step (lr) on a parameter whose gradient is ~0, hence 1e-3 on parameters. Mean test accuracy
# within 0.01 (2 of the 200 test samples).
TOL_PARAM, TOL_LOSS, TOL_ACC = 1e-3, 1e-4, 0.01
STARTUP_S = 15.0  # a child's interpreter + torch + parsefl import, before building
DATASET = "gpu_bench"


def _register_dataset() -> None:
    """``gpu_bench``: scaling.py's mfeat-like data (10 classes, class means plus noise), drawn
    in float32 chunks so that 10 million rows fit in memory without a float64 copy."""
    from parsefl.data.base import MultimodalDataset, Split
    from parsefl.registry import DATASETS

    if DATASET in DATASETS:
        return

    @DATASETS.register(DATASET, "mfeat-shaped synthetic data drawn in memory (gpu.py)")
    def gpu_bench(seed: int, n_agents: int = 8, per_agent: int = 100,
                  n_test: int = 200) -> MultimodalDataset:
        rng = np.random.default_rng(seed)
        n = n_agents * per_agent + n_test
        y = rng.integers(0, 10, size=n)
        x = {}
        for m, d in (("fou", 76), ("pix", 240)):
            centers = rng.standard_normal((10, d), dtype=np.float32)
            arr = np.empty((n, d), np.float32)
            for lo in range(0, n, 1 << 20):
                hi = min(n, lo + (1 << 20))
                arr[lo:hi] = rng.standard_normal((hi - lo, d), dtype=np.float32) * 2.0
                arr[lo:hi] += centers[y[lo:hi]]
            arr *= np.float32(5.0 ** -0.5)  # unit variance, as standardized data; in place
            x[m] = arr
        tr = n - n_test
        return MultimodalDataset(
            DATASET, ("fou", "pix"), 10, Split({m: v[:tr] for m, v in x.items()}, y[:tr]),
            Split({m: v[tr:] for m, v in x.items()}, y[tr:]), tuple(str(c) for c in range(10)))


def overrides(n: int, device: str, threads: int) -> list[str]:
    third = n // 3
    mix = f"{{fou: {third}, pix: {third}, fou+pix: {n - 2 * third}}}"
    return [f"data.name={DATASET}", f"data.params={{n_agents: {n}}}", f"mix={mix}",
            "partition.name=iid", "partition.min_samples=1", "topology.name=ring",
            "train.batch_size=25", "train.local_steps=4", "eval_every=1000000",
            "diagnostics.gradient_cosine=false", "runtime.backend=vectorized",
            f"runtime.threads={threads}", f"device={device}", "model.encoder.name=mlp"]


def _build(n: int, device: str, threads: int):
    _register_dataset()
    from parsefl.config import load_config
    from parsefl.experiments.run.build import build_experiment

    return build_experiment(load_config(None, overrides(n, device, threads)))


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(n: int, device: str, rounds: int, threads: int) -> dict:
    """One size, in this process: build time, median s/round, GPU and host peaks."""
    import torch

    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.init()  # seeding before CUDA is up records a traceback per call
    start = time.perf_counter()
    exp = _build(n, device, threads)
    _sync(device)
    build = time.perf_counter() - start
    mib = 1024 ** 2
    gpu = {}
    if cuda:  # the build's peak (per-agent models and stacked copies), then the rounds' own
        gpu = {"gpu": torch.cuda.get_device_name(),
               "gpu_after_build_mib": torch.cuda.memory_allocated() / mib,
               "gpu_build_peak_mib": torch.cuda.max_memory_allocated() / mib,
               "gpu_total_mib": torch.cuda.get_device_properties(0).total_memory / mib}
        torch.cuda.reset_peak_memory_stats()
    times, loss = [], float("nan")
    for r in range(rounds + 1):  # round 0 is the warm-up
        _sync(device)
        t0 = time.perf_counter()
        loss = exp.loop.step(r).loss
        _sync(device)
        times.append(time.perf_counter() - t0)
    row = {"kind": "size", "n": n, "device": device, "status": "ok", "build_s": build,
           "warmup_s": times[0], "s_per_round": float(np.median(times[1:])),
           "rounds_timed": rounds, "loss": loss,
           "host_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    row["kib_per_agent"] = _breakdown(exp, n)
    if cuda:
        rounds_peak = torch.cuda.max_memory_allocated() / mib
        row |= gpu | {"gpu_rounds_peak_mib": rounds_peak,
                      "gpu_peak_mib": max(rounds_peak, gpu["gpu_build_peak_mib"])}
    return row


def _breakdown(exp, n: int) -> dict:
    """KiB per agent by category of the tensors on the experiment's device (memory.py's
    ledger, which reads the vectorized executor's internals: an error is recorded, not raised,
    if they have changed)."""
    try:
        from memory import attribute

        led = attribute(exp, exp.device.type, python=False)
    except (ImportError, AttributeError, TypeError, KeyError) as exc:
        return {"error": repr(exc)[:300]}
    return {k: v / n / 1024 for k, v in led.bytes.items() if v}


def _trained(n: int, device: str, rounds: int, threads: int) -> tuple[list, np.ndarray, list]:
    """Per-round losses, every agent's parameters (flattened, on the host) and test accuracy."""
    import torch

    exp = _build(n, device, threads)
    losses = [exp.loop.step(r).loss for r in range(rounds)]
    exp.loop.sync()
    flat = np.concatenate([p.detach().cpu().numpy().ravel() for a in exp.agents
                           for p in a.weights().values()])
    accs = []
    for a in exp.agents:
        pred = a.predict(exp.test_x)
        accs.append(float((pred == exp.test_y).to(torch.float32).mean()))
    return losses, flat, accs


def check(n: int, device: str, rounds: int, threads: int) -> dict:
    """The same run on the CPU and on ``device``: largest differences against the tolerance."""
    import torch

    loss_c, par_c, acc_c = _trained(n, "cpu", rounds, threads)
    loss_d, par_d, acc_d = _trained(n, device, rounds, threads)
    diffs = {"max_abs_param_diff": float(np.max(np.abs(par_c - par_d))),
             "max_rel_loss_diff": max(abs(a - b) / max(abs(a), 1e-12)
                                      for a, b in zip(loss_c, loss_d, strict=True)),
             "max_acc_diff": max(abs(a - b) for a, b in zip(acc_c, acc_d, strict=True)),
             "mean_acc_diff": abs(float(np.mean(acc_c)) - float(np.mean(acc_d)))}
    ok = (diffs["max_abs_param_diff"] <= TOL_PARAM and diffs["max_rel_loss_diff"] <= TOL_LOSS
          and diffs["mean_acc_diff"] <= TOL_ACC)
    return {"kind": "check", "n": n, "device": device, "against": "cpu", "rounds": rounds,
            "params": int(par_c.size), "losses_cpu": loss_c, "losses_device": loss_d,
            "mean_acc_cpu": float(np.mean(acc_c)), "mean_acc_device": float(np.mean(acc_d)),
            **diffs, "tolerance": {"param": TOL_PARAM, "loss_rel": TOL_LOSS, "mean_acc": TOL_ACC},
            "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
            "status": "ok" if ok else "mismatch"}


def _child(args: list[str], timeout: float) -> dict:
    """Run ``gpu.py --one ...`` in a fresh process; its last stdout line is the JSON row."""
    try:
        out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                             timeout=max(1.0, timeout))
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "timeout_s": round(timeout, 1)}
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        tail = " / ".join(out.stderr.strip().splitlines()[-6:]) or "(no output)"
        return {"status": "failed", "error": tail[-1500:], "rc": out.returncode}
    return json.loads(lines[-1])


def _host_available_mib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("inf")


def plan(n: int, done: list[dict], rounds: int, left: float) -> tuple[int, str]:
    """Timed rounds that fit for size ``n`` (0: skip) and why, extrapolated linearly in N from
    the largest size measured so far (build, round time and memory all grow with N)."""
    prev = [d for d in done if d.get("kind") == "size" and d.get("status") == "ok"]
    if not prev:
        return rounds, ""
    last = max(prev, key=lambda d: d["n"])
    k = n / last["n"]
    if "gpu_peak_mib" in last and last["gpu_peak_mib"] * k > 0.92 * last["gpu_total_mib"]:
        return 0, f"needs ~{last['gpu_peak_mib'] * k / 1024:.0f} GiB of GPU memory"
    if last["host_peak_mib"] * k > 0.9 * _host_available_mib():
        return 0, f"needs ~{last['host_peak_mib'] * k / 1024:.0f} GiB of host memory"
    fixed = STARTUP_S + k * (last["build_s"] + last["warmup_s"])
    fit = min(rounds, int((left - fixed) / max(k * last["s_per_round"], 1e-9)))
    if fit < 1:
        return 0, f"needs ~{fixed + k * last['s_per_round']:.0f} s, {left:.0f} s left"
    return fit, ""


def run_all(args: argparse.Namespace) -> list[dict]:
    start = time.perf_counter()
    base = ["--device", args.device, "--threads", str(args.threads)]
    rows: list[dict] = []

    def emit(row: dict) -> None:
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.json:
            write_json(args.json, rows, {
                "wall_s": time.perf_counter() - start, "budget_s": args.budget_s,
                "overrides_at_n_1000": overrides(1000, args.device, args.threads)})

    check_n, check_rounds = (6, 2) if args.quick else (CHECK_N, CHECK_ROUNDS)
    got = _child(["--check", str(check_n), "--rounds", str(check_rounds), *base],
                 min(120.0, args.budget_s))
    emit({"kind": "check", "n": check_n, "device": args.device, **got})
    for n in args.sizes or (QUICK_SIZES if args.quick else SIZES):
        left = args.budget_s - (time.perf_counter() - start)
        rounds, why = plan(n, rows, 1 if args.quick else args.rounds, left)
        if not rounds:
            emit({"kind": "size", "n": n, "device": args.device, "status": "skipped",
                  "why": why})
            continue
        got = _child(["--one", str(n), "--rounds", str(rounds), *base], left)
        emit({"kind": "size", "n": n, "device": args.device, **got})
    print(table(rows))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    parser.add_argument("--quick", action="store_true", help="N = 16 and a 6-agent check")
    parser.add_argument("--sizes", type=int, nargs="+", help="agent counts (default 1k/10k/100k)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds after a warm-up")
    parser.add_argument("--budget-s", type=float, default=420.0, help="wall-clock budget")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--json", type=Path, help="write every row and the machine here")
    parser.add_argument("--record", type=Path, help="append this --json file to RESULTS.md")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--check", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.device, args.rounds, args.threads)))
        return
    if args.check:
        print(json.dumps(check(args.check, args.device, args.rounds, args.threads)))
        return
    if args.record:
        record(args.record)
        return
    rows = run_all(args)
    if any(r["status"] in ("failed", "mismatch") for r in rows):
        sys.exit(1)




if __name__ == "__main__":
    main()
