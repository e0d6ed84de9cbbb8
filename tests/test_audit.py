"""The membership-inference audit (parsefl.privacy.audit, ``parsefl audit``): its metrics against
hand-computed values, chance on a model that never saw the victim's data, high on one overfit to
it, and the command on a finished run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from console import parsefl, refused
from safetensors.torch import load_file

from parsefl.config import load_config
from parsefl.experiments.run.build import build_experiment
from parsefl.experiments.run.simulate import run_experiment
from parsefl.privacy.audit import (
    attack_metrics,
    audit_run,
    calibrated_metrics,
    matched,
    member_scores,
)

SMALL = ["data.name=synthetic_pid", "data.params={label: mixed, n_samples: 600}",
         "partition.name=iid", "model.dim=12", "model.encoder.params.hidden=[256]",
         "device=cpu", "diagnostics.gradient_cosine=false", "rounds=2", "eval_every=2"]


def test_metrics_by_hand():
    assert attack_metrics(np.array([3.0, 2.0]), np.array([1.0, 0.0])) == {
        "auc": 1.0, "tpr_at_1pct_fpr": 1.0}
    # one of four (member, non-member) pairs in the wrong order; at FPR 0 one member of two
    got = attack_metrics(np.array([3.0, 1.0]), np.array([2.0, 0.0]))
    assert got == {"auc": 0.75, "tpr_at_1pct_fpr": 0.5}


def test_nonmembers_are_matched_class_by_class():
    members, pool = np.array([0, 0, 0, 1, 2, 2]), np.array([0, 0, 1, 1, 1, 2, 2, 2])
    keep, pick = matched(members, pool, np.random.default_rng(0))
    assert sorted(members[keep]) == sorted(pool[pick]) == [0, 0, 1, 2, 2]


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    """Four multimodal agents that never communicate, overfit (100 epochs, wide trunks) to
    about 110 training samples each."""
    cfg = load_config(None, [*SMALL, "mix={m1+m2: 4}", "method=local",
                             "train.local_epochs=100", "train.lr=0.01"])
    out = tmp_path_factory.mktemp("audit") / "local"
    run_experiment(cfg, out)
    exp = build_experiment(cfg)
    for a in exp.agents:
        a.model.load_state_dict(load_file(str(out / "checkpoints" /
                                              f"agent_{a.id:04d}.safetensors")))
    return exp


def _scores(exp, model, victim=0):
    ds, part = exp.dataset, exp.parts[victim]
    labels = exp.agents[victim].y.numpy()
    keep, pick = matched(labels, ds.test.y, np.random.default_rng(0))
    members = member_scores(model, {m: torch.as_tensor(v[part][keep])
                                    for m, v in ds.train.x.items()}, torch.as_tensor(labels[keep]))
    others = member_scores(model, {m: torch.as_tensor(v[pick]) for m, v in ds.test.x.items()},
                           torch.as_tensor(ds.test.y[pick]))
    assert len(members) > 90
    return members, others


def _auc(exp, model, victim=0):
    return attack_metrics(*_scores(exp, model, victim))["auc"]


def test_auc_is_chance_on_models_that_never_saw_the_victims_data(local_run):
    # ~106 members and non-members: the AUC's standard deviation under chance is ~0.04
    for other in local_run.agents[1:]:
        assert abs(_auc(local_run, other.model) - 0.5) < 0.12


def test_auc_is_high_on_the_model_overfit_to_them(local_run):
    assert _auc(local_run, local_run.agents[0].model) > 0.7


def test_calibrated_attack_chance_against_itself_high_on_the_overfit_model(local_run):
    """The reference-model attack: a model calibrated by a model that never saw the victim's
    data separates the members when it is the overfit one, and not when it is another
    stranger."""
    ref = _scores(local_run, local_run.agents[1].model)
    hit = calibrated_metrics(*_scores(local_run, local_run.agents[0].model), *ref)
    miss = calibrated_metrics(*_scores(local_run, local_run.agents[2].model), *ref)
    # (0.66 measured: the reference adds its own per-sample noise to the score)
    assert hit["auc_cal"] > 0.6 and abs(miss["auc_cal"] - 0.5) < 0.12


def test_audit_command_on_a_run(tmp_path):
    """``parsefl audit`` through the console script: every (victim, receiving neighbour) pair
    of the run's last plans, per component kind, written to audit.json."""
    cfg = load_config(None, [*SMALL, "mix={m1: 2, m2: 2, m1+m2: 2}", "train.batch_size=16"])
    out = tmp_path / "parse"
    run_experiment(cfg, out)
    proc = parsefl("audit", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "AUC" in proc.stdout
    data = json.loads((out / "audit.json").read_text())
    assert data == audit_run(out)
    kinds = data["kinds"]
    assert {"own", "all", "enc", "head_r", "head_u", "enc_s", "synergy"} <= set(kinds)
    assert kinds["all"]["pairs"] == 12  # 6 agents on a ring, each sends to both neighbours
    assert kinds["enc_s"]["pairs"] == 2  # the two multimodal agents are neighbours
    assert kinds["victim"]["pairs"] == 6  # the ceiling: each victim's own whole model
    for row in data["pairs"]:
        assert 0 <= row["auc"] <= 1 and row["members"] > 0 and row["members"] == \
            row["nonmembers"]
        assert (row["kind"] in ("own", "victim")) == ("auc_cal" not in row)
        assert (row["kind"] == "victim") == (row["attacker"] == row["victim"])
    assert "cal" in proc.stdout  # the calibrated attack's columns
    refused(parsefl("audit", str(tmp_path / "nothing")), "RUN_DIR")
