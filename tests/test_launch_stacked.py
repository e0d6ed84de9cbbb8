"""`parsefl launch` workers stay on the stacked (vectorized) executor under an adversary,
compression (error feedback too) and per-kind periods, and give the simulator's numbers: two
real gloo processes, round-robin placement (most copies cross processes), relay paths. An
omniscient attack, which only one process can give the copies it reads, is refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from parsefl.config import load_config
from parsefl.experiments.distributed.launcher import launch
from parsefl.experiments.run.simulate import run_experiment

# As tests/test_distributed_vectorized.py: relay paths, round_robin (most edges cross).
TINY = ["data.name=synthetic_pid", "data.params={label: redundancy, n_samples: 600}",
        "mix={m1: 3, m2: 3, m1+m2: 3}", "partition.name=iid", "model.dim=12",
        "model.encoder.params.hidden=[16]", "device=cpu", "diagnostics.gradient_cosine=false",
        "train.local_steps=2", "rounds=3", "eval_every=3", "overlay.name=relay",
        "overlay.hops=2", "runtime.placement=round_robin"]

CASES = {  # agent 1 (rank 1) has peers in both processes: local and remote attacked copies
    "gaussian_median": ["adversary={agents: [1], attack: gaussian, params: {norm: 0.5}, "
                        "from_round: 1}", "aggregation.name=median"],
    "int8_sign_flip": ["communication.compressor=int8",
                       "adversary={agents: [1, 4], attack: sign_flip}"],
    "int8_periods": ["communication.compressor=int8",
                     "communication.kinds={head_r: {compressor: none, period: 2}}"],
    "topk_choco_periods": ["communication.compressor=topk", "communication.params={fraction: 0.5}",
                           "communication.error_feedback=true", "communication.gamma=0.5",
                           "communication.kinds={enc: {period: 2}}"],
}


def _simulate(overrides: list[str], out: Path) -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run_experiment(load_config(None, overrides), out)
    finally:
        torch.set_num_threads(threads)


def _launch(overrides: list[str], out: Path) -> dict:
    launch(None, overrides, nproc=2, out_dir=out, wall_timeout_s=120)
    return json.loads((out / "results.json").read_text())  # what the run recorded


def _same_parameters(a: Path, b: Path, atol: float) -> None:
    files = sorted((a / "checkpoints").glob("agent_*.safetensors"))
    assert len(files) == 9
    for f in files:
        ours, theirs = load_file(f), load_file(b / "checkpoints" / f.name)
        for name, value in ours.items():  # summation order differs: float tolerance
            assert torch.allclose(value, theirs[name], atol=atol), (f.name, name)


@pytest.mark.parametrize("case", sorted(CASES))
def test_stacked_workers_give_the_simulator_numbers(tmp_path: Path, case):
    overrides = [*TINY, *CASES[case]]
    sim = _simulate(overrides, tmp_path / "sim")
    dist = _launch(overrides, tmp_path / "dist")
    assert dist["distributed"]["backend"] == "vectorized"
    assert dist["distributed"]["wire_bytes"]["params_bytes"] > 0
    assert dist["communication"]["bytes_total"] == sim["communication"]["bytes_total"]
    assert [a["accuracy"] for a in dist["agents"]] == [a["accuracy"] for a in sim["agents"]]
    _same_parameters(tmp_path / "sim", tmp_path / "dist", atol=1e-6)


@pytest.mark.parametrize("attack", ["alie", "ipm", "dissensus"])
def test_an_omniscient_attack_is_refused_before_any_worker_starts(tmp_path: Path, attack):
    """An omniscient attacker reads its recipients' honest copies of the round; a worker has
    only its own process's, so the attack would be silently weaker than in the simulator
    (the contract: the same numbers everywhere, or refused at config time)."""
    args = [f"-o{o}" for o in [*TINY, f"adversary={{agents: [1], attack: {attack}}}"]]
    proc = subprocess.run([sys.executable, "-m", "parsefl.cli", "launch", "--nproc", "2",
                           "--out", str(tmp_path / "x"), *args],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"error: adversary.attack: '{attack}' is omniscient"), lines
    assert not (tmp_path / "x" / "logs").exists()


def test_what_the_vectorized_backend_refuses_launch_refuses_before_starting(tmp_path: Path):
    """Error feedback with an adversary: ``parsefl run`` refuses it with
    ``runtime.backend=vectorized``; so does ``parsefl launch``, at config time (no worker
    starts), with the same one line."""
    args = [f"-o{o}" for o in [*TINY, "runtime.backend=vectorized", "adversary={agents: [1]}",
                               "communication.compressor=int8",
                               "communication.error_feedback=true"]]
    proc = subprocess.run([sys.executable, "-m", "parsefl.cli", "launch", "--nproc", "2",
                           "--out", str(tmp_path / "x"), *args],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: runtime.backend: vectorized backend unavailable: error feedback with an "
        "adversary: receivers' public copies of an attacker differ, and the vectorized backend "
        "keeps one per sender"]
    assert not (tmp_path / "x" / "logs").exists()  # no worker was started
