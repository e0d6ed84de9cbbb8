"""`parsefl launch` (2 processes, gloo on localhost) gives the simulator's numbers with agents
that drop out, join late and lose a modality for a while."""

from __future__ import annotations

import torch

from parsefl.config import load_config
from parsefl.experiments.distributed.launcher import launch
from parsefl.experiments.run.simulate import run_experiment

DYN = [
    "data.name=synthetic_pid", "data.params={label: redundancy, n_samples: 600}",
    "mix={m1: 2, m2: 2, m1+m2: 2}", "partition.name=iid", "model.dim=12",
    "model.encoder.params.hidden=[16]", "device=cpu", "diagnostics.gradient_cosine=false",
    "rounds=4", "eval_every=2", "dynamics.membership.offline=0.3",
    "dynamics.membership.join={3: 2}",
    "dynamics.modalities.events=[{agent: 5, modality: m2, lose: 1, regain: 3}]",
]


def _strip(results: dict) -> dict:
    return {k: v for k, v in results.items()
            if k not in ("wall_time_s", "diagnostics", "ablations", "distributed")}


def test_launch_with_a_membership_schedule_gives_the_simulator_numbers(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        # both on the reference backend: the same numbers, bit for bit (stacked workers are
        # checked against the vectorized simulator in test_distributed_vectorized.py)
        sim = run_experiment(load_config(None, [*DYN, "runtime.backend=reference"]),
                             tmp_path / "sim")
    finally:
        torch.set_num_threads(threads)
    dist = launch(None, [*DYN, "runtime.backend=reference"], nproc=2,
                  out_dir=tmp_path / "dist", wall_timeout_s=120)
    assert _strip(dist) == _strip(sim)
    assert not dist["distributed"]["lost_peers"] and dist["distributed"]["missing_agents"] == []
    timeline = sim["dynamics"]["timeline"]
    assert timeline["3"] == [{"round": 0, "modalities": ["m2"], "online": False},
                             {"round": 2, "modalities": ["m2"], "online": True}]
    assert [(e["round"], e["modalities"], e["online"]) for e in timeline["5"]] == [
        (0, ["m1", "m2"], True), (1, ["m1"], True), (2, ["m1"], False), (3, ["m1", "m2"], True)]
