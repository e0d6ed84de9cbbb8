"""Convergence: validation split, plateau rule, flag agreement, rounds: auto."""

from __future__ import annotations

import json

import networkx as nx
import numpy as np
import pytest
from console import parsefl

from parsefl.config import load_config
from parsefl.errors import ConfigError
from parsefl.experiments.run.convergence import agree, hold_out, plateau_gain, plateaued
from parsefl.experiments.run.driver import RoundEnd, run_rounds
from parsefl.experiments.run.network_stop import StopRule
from parsefl.runtime import InMemoryTransport, RoundStats


def test_hold_out_is_stratified_disjoint_and_seeded():
    y = np.array([0] * 10 + [1] * 5 + [2] * 5)
    parts = [np.arange(20)]
    train, val = hold_out(parts, y, 0.2, seed=0)
    assert len(val[0]) == 4 and len(train[0]) == 16
    assert sorted(np.bincount(y[val[0]], minlength=3)) == [1, 1, 2]  # 2 of class 0, 1 each
    assert np.bincount(y[val[0]], minlength=3)[0] == 2
    assert set(train[0]).isdisjoint(val[0]) and set(train[0]) | set(val[0]) == set(range(20))
    again = hold_out(parts, y, 0.2, seed=0)[1]
    assert np.array_equal(again[0], val[0])


def test_hold_out_keeps_two_training_samples():
    y = np.array([0, 1, 1])
    train, val = hold_out([np.arange(3)], y, 0.49, seed=1)
    assert len(train[0]) == 2 and len(val[0]) == 1


def test_plateau_gain_compares_the_last_two_windows():
    # 50 rounds: window 10; last window rounds 41..50, the one before 31..40.
    curve = [(30, 0.5), (35, 0.60), (40, 0.70), (45, 0.71), (50, 0.72)]
    assert plateau_gain(curve, 50) == pytest.approx(0.715 - 0.65)
    assert not plateaued(curve, 50)
    flat = [(30, 0.7), (35, 0.70), (40, 0.70), (45, 0.703), (50, 0.705)]
    assert plateau_gain(flat, 50) == pytest.approx(0.004)
    assert plateaued(flat, 50)
    assert plateau_gain([(50, 0.7)], 50) is None and not plateaued([(50, 0.7)], 50)


def test_agents_agree_on_the_and_of_their_flags_by_flooding():
    path = nx.path_graph(4)  # diameter 3: agent 0 hears agent 3 after three exchanges
    assert agree({0: True, 1: True, 2: True, 3: True}, path, InMemoryTransport())
    assert not agree({0: True, 1: True, 2: True, 3: False}, path, InMemoryTransport())


def test_a_hook_may_end_the_run_early():
    class Loop:
        def step(self, r):
            return RoundStats(r, 0.0, __import__("collections").Counter())

        def sync(self):
            pass

    seen: list[int] = []

    def stop_at_3(end: RoundEnd) -> None:
        seen.append(end.round)
        end.last = end.round == 3

    run_rounds(Loop(), 10, [stop_at_3])
    assert seen == [0, 1, 2, 3]


def test_rounds_auto_needs_a_validation_split_and_sets_the_maximum():
    with pytest.raises(ConfigError, match="train.val_fraction"):
        load_config(None, ["rounds=auto"])
    cfg = load_config(None, ["rounds=auto", "train.val_fraction=0.1", "train.max_rounds=70"])
    assert cfg.rounds == 70 and cfg.train.stop == "plateau"


def test_the_warning_names_the_runs_that_had_not_plateaued():
    from parsefl.experiments.run.convergence import warn_unconverged

    results = {"parse/seed0": {"convergence": {"converged": True}},
               "dsgd_full/seed0": {"convergence": {"converged": False}},
               "old/seed0": {}}
    note = warn_unconverged(results)
    assert note is not None and note.startswith("warning: 1 of 3 runs had not plateaued")
    assert "dsgd_full/seed0" in note and "parse/seed0" not in note
    assert warn_unconverged({"a": {"convergence": {"converged": True}}}) is None


AUTO = ["data.name=synthetic_pid", "data.params={label: redundancy, n_samples: 600}",
        "mix={m1: 2, m2: 2, m1+m2: 2}", "partition.name=iid", "model.dim=12",
        "model.encoder.params.hidden=[16]", "device=cpu", "diagnostics.gradient_cosine=false",
        "rounds=auto", "train.val_fraction=0.2", "train.max_rounds=100", "eval_every=2"]


def test_rounds_auto_stops_at_the_same_round_in_the_simulator_and_under_launch(tmp_path):
    import torch

    from parsefl.experiments.run.simulate import run_experiment

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        # the workers run agents one at a time: the reference backend's numbers, bit for bit
        sim = run_experiment(load_config(None, [*AUTO, "runtime.backend=reference"]),
                             tmp_path / "sim")
    finally:
        torch.set_num_threads(threads)
    assert 20 <= sim["rounds_completed"] < 100  # stopped by the plateau, not the maximum
    assert sim["convergence"]["source"] == "validation" and sim["convergence"]["converged"]
    # the real console script: `parsefl launch --nproc 2` (two worker processes)
    args = [a for o in AUTO for a in ("-o", o)]
    done = parsefl("launch", *args, "--nproc", "2", "--out", str(tmp_path / "dist"),
                   timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    dist = json.loads((tmp_path / "dist" / "results.json").read_text())
    assert dist["rounds_completed"] == sim["rounds_completed"]
    assert dist["convergence"] == sim["convergence"]
    assert sim["stopped_by"] == "plateau" and (dist["stopped_by"], dist["phases"]) == (
        sim["stopped_by"], sim["phases"])
    assert dist["final"] == sim["final"]
    # the network rule (the default) decided: its record says every group stalled, and the
    # run ended at the first evaluation from min_rounds on where the recorded counts say so
    net = sim["convergence"]["network"]
    assert net["plateaued"] and set(net["groups"]) == {"m1", "m2", "m1+m2"}
    points = [(r, {g: tuple(v["curve"][k][2:]) for g, v in net["groups"].items()})
              for k, (r, *_) in enumerate(net["groups"]["m1"]["curve"])]
    rule = StopRule(net["patience"], net["smoothing"])
    first = next(d for d, _ in points if d >= 20 and rule.stalled(points, d))
    assert first == sim["rounds_completed"]
