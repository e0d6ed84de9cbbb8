"""Datasets end to end: bring-your-own npz through a run, imperfections, describe, auto mix."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from parsefl.config import load_config
from parsefl.experiments.run.build import build_experiment
from parsefl.experiments.run.simulate import run_experiment

SMALL = ["partition.name=iid", "model.dim=9", "model.encoder.params={hidden: [8]}",
         "train.local_steps=2", "rounds=2"]


@pytest.fixture
def npz_file(tmp_path):
    rng = np.random.default_rng(0)
    y = np.repeat(["walk", "run", "sit"], 40)
    path = tmp_path / "mine.npz"
    np.savez(path, x_watch=rng.normal(size=(120, 6)) + (y == "run")[:, None],
             x_phone=rng.normal(size=(120, 2, 5)), y=y,
             agent=np.tile(np.arange(4), 30))
    return path


def test_npz_round_trip_through_a_run(npz_file, tmp_path):
    cfg = load_config(None, [f"data.name=npz:{npz_file}", "mix={watch: 2, phone+watch: 2}",
                             *SMALL])
    res = run_experiment(cfg, tmp_path / "run")
    assert json.loads((tmp_path / "run" / "results.json").read_text()) == res
    assert set(res["final"]["accuracy"]["groups"]) == {"watch", "watch+phone"}
    assert res["dataset"] == f"npz:{npz_file}"


def test_natural_partition_from_the_agent_array(npz_file):
    cfg = load_config(None, [f"data.name=npz:{npz_file}", "mix={watch: 2, phone+watch: 2}",
                             *SMALL, "partition.name=natural", "data.params={test_fraction: 0.25}"])
    exp = build_experiment(cfg)
    assert sum(a.n_samples for a in exp.agents) == 90
    assert len({a.n_samples for a in exp.agents}) >= 1


def test_auto_mix_and_encoder_follow_the_dataset():
    cfg = load_config(None, ["data.name=synthetic_pid", "partition.name=iid"])
    exp = build_experiment(cfg)
    assert [a.group for a in exp.agents] == ["m1"] * 4 + ["m2"] * 4 + ["m1+m2"] * 4
    assert type(exp.agents[0].model.trunks["m1"]).__name__ == "MLPTrunk"


def test_imperfections_shape_the_training_views():
    base = ["data.name=synthetic_pid", "mix={m1+m2: 2}", *SMALL]
    clean = build_experiment(load_config(None, base)).agents[0]
    assert [(m, len(i)) for m, i in clean.views] == [(("m1", "m2"), clean.n_samples)]
    damaged = build_experiment(load_config(None, [
        *base, "imperfect.missing_modality=0.3", "imperfect.missing_labels=0.25",
        "imperfect.label_noise=0.1"])).agents[0]
    views = dict(damaged.views)
    assert set(views) == {("m1",), ("m2",), ("m1", "m2")}
    used = sum(len(i) for i in views.values())
    assert used == damaged.n_samples - round(0.25 * damaged.n_samples)
    flipped = (damaged.y != clean.y).float().mean().item()
    assert 0.05 < flipped < 0.15
    damaged.train_local()  # batches of one view at a time run through the model


def test_data_describe_cli(tmp_path):
    plot = tmp_path / "parts.png"
    proc = subprocess.run(
        [sys.executable, "-m", "parsefl.cli", "data", "describe", "synthetic_pid",
         "-o", "partition.alpha=0.3", "--plot", str(plot)],
        capture_output=True, text=True, timeout=120, env={"COLUMNS": "200", **_env()})
    assert proc.returncode == 0, proc.stderr
    assert "m1+m2" in proc.stdout and "samples" in proc.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _env():
    import os

    return {k: v for k, v in os.environ.items() if k != "COLUMNS"}
