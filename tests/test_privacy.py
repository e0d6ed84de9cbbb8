"""Differentially private local training (parsefl.privacy): Opacus's accountant gets exactly the
noise, sampling rate and steps each agent used; the vectorized backend's clipped per-sample
gradients equal a per-sample loop; both backends give the same numbers; budgets are refused or
stopped at; resume continues the noise stream and the accounting."""

from __future__ import annotations

import json

import pytest
import torch
from console import parsefl, refused
from opacus.accountants import PRVAccountant, RDPAccountant
from safetensors.torch import load_file

from parsefl.config import load_config
from parsefl.errors import ConfigError
from parsefl.experiments.run.build import build_experiment
from parsefl.experiments.run.simulate import run_experiment

BASE = ["data.name=synthetic_pid", "data.params={label: mixed, n_samples: 240}",
        "mix={m1: 2, m2: 2, m1+m2: 2}", "partition.name=dirichlet", "partition.alpha=5",
        "model.dim=6", "model.encoder.params.hidden=[8]", "device=cpu",
        "diagnostics.gradient_cosine=false", "rounds=3", "eval_every=3",
        "runtime.checkpoint_every=100", "train.batch_size=8", "train.optimizer=sgd",
        "train.lr=0.05"]
EPS8 = "privacy={epsilon: 8.0, delta: 1.0e-5}"
# Fixed noise, for the tests that are not about calibration: Opacus calibrates each agent of
# another size by a search of ~10 accountant calls (~2 s per agent here).
NOISE = "privacy={noise_multiplier: 1.0, delta: 1.0e-5}"
EQUAL = "partition.name=iid"  # agents of one size: one calibration for all (cached)


def _run(tmp_path, name, *extra):
    cfg = load_config(None, [*BASE, *extra])
    out = tmp_path / name
    return run_experiment(cfg, out), out


def _opacus(accountant, noise, q, steps, delta):
    acc = RDPAccountant() if accountant == "rdp" else PRVAccountant()
    for _ in range(steps):
        acc.step(noise_multiplier=noise, sample_rate=q)
    return acc.get_epsilon(delta=delta)


@pytest.mark.parametrize("accountant, sampling", [("rdp", "poisson"), ("prv", "shuffle")])
def test_results_epsilon_is_opacus_epsilon_of_what_each_agent_did(tmp_path, accountant,
                                                                   sampling):
    """Per agent: q is batch / its own n, steps are the batches it drew (epochs of unequal
    data: ceil(n / batch) Poisson steps, or the shuffled epoch's batches), and the epsilon is
    Opacus's for those numbers; the calibrated noise spends the target epsilon, no more."""
    # calibrated for RDP; fixed noise for PRV (its calibration, ~10 accountant calls per
    # agent size, would take most of this test)
    noise = "epsilon: 4.0" if accountant == "rdp" else "noise_multiplier: 1.5"
    res, _ = _run(tmp_path, "run", f"privacy={{{noise}, delta: 1.0e-5, accountant: "
                  f"{accountant}, sampling: {sampling}}}")
    rows = res["privacy"]["agents"]
    assert {r["n_train"] for r in rows} != {rows[0]["n_train"]}  # unequal data sizes
    assert res["privacy"]["sampling"].startswith("Poisson" if sampling == "poisson"
                                                 else "shuffled")
    for row, agent in zip(rows, res["agents"], strict=True):
        n = agent["n_train"]
        per_epoch = -(-n // 8) if sampling == "poisson" else n // 8 + (n % 8 > 1)
        assert row["n_train"] == n and row["sample_rate"] == min(8, n) / n
        assert row["steps"] == row["planned_steps"] == 3 * per_epoch
        want = _opacus(accountant, row["noise_multiplier"], row["sample_rate"], row["steps"],
                       1e-5)
        assert row["epsilon"] == pytest.approx(want, rel=1e-9)
        if accountant == "rdp":
            assert 3.9 < row["epsilon"] <= 4.0
    if accountant == "rdp":
        assert len({r["noise_multiplier"] for r in rows}) > 1  # per-agent calibration


def test_vectorized_clipped_per_sample_gradients_equal_a_per_sample_loop():
    cfg = load_config(None, [*BASE, NOISE, "runtime.backend=vectorized",
                             "privacy.max_grad_norm=0.05"])
    exp = build_experiment(cfg)
    group = next(g for g in exp.loop.executor.groups if len(g.agents) == 2
                 and len(g.agents[0].modalities) == 2)
    rows = torch.tensor([0, 1])
    idx = torch.tensor([[0, 3, 5], [1, 2, 4]])
    summed, losses = group.private_grads(rows, idx, None)
    for k, agent in enumerate(group.agents):
        params = dict(agent.model.named_parameters())
        want = {n: torch.zeros_like(params[n]) for n in summed}
        for j, i in enumerate(idx[k].tolist()):
            loss, _ = agent.model.loss({m: agent.x[m][i : i + 1] for m in agent.modalities},
                                       agent.y[i : i + 1], agent.loss_cfg, None)
            assert losses[k, j].item() == pytest.approx(loss.item(), rel=1e-5)
            grads = torch.autograd.grad(loss, [params[n] for n in summed])
            norm = torch.sqrt(sum(g.pow(2).sum() for g in grads))
            assert norm > 0.05  # the clip bites
            for n, g in zip(summed, grads, strict=True):
                want[n] += g * min(1.0, 0.05 / (norm.item() + 1e-6))
        for n in summed:
            torch.testing.assert_close(summed[n][k], want[n], rtol=1e-5, atol=1e-7)


def test_poisson_batches_are_poisson_and_padding_is_masked_out():
    """Poisson sampling: each step's batch holds each sample with probability batch / n
    (sizes vary, empty batches included), and a padded, masked row of the vectorized
    backend gives the clipped sum of its unpadded batch."""
    cfg = load_config(None, [*BASE, NOISE, "runtime.backend=vectorized", "train.batch_size=2",
                             "train.local_epochs=400"])
    exp = build_experiment(cfg)
    agent = exp.agents[0]
    batches = [idx for _, idx in agent.batches()]
    n = agent.n_samples
    assert len(batches) == 400 * -(-n // 2)
    sizes = torch.tensor([len(b) for b in batches], dtype=torch.float)
    assert sizes.mean().item() == pytest.approx(2.0, rel=0.05)  # expected batch q n = 2
    assert sizes.var().item() == pytest.approx(2.0 * (1 - 2 / n), rel=0.15)  # binomial
    assert (sizes == 0).any() and (sizes >= 5).any()
    group = next(g for g in exp.loop.executor.groups if len(g.agents) == 2
                 and len(g.agents[0].modalities) == 2)
    rows = torch.tensor([0, 1])
    idx = torch.tensor([[0, 3, 5], [1, 2, 0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    summed, _ = group.private_grads(rows, idx, None, mask)
    alone, _ = group.private_grads(rows[1:], idx[1:, :2], None)
    for n_ in summed:
        torch.testing.assert_close(summed[n_][1], alone[n_][0], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("extra", [
    ["method=parse"],
    ["method=parse", "privacy.sampling=shuffle"],
    ["method=harmony", "rounds=4"],  # stage 2: the frozen encoders get no noise
    ["method=sliced_hybrid", "train.local_steps=2",
     "dynamics.local_steps={min: 1, max: 3}", "dynamics.membership.offline=0.3"],
    ["method=parse", "train.batch_size=2"],  # Poisson: empty batches (noise-only steps)
])
def test_reference_and_vectorized_backends_give_the_same_numbers(tmp_path, extra):
    runs = {}
    for backend in ("reference", "vectorized"):
        res, out = _run(tmp_path, backend, NOISE, f"runtime.backend={backend}", *extra)
        runs[backend] = res, {i: load_file(str(out / "checkpoints" / f"agent_{i:04d}"
                                               ".safetensors")) for i in range(6)}
    (ref, ref_w), (vec, vec_w) = runs["reference"], runs["vectorized"]
    assert ref["privacy"]["agents"] == vec["privacy"]["agents"]
    assert ref["final"]["accuracy"]["groups"] == pytest.approx(vec["final"]["accuracy"]["groups"])
    for i, weights in ref_w.items():
        for name, value in weights.items():
            torch.testing.assert_close(vec_w[i][name], value, rtol=1e-4, atol=1e-5)


def test_noise_is_seeded_per_agent_and_actually_added(tmp_path):
    a, out_a = _run(tmp_path, "a", NOISE)
    b, out_b = _run(tmp_path, "b", NOISE)
    plain, out_p = _run(tmp_path, "plain")
    loud, out_l = _run(tmp_path, "loud", "privacy={noise_multiplier: 5.0}")
    w = {k: load_file(str(o / "checkpoints" / "agent_0004.safetensors"))
         for k, o in [("a", out_a), ("b", out_b), ("plain", out_p), ("loud", out_l)]}
    for name in w["a"]:
        assert torch.equal(w["a"][name], w["b"][name])
    assert any(not torch.allclose(w["a"][n], w["loud"][n]) for n in w["a"])
    assert any(not torch.allclose(w["a"][n], w["plain"][n]) for n in w["a"])
    assert "privacy" not in plain and a["privacy"] == b["privacy"]


def test_a_budget_the_run_would_exceed_is_refused_or_stopped_at(tmp_path):
    budget = "privacy={epsilon: 3.5, noise_multiplier: 1.5}"
    with pytest.raises(ConfigError, match=r"privacy\.epsilon.*would spend epsilon .* > 3\.5 by "
                       r"round 3; its budget lasts \d round"):
        _run(tmp_path, "refused", budget, "train.local_steps=4")
    assert not (tmp_path / "refused").exists()
    res, _ = _run(tmp_path, "stopped", "privacy={epsilon: 3.5, noise_multiplier: 1.5, "
                  "stop_at_budget: true}", "train.local_steps=4")
    p = res["privacy"]
    assert res["stopped_by"] == "privacy_budget" and p["stopped_at_budget"]
    assert 0 < res["rounds_completed"] == p["budget_rounds"] < 3
    assert p["epsilon_max"] <= 3.5
    assert all(r["steps"] == 4 * p["budget_rounds"] for r in p["agents"])
    fits, _ = _run(tmp_path, "fits", "privacy={epsilon: 50.0, noise_multiplier: 1.0}")
    assert fits["stopped_by"] == "max_rounds" and fits["privacy"]["epsilon_max"] <= 50


def test_rounds_auto_calibrates_for_its_bound(tmp_path):
    cfg = load_config(None, [*BASE, EPS8, EQUAL, "rounds=auto", "train.val_fraction=0.2",
                             "train.max_rounds=7", "train.local_steps=1"])
    plan = build_experiment(cfg).privacy
    assert plan.configured_rounds == 7
    assert all(sum(a.steps) == 7 for a in plan.agents.values())


@pytest.mark.parametrize("extra, field", [
    (["privacy={delta: 1.0e-5}"], "privacy.epsilon"),
    (["privacy={epsilon: 2.0, stop_at_budget: true}"], "privacy.stop_at_budget"),
    (["privacy={epsilon: -1.0}"], "privacy.epsilon"),
    (["privacy={epsilon: 2.0, accountant: gdp}"], "privacy.accountant"),
    (["privacy={epsilon: 2.0, max_grad_norm: 0}"], "privacy.max_grad_norm"),
    (["privacy={epsilon: 2.0, delta: 1.5}"], "privacy.delta"),
    ([EPS8, "method=centralized"], "privacy"),
    ([EPS8, "imperfect.missing_labels=0.2"], "imperfect.missing_labels"),
])
def test_bad_privacy_configs_are_one_line_naming_the_field(extra, field):
    with pytest.raises(ConfigError) as err:
        load_config(None, [*BASE, *extra])
    assert err.value.field == field


def test_resume_continues_the_noise_and_the_accounting(tmp_path):
    fixed = ["privacy={noise_multiplier: 1.2}", "runtime.checkpoint_every=1"]
    whole, out_w = _run(tmp_path, "whole", *fixed, "rounds=4")
    cfg = load_config(None, [*BASE, *fixed, "rounds=2"])
    run_experiment(cfg, tmp_path / "parts")
    cfg = load_config(None, [*BASE, *fixed, "rounds=4"])
    parts = run_experiment(cfg, tmp_path / "parts", resume=True)
    assert parts["privacy"]["agents"] == whole["privacy"]["agents"]
    a = load_file(str(out_w / "checkpoints" / "agent_0003.safetensors"))
    b = load_file(str(tmp_path / "parts" / "checkpoints" / "agent_0003.safetensors"))
    assert all(torch.equal(a[n], b[n]) for n in a)
    # calibrated noise depends on the rounds: a resume with others is refused
    run_experiment(load_config(None, [*BASE, EPS8, EQUAL, "rounds=2",
                                      "runtime.checkpoint_every=1"]), tmp_path / "cal")
    with pytest.raises(ConfigError, match="privacy_noise"):
        run_experiment(load_config(None, [*BASE, EPS8, EQUAL, "rounds=4",
                                          "runtime.checkpoint_every=1"]),
                       tmp_path / "cal", resume=True)


def test_console_quickstart_with_privacy(tmp_path):
    """What the README shows, through the console script, on the quickstart preset (two
    rounds, to keep the suite short)."""
    out = tmp_path / "qs"
    proc = parsefl("run", "-o", "privacy={epsilon: 8.0, delta: 1.0e-5}", "-o", "rounds=2",
                   "-o", "device=cpu", "--out", str(out), timeout=600)
    assert proc.returncode == 0, proc.stderr
    res = json.loads((out / "results.json").read_text())
    assert len(res["privacy"]["agents"]) == 12
    assert all(0 < r["epsilon"] <= 8.0 for r in res["privacy"]["agents"])
    bad = parsefl("run", "-o", "privacy={delta: 1.0e-5}", "--out", str(tmp_path / "no"))
    refused(bad, "privacy.epsilon")


@pytest.mark.parametrize("backend", ["reference", "vectorized"])
def test_launch_with_privacy_equals_the_simulator(tmp_path, backend):
    """DP-SGD under `parsefl launch --nproc 2`: every agent draws its own seeded noise and
    takes its own steps in whichever process holds it, each rank's summary carries its agents'
    step counts, and the merged accounting, the budget stop and the accuracies are the
    simulator's."""
    from parsefl.experiments.distributed.launcher import launch

    extra = ["privacy={epsilon: 3.5, noise_multiplier: 1.5, stop_at_budget: true}",
             "train.local_steps=4", f"runtime.backend={backend}"]
    sim, _ = _run(tmp_path, "sim", *extra)
    dist = launch(None, [*BASE, *extra], nproc=2, out_dir=tmp_path / "l")
    assert sim["stopped_by"] == dist["stopped_by"] == "privacy_budget"
    assert dist["rounds_completed"] == sim["rounds_completed"] < 3
    assert dist["privacy"] == sim["privacy"]
    assert dist["final"] == sim["final"]
    assert dist["distributed"]["backend"] == backend


def test_calibration_is_cached_checked_and_parallel(tmp_path, monkeypatch):
    """Each calibration is kept on disk; a kept value is used only if the accountant shows it
    spends the budget (an edited file is recomputed); the parallel path gives the serial
    values."""
    from parsefl.privacy import accounting

    monkeypatch.setenv("PARSEFL_CACHE", str(tmp_path))
    monkeypatch.setattr(accounting, "_CALIBRATED", {})
    keys = [(8.0, 1e-5, 0.5, 4, "rdp"), (4.0, 1e-5, 0.5, 4, "rdp")]
    serial = accounting.calibrate_all(keys, workers=1)
    for (eps, delta, q, steps, acc), noise in serial.items():
        assert eps - 0.01 <= _opacus(acc, noise, q, steps, delta) <= eps
    files = sorted((tmp_path / "privacy").rglob("*.json"))
    assert len(files) == 2

    def never(key):
        raise AssertionError(f"calibrated {key} again")

    monkeypatch.setattr(accounting, "_CALIBRATED", {})
    monkeypatch.setattr(accounting, "_calibrate_one", never)
    assert accounting.calibrate_all(keys) == serial  # from the files, checked

    for f in files:  # half the noise spends far more than the budget: refused, recomputed
        kept = json.loads(f.read_text())
        f.write_text(json.dumps({**kept, "noise_multiplier": kept["noise_multiplier"] / 2}))
    monkeypatch.undo()
    monkeypatch.setenv("PARSEFL_CACHE", str(tmp_path))
    monkeypatch.setattr(accounting, "_CALIBRATED", {})
    assert accounting.calibrate_all(keys, workers=lambda: 2) == serial  # two spawned processes
    assert {json.loads(f.read_text())["noise_multiplier"] for f in files} == set(
        serial.values())  # rewritten


def test_an_unreachable_budget_is_one_line_from_the_parallel_calibration(tmp_path, monkeypatch):
    from parsefl.privacy import accounting

    monkeypatch.setenv("PARSEFL_CACHE", str(tmp_path))
    with pytest.raises(ConfigError, match=r"privacy\.epsilon: no noise reaches epsilon=1e-09"):
        accounting.calibrate_all([(1e-9, 1e-5, 1.0, 50, "rdp"), (1e-9, 1e-5, 0.5, 50, "rdp")],
                                 workers=2)
