"""Whole runs on synthetic data: determinism, the synergy case, the run folder."""

from __future__ import annotations

import csv
import json

import pytest

from parsefl.config import load_config
from parsefl.experiments.run.simulate import run_experiment

SYNERGY = [
    "data.name=synthetic_pid", "data.params={label: synergy, n_samples: 1200}",
    "mix={m1: 2, m2: 2, m1+m2: 2}", "partition.name=iid", "model.dim=24",
    "model.encoder.params.hidden=[32]", "train.lr=0.003", "eval_every=5",
]


def _run(tmp_path, name, overrides):
    cfg = load_config(None, overrides)
    return run_experiment(cfg, tmp_path / name)


@pytest.fixture(scope="module")
def synergy_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("synergy")
    return tmp, _run(tmp, "run", [*SYNERGY, "rounds=20", "train.local_epochs=3"])


def test_synergy_is_solved_by_multimodal_agents_only(synergy_run):
    _, results = synergy_run
    groups = results["final"]["accuracy"]["groups"]
    assert groups["m1+m2"] >= 0.95
    assert 0.38 <= groups["m1"] <= 0.62  # chance is 0.5 on 240 balanced test samples
    assert 0.38 <= groups["m2"] <= 0.62


def test_results_json_has_the_documented_fields(synergy_run):
    tmp, results = synergy_run
    on_disk = json.loads((tmp / "run" / "results.json").read_text())
    assert on_disk == results
    for key in ("method", "dataset", "seed", "rounds_completed", "wall_time_s", "agents"):
        assert key in results
    assert results["rounds_completed"] == 20
    assert set(results["final"]["accuracy"]["groups"]) == {"m1", "m2", "m1+m2"}
    assert set(results["final"]["macro_f1"]["groups"]) == {"m1", "m2", "m1+m2"}
    assert results["communication"]["bytes_total"] > 0
    assert results["communication"]["bytes_per_link_per_round_max"] > 0
    agent = results["agents"][4]
    assert agent["id"] == 4 and agent["modalities"] == ["m1", "m2"]
    assert 0 <= agent["accuracy"] <= 1 and 0 <= agent["macro_f1"] <= 1
    rows = list(csv.DictReader((tmp / "run" / "metrics.csv").open()))
    assert [int(r["round"]) for r in rows] == [5, 10, 15, 20]
    assert float(rows[-1]["accuracy.overall"]) == pytest.approx(
        results["final"]["accuracy"]["overall"])
    assert (tmp / "run" / "config.yaml").read_text().startswith("method: parse")
    assert len(list((tmp / "run" / "checkpoints").glob("agent_*.safetensors"))) == 6


def test_same_seed_gives_identical_results(tmp_path):
    quick = [*SYNERGY, "rounds=3", "data.params.label=mixed"]
    first = _run(tmp_path, "a", quick)
    second = _run(tmp_path, "b", quick)
    other = _run(tmp_path, "c", [*quick, "seed=1"])
    strip = lambda r: {k: v for k, v in r.items() if k != "wall_time_s"}  # noqa: E731
    assert strip(first) == strip(second)
    assert first["agents"] != other["agents"]


def test_bytes_total_is_the_sum_of_the_per_round_bytes(tmp_path):
    results = _run(tmp_path, "r", [*SYNERGY, "rounds=2", "eval_every=1"])
    rows = list(csv.DictReader((tmp_path / "r" / "metrics.csv").open()))
    assert sum(int(r["bytes_round"]) for r in rows) == results["communication"]["bytes_total"]
    assert int(rows[-1]["bytes_cumulative"]) == results["communication"]["bytes_total"]


def test_metrics_written_during_the_run_are_the_rows_of_the_final_record(tmp_path):
    """metrics.csv grows row by row while the run goes (what an interrupted run keeps); at the
    end it is rewritten from the whole record: the two must agree."""
    from parsefl.experiments.run.simulate import run_experiment

    seen = []
    out = tmp_path / "r"
    cfg = load_config(None, [*SYNERGY, "rounds=4", "eval_every=2",
                             "dynamics.membership.offline=0.3"])
    run_experiment(cfg, out, on_round=lambda stats, ev: ev is not None and seen.append(
        (out / "metrics.csv").read_text()))
    assert seen[-1] == (out / "metrics.csv").read_text()
    assert len(list(csv.DictReader((out / "metrics.csv").open()))) == 2
