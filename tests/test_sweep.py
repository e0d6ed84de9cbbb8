"""Sweeps and comparisons: expansion, resume, and summaries that match the per-seed runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from parsefl.errors import ConfigError
from parsefl.experiments.sweeps.compare import compare_sweep, run_and_summarize
from parsefl.experiments.sweeps.sweep import load_sweep, parse_seeds, resolve_methods

QUICK = ["data.name=synthetic_pid", "data.params={n_samples: 300}", "partition.name=iid",
         "mix={m1: 1, m2: 1, m1+m2: 1}", "model.dim=9", "model.encoder.params.hidden=[8]",
         "train.local_steps=1", "rounds=1"]


def test_compare_summary_matches_per_seed_results(tmp_path):
    sweep = compare_sweep(None, ["local", "parse"], [0, 1, 2], QUICK)
    summary = run_and_summarize(sweep, tmp_path, jobs=1)
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert set(on_disk) == {"local", "parse"}
    for method in ("local", "parse"):
        runs = [json.loads((tmp_path / "runs" / method / f"seed{s}" / "results.json").read_text())
                for s in (0, 1, 2)]
        acc = [r["final"]["accuracy"]["overall"] for r in runs]
        assert on_disk[method]["accuracy"]["overall"]["mean"] == pytest.approx(np.mean(acc))
        assert on_disk[method]["accuracy"]["overall"]["std"] == pytest.approx(np.std(acc, ddof=1))
        m1 = [r["final"]["macro_f1"]["groups"]["m1+m2"] for r in runs]
        assert on_disk[method]["macro_f1"]["groups"]["m1+m2"]["mean"] == pytest.approx(np.mean(m1))
        bytes_ = [r["communication"]["bytes_per_link_per_round_mean"] for r in runs]
        assert on_disk[method]["bytes_per_link_per_round"] == pytest.approx(np.mean(bytes_))
    assert on_disk["local"]["bytes_per_link_per_round"] == 0
    assert summary["-"]["parse"]["seeds"] == [0, 1, 2]
    md = (tmp_path / "summary.md").read_text()
    assert "| parse |" in md and "m1+m2" in md
    csv_lines = (tmp_path / "results.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + 2 * 3 * 4  # header + methods x seeds x (overall + 3 groups)


def test_sweep_expands_grid_and_resumes(tmp_path):
    spec = {"overrides": dict(q.split("=", 1) for q in QUICK),
            "grid": {"mix": [{"m1": 1, "m1+m2": 2}, {"m2": 1, "m1+m2": 2}]},
            "methods": ["local"], "seeds": [0, 1]}
    spec["overrides"] = {k: yaml.safe_load(v) for k, v in spec["overrides"].items()}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    sweep = load_sweep(path)
    assert len(sweep.specs()) == 4
    seen = []
    run_and_summarize(sweep, tmp_path / "out", 1, lambda s, r, cached: seen.append(cached))
    assert seen == [False] * 4
    first = {p: p.stat().st_mtime_ns for p in (tmp_path / "out" / "runs").glob("*/results.json")}
    seen.clear()
    run_and_summarize(sweep, tmp_path / "out", 1, lambda s, r, cached: seen.append(cached))
    assert seen == [True] * 4
    again = {p: p.stat().st_mtime_ns for p in (tmp_path / "out" / "runs").glob("*/results.json")}
    assert first == again
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert set(summary) == {"mix={m1: 1, m1+m2: 2}", "mix={m2: 1, m1+m2: 2}"}


def test_bad_sweep_inputs(tmp_path):
    with pytest.raises(ConfigError, match="--methods"):
        resolve_methods("parse,fedprox")
    with pytest.raises(ConfigError, match="--seeds"):
        parse_seeds("0,x")
    assert resolve_methods("all")[0] == "centralized"
    path = tmp_path / "bad.yaml"
    path.write_text("grid: {rounds: 3}\n")
    with pytest.raises(ConfigError, match="grid"):
        load_sweep(path)
    path.write_text("grid: {rounds: [1]}\nmethods: [parse]\nsede: [1]\n")
    with pytest.raises(ConfigError, match="sede"):
        load_sweep(path)


def test_finished_runs_are_reused_only_with_the_identical_config(tmp_path):
    run_and_summarize(compare_sweep(None, ["local"], [0], QUICK), tmp_path, jobs=1)
    first = (tmp_path / "runs" / "local" / "seed0" / "results.json").stat().st_mtime_ns
    seen = []
    # the thread count changes speed, never numbers: still reused
    run_and_summarize(compare_sweep(None, ["local"], [0], [*QUICK, "runtime.threads=1"]),
                      tmp_path, 1, lambda s, r, cached: seen.append(cached))
    assert seen == [True]
    other = compare_sweep(None, ["local"], [0], [*QUICK, "rounds=2", "model.dim=12"])
    with pytest.raises(ConfigError) as err:
        run_and_summarize(other, tmp_path, jobs=1)
    assert err.value.field == "--out" and "--overwrite" in str(err.value)
    assert "model.dim: 9 -> 12; rounds: 1 -> 2" in str(err.value)
    assert (tmp_path / "runs" / "local" / "seed0" / "results.json").stat().st_mtime_ns == first
    run_and_summarize(other, tmp_path, jobs=1, overwrite=True)
    redone = json.loads((tmp_path / "runs" / "local" / "seed0" / "results.json").read_text())
    assert redone["rounds_completed"] == 2
    md = (tmp_path / "summary.md").read_text()
    assert "Resolved config of the first run (fingerprint" in md and "rounds: 2" in md


def test_an_interrupted_run_is_run_again_not_reused(tmp_path):
    from parsefl.config import load_config
    from parsefl.experiments.run.checkpoint import fingerprint
    from parsefl.experiments.run.divergence import interrupted_results
    from parsefl.experiments.run.results import publish_results

    sweep = compare_sweep(None, ["local"], [0], QUICK)
    run = tmp_path / "runs" / "local" / "seed0"
    run_and_summarize(sweep, tmp_path, jobs=1)
    cfg = load_config(run / "config.yaml")
    publish_results(run, interrupted_results(cfg, 0), fingerprint(cfg))  # as Ctrl-C writes it
    seen = []
    run_and_summarize(sweep, tmp_path, 1, lambda s, r, cached: seen.append(cached))
    assert seen == [False]  # run again
    assert json.loads((run / "results.json").read_text())["stopped_by"] == "max_rounds"


def test_a_finished_run_that_does_not_match_its_manifest_is_refused_not_reused(tmp_path):
    sweep = compare_sweep(None, ["local"], [0], QUICK)
    run = tmp_path / "runs" / "local" / "seed0"
    run_and_summarize(sweep, tmp_path, jobs=1)
    results = json.loads((run / "results.json").read_text())
    results["final"]["accuracy"]["overall"] = 0.999  # a better number, edited in
    (run / "results.json").write_text(json.dumps(results))
    with pytest.raises(ConfigError, match=r"--out: .*manifest_results.json: results.json"):
        run_and_summarize(sweep, tmp_path, jobs=1)
    seen = []  # --overwrite redoes it
    run_and_summarize(sweep, tmp_path, 1, lambda s, r, cached: seen.append(cached),
                      overwrite=True)
    assert seen == [False]
    assert json.loads((run / "results.json").read_text())["final"]["accuracy"]["overall"] \
        != 0.999


def _stat(mean, n=1, std=0.0):
    return {"mean": mean, "std": std, "n": n}


def _method(a, b, overall, n=1):
    return {"accuracy": {"overall": _stat(overall, n), "groups": {"a": _stat(a, n),
                                                                 "a+b": _stat(b, n)}},
            "macro_f1": {"overall": _stat(overall, n), "groups": {}},
            "bytes_per_link_per_round": 10.0, "gradient_cosine": None}


def test_tables_mark_the_best_non_ceiling_value_and_drop_the_std_of_one_seed():
    from rich.console import Console

    from parsefl.experiments.sweeps.summary import markdown_table
    from parsefl.reporting import print_summary

    methods = {"local": _method(0.5, 0.9, 0.7), "parse": _method(0.8, 0.85, 0.82),
               "centralized": _method(0.99, 0.99, 0.99)}
    md = markdown_table(methods).splitlines()
    assert md[2] == "| local | 0.500 | **0.900** | 0.700 | 10 | – | – |"
    assert md[3] == "| parse | **0.800** | 0.850 | **0.820** | 10 | – | – |"
    assert md[4] == "| centralized (ceiling) | 0.990 | 0.990 | 0.990 | 10 | – | – |"
    console = Console(record=True, width=200)
    print_summary(console, {"-": methods})
    text = console.export_text()
    assert "±" not in text and "a+b" in text and "0.8000" in text and "(ceiling)" in text
    with_seeds = {"parse": _method(0.8, 0.85, 0.82, n=3)}
    assert "0.800 ± 0.000" in markdown_table(with_seeds)


def test_a_section_added_later_at_its_default_is_no_difference():
    """A run saved before a release added ``communication`` still counts as the same run when
    the new section holds its defaults; set to something else, it is a difference."""
    from parsefl.experiments.sweeps.sweep import config_diff
    old = {"method": "parse", "rounds": 3}
    new = {**old, "communication": {"compressor": "none", "period": 1}}
    assert config_diff(old, new) == []
    changed = {**old, "communication": {"compressor": "int8", "period": 1}}
    assert config_diff(old, changed) == ["communication.compressor: '-' -> int8"]
    assert config_diff({**old, "rounds": 4}, new) == ["rounds: 4 -> 3"]


def test_method_overrides_give_the_pooled_ceiling_a_fixed_budget_in_an_auto_sweep(tmp_path):
    """`rounds: auto` cannot stop `centralized` (no network, no validation agents): the sweep
    file gives it a fixed budget, and every table row says the rounds run and the plateaus."""
    from parsefl.experiments.sweeps.summary import falling, fmt_budget

    overrides = {k: yaml.safe_load(v) for k, v in (q.split("=", 1) for q in QUICK)}
    overrides.update({"rounds": "auto", "eval_every": 1, "train.val_fraction": 0.2,
                      "train.max_rounds": 3})
    spec = {"overrides": overrides, "methods": ["centralized", "local"], "seeds": [0, 1]}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    with pytest.raises(ConfigError, match="train.val_fraction"):  # the refusal it avoids
        run_and_summarize(load_sweep(path), tmp_path / "refused", 1)
    spec["method_overrides"] = {"centralized": {"rounds": 2}}
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    summary = run_and_summarize(load_sweep(path), tmp_path / "out", 1)["-"]
    runs = [json.loads((tmp_path / "out" / "runs" / "centralized" / f"seed{s}" /
                        "results.json").read_text()) for s in (0, 1)]
    assert summary["centralized"]["budget"] == {
        "rounds": [2, 2], "judged": 2, "stopped_by_plateau": 0,
        "plateaued": sum(r["convergence"]["converged"] for r in runs),
        "falling": sum(any(g["gain"] is not None and g["gain"] <= -0.005
                           for g in r["convergence"]["groups"].values()) for r in runs)}
    assert summary["local"]["budget"]["rounds"] == [3, 3]  # auto: max_rounds, no plateau yet
    assert summary["local"]["budget"]["stopped_by_plateau"] == 0
    assert fmt_budget(summary["local"]["budget"]) == "3 (0/2)"
    assert fmt_budget({"rounds": [135, 150, 140], "plateaued": 3, "judged": 3}) == "135–150 (3/3)"
    assert fmt_budget({"rounds": [60] * 3, "plateaued": 3, "judged": 3, "falling": 1}) == \
        "60 (3/3; 1 falling)"
    collapsed = {"convergence": {"min_gain": 0.005, "groups": {"a": {"gain": -0.2},
                                                               "b": {"gain": 0.001}}}}
    assert falling(collapsed) and not falling({"convergence": {"groups": {"a": {"gain": -0.004}}}})
    rows = (tmp_path / "out" / "results.csv").read_text().splitlines()
    head = rows[0].split(",")
    overall = [dict(zip(head, r.split(","), strict=True)) for r in rows[1:]
               if ",overall," in r]
    assert {(r["method"], r["rounds"], r["stopped_by"]) for r in overall} == {
        ("centralized", "2", "max_rounds"), ("local", "3", "max_rounds")}
    assert {r["plateaued"] for r in overall if r["method"] == "local"} == {"False"}
    assert "| local | " in (tmp_path / "out" / "summary.md").read_text()
    assert "3 (0/2) |" in (tmp_path / "out" / "summary.md").read_text()
    spec["method_overrides"] = {"parse": {"rounds": 2}}
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    with pytest.raises(ConfigError, match="method_overrides.parse"):
        load_sweep(path)
