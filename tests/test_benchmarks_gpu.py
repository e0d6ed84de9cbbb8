"""benchmarks/gpu.py: the CI smoke run (``--device cpu --quick``) and its size planner."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"


def _gpu_module():
    spec = importlib.util.spec_from_file_location("bench_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One ``--device cpu --quick`` run (about 15 s: two fresh processes import torch)."""
    out = tmp_path_factory.mktemp("gpu") / "gpu.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--threads", "1",
         "--json", str(out)], capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(out.read_text()), proc.stdout


def test_quick_cpu_run_writes_sane_json(quick_run):
    doc, stdout = quick_run
    rows = doc["rows"]
    assert [r["kind"] for r in rows] == ["check", "size"]
    check, size = rows
    # The same run twice on the CPU: bit for bit equal.
    assert check["status"] == "ok" and check["against"] == "cpu" and check["n"] == 6
    assert check["max_abs_param_diff"] == 0.0 and check["max_acc_diff"] == 0.0
    assert check["losses_cpu"] == check["losses_device"] and len(check["losses_cpu"]) == 2
    assert all(0.0 < loss < 20.0 for loss in check["losses_cpu"])
    assert 0.0 <= check["mean_acc_cpu"] <= 1.0
    assert size["status"] == "ok" and size["n"] == 16 and size["rounds_timed"] == 1
    assert 0.0 < size["s_per_round"] < 60.0 and 0.0 < size["build_s"] < 120.0
    assert 100.0 < size["host_peak_mib"] < 8192.0
    assert 0.0 < size["loss"] < 20.0
    assert "gpu_peak_mib" not in size  # no GPU figures on the CPU
    assert doc["meta"]["budget_s"] == 420.0 and "torch" in doc["meta"]["machine"]
    assert "| 16 | cpu | ok |" in stdout


def _ok(n, build_s, warmup_s, s_per_round, host_mib, **gpu):
    return {"kind": "size", "status": "ok", "n": n, "build_s": build_s, "warmup_s": warmup_s,
            "s_per_round": s_per_round, "host_peak_mib": host_mib, **gpu}


def test_plan_extrapolates_linearly_from_the_largest_size():
    gpu = _gpu_module()
    assert gpu.plan(1000, [], 3, 400.0) == (3, "")  # nothing measured yet: run it
    done = [_ok(100, 50.0, 1.0, 9.0, 10.0), _ok(1000, 10.0, 1.0, 0.5, 100.0)]
    # 10x the largest size: fixed = 15 + 10 * (10 + 1) = 125 s; a round 5 s; 3 rounds fit.
    assert gpu.plan(10_000, done, 3, 400.0) == (3, "")
    # 150 s left: (150 - 125) / 5 = 5 rounds fit, capped at 3; 135 s left: 2 rounds.
    assert gpu.plan(10_000, done, 3, 135.0) == (2, "")
    rounds, why = gpu.plan(10_000, done, 3, 129.0)
    assert rounds == 0 and why == "needs ~130 s, 129 s left"


def test_plan_skips_a_size_that_cannot_fit_in_gpu_memory():
    gpu = _gpu_module()
    done = [_ok(1000, 1.0, 0.1, 0.01, 10.0, gpu_peak_mib=2048.0, gpu_total_mib=100_000.0)]
    assert gpu.plan(10_000, done, 3, 400.0) == (3, "")  # 20 GiB of 98 GiB
    rounds, why = gpu.plan(100_000, done, 3, 400.0)
    assert rounds == 0 and why == "needs ~200 GiB of GPU memory"


@pytest.mark.parametrize("n", [3, 10])
def test_overrides_split_the_mix_in_thirds(n):
    gpu = _gpu_module()
    mix = next(o for o in gpu.overrides(n, "cpu", 1) if o.startswith("mix="))
    third = n // 3
    assert mix == f"mix={{fou: {third}, pix: {third}, fou+pix: {n - 2 * third}}}"


def test_record_appends_the_gpu_table_and_states_the_targets(tmp_path):
    gpu = _gpu_module()
    dev = {"gpu": "NVIDIA H200", "gpu_total_mib": 140_000.0}
    rows = [
        {"kind": "check", "n": 30, "device": "cuda", "status": "ok", "rounds": 3,
         "max_abs_param_diff": 2e-6, "max_rel_loss_diff": 1e-7, "mean_acc_diff": 0.0,
         "tolerance": {"param": 1e-3, "loss_rel": 1e-4, "mean_acc": 0.01}},
        {**_ok(1000, 5.0, 1.0, 0.05, 2000.0, gpu_peak_mib=1500.0, **dev), "device": "cuda"},
        {**_ok(10_000, 50.0, 2.0, 0.5, 9000.0, gpu_peak_mib=15_000.0, **dev), "device": "cuda",
         "kib_per_agent": {"stacked parameters": 169.04, "data: per-agent tensors": 85.6}},
        {"kind": "size", "n": 100_000, "device": "cuda", "status": "skipped",
         "why": "needs ~535 s, 300 s left"},
    ]
    meta = {"command": "benchmarks/gpu.py --device cuda", "machine": "Linux, 16 CPU cores",
            "date": "2026-11-28 18:30:00 UTC", "load_average": [1.0, 0.5, 0.25], "wall_s": 200.0}
    src = tmp_path / "gpu.json"
    src.write_text(json.dumps({"meta": meta, "rows": rows}))
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n")
    gpu.record(src, results)
    text = results.read_text()
    assert text.startswith("# Benchmark results\n\n## GPU: vectorized backend")
    assert "(2026-11-28)" in text and "NVIDIA H200; load average 1.0, 0.5, 0.2, 200 s" in text
    assert "| 1,000 | cuda | ok | 5.0 | 0.0500 | 1,500 | 1.500 | 2,000 |" in text
    assert "| 10,000 | cuda | ok | 50.0 | 0.5000 | 15,000 | 1.500 | 9,000 |" in text
    assert "| 100,000 | cuda | skipped: needs ~535 s, 300 s left |" in text
    assert "max |Δparameter| 2.00e-06 (tol 0.001)" in text and text.count(": ok") == 1
    assert "- 10,000 agents under 1 s per round: 0.500 s, met" in text
    assert "- 100,000 agents run: NOT met (see the table)" in text
    assert ("- KiB per agent on the device at N = 10,000: stacked parameters 169, "
            "data: per-agent tensors 86") in text


def test_quick_run_breaks_memory_down_by_category(quick_run):
    """N = 16: 5 fou agents (18,772 parameters), 5 pix (39,764), 6 fou+pix (71,272)."""
    kib = quick_run[0]["rows"][1]["kib_per_agent"]
    params = (5 * 18_772 + 5 * 39_764 + 6 * 71_272) * 4 / 16 / 1024
    assert kib["stacked parameters"] == pytest.approx(params, rel=1e-12)
    assert "per-agent model parameters" not in kib  # views of the stacked rows: no bytes
    assert kib["stacked gradients"] == pytest.approx(params, rel=1e-12)
    # Adam: two states per parameter plus one scalar step per tensor.
    assert 2 * params < kib["stacked optimizer state"] < 2 * params + 0.1
    # 100 samples each: the inputs are read from the dataset's arrays (no copy); the groups
    # hold their agents' int64 labels and int64 rows of the dataset, and each group's int64
    # row numbers and offsets; the agents' own tensors are views of these, but for the int64
    # sample indices of the agent's one view.
    data = (16 * 100 * 8 * 2 + 16 * 2 * 8) / 16 / 1024
    assert kib["data: stacked copies"] == pytest.approx(data, rel=1e-12)
    assert kib["data: per-agent tensors"] == pytest.approx(100 * 8 / 1024, rel=1e-12)
