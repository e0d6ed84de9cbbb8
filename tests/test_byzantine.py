"""Done-when checks of issue 12: an attacker and a robust aggregator through `parsefl run` and
`parsefl launch` (the attacker a real process sending crafted frames) give the same honest
numbers; NaN frames from an attacking process are rejected by the real distributed runtime;
results.json reports the adversary, who is honest, and the rejections."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from parsefl.config import load_config
from parsefl.experiments.distributed.launcher import launch
from parsefl.experiments.run.simulate import run_experiment

BASE = [
    "data.name=synthetic_pid", "data.params={label: redundancy, n_samples: 600}",
    "mix={m1: 2, m2: 2, m1+m2: 2}", "partition.name=iid", "model.dim=12",
    "model.encoder.params.hidden=[16]", "device=cpu", "diagnostics.gradient_cosine=false",
    "rounds=3", "eval_every=3", "runtime.threads=1",
]
ATTACK = ["adversary={agents: [3], attack: sign_flip}", "aggregation.name=clipped"]
BOUND_S = 120


def _simulate(tmp, overrides):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        # the workers run agents one at a time: the reference backend's numbers, bit for bit
        return run_experiment(load_config(None, [*overrides, "runtime.backend=reference"]), tmp)
    finally:
        torch.set_num_threads(threads)


def _strip(results):
    return {k: v for k, v in results.items()
            if k not in ("wall_time_s", "diagnostics", "ablations", "distributed")}


def test_results_report_the_adversary_and_honest_headline(tmp_path):
    res = _simulate(tmp_path, [*BASE, *ATTACK])
    assert res["adversary"] == {"agents": [3], "attack": "sign_flip", "from_round": 0,
                                "params": {}}
    assert [a["honest"] for a in res["agents"]] == [True, True, True, False, True, True]
    honest = [a["accuracy"] for a in res["agents"] if a["honest"]]
    assert res["final"]["accuracy"]["overall"] == pytest.approx(sum(honest) / len(honest))
    assert res["rejected_messages"] == {}


def test_launch_with_an_attacker_gives_the_simulator_honest_numbers(tmp_path):
    sim = _simulate(tmp_path / "sim", [*BASE, *ATTACK])
    dist = launch(None, [*BASE, *ATTACK], nproc=2, out_dir=tmp_path / "dist",
                  wall_timeout_s=BOUND_S)
    assert _strip(dist) == _strip(sim)


def test_nan_frames_from_an_attacking_process_are_rejected(tmp_path):
    overrides = [*BASE, "adversary={agents: [3], attack: nan}"]
    sim = _simulate(tmp_path / "sim", overrides)
    dist = launch(None, overrides, nproc=2, out_dir=tmp_path / "dist", wall_timeout_s=BOUND_S)
    # Agent 3 (rank 1 of 2: agents 3-5) sends NaN to each ring neighbour holding a component
    # in common; every such copy is rejected, in the simulator and on the wire alike.
    assert dist["rejected_messages"]["non_finite"] > 0
    assert dist["rejected_messages"] == sim["rejected_messages"]
    assert dist["distributed"]["rejected_messages"] > 0  # the wire counted them too
    assert _strip(dist) == _strip(sim)
    accuracies = [a["accuracy"] for a in dist["agents"]]
    assert all(a == a for a in accuracies)  # no NaN model anywhere


def test_cli_run_with_an_attacker(tmp_path):
    out = tmp_path / "cli"
    proc = subprocess.run(
        [sys.executable, "-m", "parsefl.cli", "run", *sum((["-o", o] for o in BASE), []),
         "-o", ATTACK[0], "-o", ATTACK[1], "--out", str(out)],
        capture_output=True, text=True, timeout=BOUND_S)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads((out / "results.json").read_text())
    assert res["adversary"]["agents"] == [3]


class _Stop(Exception):
    pass


@pytest.mark.parametrize("backend", ["reference", "vectorized"])
def test_resume_restores_the_rejection_counts(tmp_path, backend):
    """An attacked run stopped after round 2 and resumed reports the rejections of every
    round, as the run that never stopped (agent 3 sends NaN to its neighbours)."""
    from parsefl.experiments.run.simulate import run_experiment as run

    overrides = [*BASE, "rounds=4", "eval_every=2", "runtime.checkpoint_every=2",
                 f"runtime.backend={backend}", "train.local_steps=2",
                 "adversary={agents: [3], attack: nan}"]
    cfg = load_config(None, overrides)
    whole = _simulate(tmp_path / "whole", overrides)

    def stop(stats, ev):
        if stats.round == 2:
            raise _Stop

    with pytest.raises(_Stop):
        run(cfg, tmp_path / "cut", stop)  # rounds 0..2 done, the checkpoint after round 2
    resumed = run(cfg, tmp_path / "cut", resume=True)
    saved = json.loads((tmp_path / "cut" / "results.json").read_text())
    assert whole["rejected_messages"]["non_finite"] > 0
    assert saved["rejected_messages"] == resumed["rejected_messages"] == \
        whole["rejected_messages"]
