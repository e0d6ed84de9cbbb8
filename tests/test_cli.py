"""The command line: bad configs give one clear line naming the field, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from parsefl.config import load_config
from parsefl.errors import ConfigError

QUICK = ["-o", "data.name=synthetic_pid", "-o", "mix={m1: 2, m1+m2: 2}", "-o", "rounds=2",
         "-o", "partition.name=iid", "-o", "model.encoder.params.hidden=[16]"]


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "parsefl.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


@pytest.mark.parametrize("overrides,field,hint", [
    (["colour=red"], "colour", "unknown key"),
    (["train.lrate=0.1"], "train.lrate", "allowed keys here: optimizer, lr"),
    (["rounds=many"], "rounds", "integer"),
    (["train.optimizer=lbfgs"], "train.optimizer", "adam"),
    (["method=fedavg"], "method", "choose one of: centralized, dsgd_full"),
    (["method_params.bogus=1"], "method_params.bogus", "allowed: none"),
    (["method=harmony", "method_params.stage1_fraction=2"], "method_params.stage1_fraction",
     "(0, 1)"),
    (["topology.name=moebius"], "topology.name", "ring"),
    (["data.name=imagenet"], "data.name", "mfeat"),
    (["model.fusion=magic"], "model.fusion", "concat"),
    (["device=tpu"], "device", "auto, cpu, cuda"),
    (["mix={fou+: 2}"], "mix", ""),
    (["mix={fou: 2, zzz: 1}"], "mix", "fou"),
    (["mix={fou: 2000}"], "partition.min_samples", "agents"),
])
def test_bad_config_names_the_field(overrides, field, hint, tmp_path):
    with pytest.raises(ConfigError) as err:
        from parsefl.experiments.run.build import build_experiment

        build_experiment(load_config(None, overrides))
    assert err.value.field.startswith(field)
    assert hint in str(err.value)


def test_cli_error_is_one_line_without_traceback(tmp_path):
    proc = _cli("run", "-o", "topology.name=moebius", "--out", str(tmp_path / "x"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "topology.name" in proc.stderr and "choose one of" in proc.stderr


def test_cli_missing_config_file(tmp_path):
    proc = _cli("run", str(tmp_path / "nope.yaml"))
    assert proc.returncode == 2 and "no such file" in proc.stderr


def test_cli_run_writes_results_and_prints_groups(tmp_path):
    proc = _cli("run", *QUICK, "--out", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr
    assert "m1+m2" in proc.stdout and "overall" in proc.stdout
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["rounds_completed"] == 2


def test_cli_list_shows_every_registry():
    proc = _cli("list", "sharing")
    assert proc.returncode == 0 and "parse" in proc.stdout and "local" in proc.stdout
    proc = _cli("list")
    for kind in ("topology", "overlay", "dataset", "encoder", "fusion", "sharing"):
        assert kind in proc.stdout
    assert _cli("list", "nonsense").returncode == 2


def test_method_option_overrides_the_preset(tmp_path):
    """The real console script: ``--method`` wins over the preset's method, in the resolved
    config the run folder keeps and in its results."""
    assert load_config(None, []).method != "dsgd_full"  # the preset says otherwise
    exe = Path(sys.executable).with_name("parsefl")
    out = tmp_path / "run"
    proc = subprocess.run([str(exe), "run", *QUICK, "-o", "rounds=1", "--method", "dsgd_full",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert yaml.safe_load((out / "config.yaml").read_text())["method"] == "dsgd_full"
    assert json.loads((out / "results.json").read_text())["method"] == "dsgd_full"


def test_cli_pid_json_on_the_mixed_synthetic_data():
    proc = _cli("pid", "synthetic_pid", "--modalities", "m1,m2", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["redundancy"] == pytest.approx(1, abs=0.15)
    assert out["unique"]["m1"] == pytest.approx(1, abs=0.15)
    assert out["unique"]["m2"] == pytest.approx(0, abs=0.15)
    assert out["synergy"] == pytest.approx(1, abs=0.15)


@pytest.mark.parametrize("overrides,field,hint", [
    (["train.lr=.inf"], "train.lr", "finite number, got inf"),
    (["train.lr=1.0e30"], "train.lr", "at most 10.0"),
    (["rounds=true"], "rounds", "got a boolean"),
    (["model.split=[1, .nan, 1]"], "model.split.1", "finite"),
    (["data.params={noise: -.inf}"], "data.params.noise", "finite"),
    (["imperfect.missing_labels=1.0"], "imperfect.missing_labels", "less than 1"),
    (["mix={fou: 2, fou: 3}"], "fou", "duplicate key"),
    (["seed=-1"], "seed", "greater than or equal to 0"),
])
def test_values_that_cannot_be_right_are_refused(overrides, field, hint):
    with pytest.raises(ConfigError) as err:
        load_config(None, overrides)
    assert err.value.field == field and hint in str(err.value)


def test_sizes_beyond_memory_are_refused_with_the_estimate(monkeypatch):
    import parsefl.config_checks as checks

    monkeypatch.setattr(checks, "available_memory", lambda: 2**30)
    # 16 B (weight, gradient, 2 Adam moments) x 12 agents x 32 (the least hidden width
    # assumed when none is given) x 10^6 = 5.7 GiB
    with pytest.raises(ConfigError) as err:
        load_config(None, ["model.dim=1000000"])
    assert err.value.field == "model.dim" and "about 5.7 GiB" in str(err.value)
    assert "1.0 GiB available" in str(err.value)
    with pytest.raises(ConfigError) as err:  # 32 B x 16 features x 10^7 samples = 4.8 GiB
        load_config(None, ["data.name=synthetic_pid", "data.params={n_samples: 10000000}"])
    assert err.value.field == "data.params.n_samples" and "about 4.8 GiB" in str(err.value)
    load_config(None, ["model.dim=1000"])  # 23 MiB: fine


def test_duplicate_key_in_a_yaml_file(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("rounds: 2\ntrain:\n  lr: 0.1\n  lr: 0.2\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.field == "lr" and "line 4" in str(err.value)


def test_one_torch_thread_by_default():
    # benchmarks/threads.py: one thread per core spun against other processes (up to 17x
    # slower); one thread never lost
    assert load_config(None).runtime.threads == 1
