"""A run whose loss becomes non-finite stops, is marked diverged, and compare flags it."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch
import yaml

from parsefl.config import load_config
from parsefl.experiments.run.divergence import Diverged, stop_if_diverged
from parsefl.experiments.run.simulate import run_experiment
from parsefl.experiments.sweeps.compare import run_and_summarize
from parsefl.experiments.sweeps.sweep import load_sweep

QUICK = ["data.name=synthetic_pid", "data.params={n_samples: 300}", "partition.name=iid",
         "mix={m1: 1, m1+m2: 1}", "model.dim=9", "model.encoder.params.hidden=[8]",
         "train.local_steps=5", "rounds=2", "train.optimizer=sgd"]


def _agent(i: int, loss: float, n: int = 4):
    return SimpleNamespace(id=i, last_loss=loss, views=[(("a",), torch.arange(n))])


def test_finite_losses_and_untrained_agents_are_not_divergence(tmp_path):
    cfg = load_config(None, QUICK)
    stats = SimpleNamespace(round=0, loss=0.5)
    stop_if_diverged(cfg, [_agent(0, 0.5), _agent(1, math.nan, n=1)], stats, tmp_path)
    stop_if_diverged(cfg, [_agent(0, math.nan, n=0)], SimpleNamespace(round=0, loss=math.nan),
                     tmp_path)
    assert not (tmp_path / "results.json").exists()


def test_non_finite_loss_stops_the_run_and_marks_it(tmp_path):
    cfg = load_config(None, [*QUICK, "train.lr=10"])
    with pytest.raises(Diverged) as info:
        run_experiment(cfg, tmp_path / "run")
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["diverged"] is True and results["diverged_round"] == 1
    assert results["diverged_agents"] == [1]
    assert "train.lr" in str(info.value) and info.value.exit_code == 1


def test_compare_leaves_diverged_runs_out_and_flags_them(tmp_path):
    overrides = {k: yaml.safe_load(v) for k, v in (q.split("=", 1) for q in QUICK)}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"overrides": overrides, "grid": {"train.lr": [0.01, 10.0]},
                                    "methods": ["local"], "seeds": [0]}))
    summary = run_and_summarize(load_sweep(path), tmp_path / "out", 1)
    assert list(summary) == ["train.lr=0.01"]  # the diverged point has no finished run
    md = (tmp_path / "out" / "summary.md").read_text()
    assert "Diverged" in md and "local seed 0 (train.lr=10.0) at round 1" in md
    assert len((tmp_path / "out" / "results.csv").read_text().splitlines()) == 1 + 3
