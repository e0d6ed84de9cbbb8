"""Frozen pretrained encoders: `parsefl pretrain` writes trunks from the public split, a run
loads them, a frozen trunk neither trains nor travels, a misshapen file is refused by name."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from parsefl.config import load_config
from parsefl.errors import ConfigError
from parsefl.experiments.run.build import build_experiment
from parsefl.experiments.run.roster import agent_partition, private_indices
from parsefl.experiments.studies.pretrain import pretrain

BASE = ["data.name=synthetic_pid", "data.params={n_samples: 600}", "mix={m1: 2, m2: 2, m1+m2: 2}",
        "model.dim=12", "model.encoder.params={hidden: [16]}", "train.local_steps=2",
        "topology.name=ring", "data.public=0.2", "diagnostics.gradient_cosine=false"]


@pytest.fixture(scope="module")
def trunks(tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrained")
    report = pretrain(load_config(None, BASE), out, epochs=2)
    assert set(report) == {"m1", "m2"} and report["m1"]["samples"] == 96  # 0.2 of 480
    return out


def test_the_public_split_is_held_by_no_agent():
    cfg = load_config(None, BASE)
    from parsefl.data import load_dataset

    ds = load_dataset(cfg.data.name, cfg.seed, cfg.data.params, None)
    public = set(private_indices(cfg, len(ds.train.y), public=True).tolist())
    _, parts = agent_partition(cfg, ds)
    held = {int(i) for p in parts for i in p}
    assert len(public) == 96 and not public & held and len(public | held) == 480


@pytest.mark.parametrize("backend", ["reference", "vectorized"])
def test_a_frozen_trunk_is_bit_identical_after_a_run_and_never_travels(trunks, backend):
    frozen = [*BASE, f"model.encoder.pretrained={trunks}", "model.encoder.freeze=true",
              f"runtime.backend={backend}"]
    exp = build_experiment(load_config(None, frozen))
    file = load_file(str(trunks / "m1.safetensors"))
    before = {(a.id, n): p.detach().clone() for a in exp.agents
              for n, p in a.model.named_parameters() if n.startswith("trunks.")}
    assert torch.equal(exp.agents[0].model.trunks["m1"].state_dict()["net.1.weight"],
                       file["net.1.weight"])
    frozen_bytes = sum(sum(exp.loop.step(r).link_bytes.values()) for r in range(3))
    exp.loop.sync()
    for a in exp.agents:
        for n, p in a.model.named_parameters():
            if n.startswith("trunks."):
                assert torch.equal(p, before[a.id, n]), (a.id, n)
    assert not any(c.startswith("trunk.") for p in exp.loop.plans.values() for c in p.paths)
    trained = build_experiment(load_config(None, [*BASE, f"runtime.backend={backend}"]))
    trained_bytes = sum(sum(trained.loop.step(r).link_bytes.values()) for r in range(3))
    # Exactly the trunks' bytes no longer travel: every planned enc.<m> message, per hop,
    # 3 rounds, carried its trunk ((inputs + 1) x 16 floats) when trained.
    trunk_bytes = {m: 4 * sum(p.numel() for p in exp.agents[4].model.trunks[m].parameters())
                   for m in ("m1", "m2")}
    saved = sum((len(path) - 1) * trunk_bytes[c[4:]] for plan in trained.loop.plans.values()
                for c, peers in plan.paths.items() if c.startswith("enc.")
                for path in peers.values())
    assert frozen_bytes == trained_bytes - 3 * saved and saved > 0


def test_a_misshapen_file_is_refused_naming_the_tensor(trunks, tmp_path):
    bad = load_file(str(trunks / "m1.safetensors"))
    bad["net.1.weight"] = torch.zeros(3, 3)
    save_file(bad, str(tmp_path / "m1.safetensors"))
    save_file(load_file(str(trunks / "m2.safetensors")), str(tmp_path / "m2.safetensors"))
    with pytest.raises(ConfigError) as err:
        build_experiment(load_config(None, [*BASE, f"model.encoder.pretrained={tmp_path}"]))
    assert err.value.field == "model.encoder.pretrained"
    assert "tensor m1.net.1.weight: shape (3, 3)" in str(err.value)
    proc = subprocess.run([sys.executable, "-m", "parsefl.cli", "run", *sum(
        (["-o", o] for o in [*BASE, f"model.encoder.pretrained={tmp_path}", "rounds=1"]), []),
        "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "m1.net.1.weight" in proc.stderr + proc.stdout


def test_one_prefixed_file_loads_too(trunks, tmp_path):
    both = {f"{m}.{k}": v for m in ("m1", "m2")
            for k, v in load_file(str(trunks / f"{m}.safetensors")).items()}
    save_file(both, str(tmp_path / "all.safetensors"))
    exp = build_experiment(load_config(None, [*BASE, f"model.encoder.pretrained="
                                              f"{tmp_path / 'all.safetensors'}"]))
    assert torch.equal(exp.agents[2].model.trunks["m2"].state_dict()["net.1.weight"],
                       both["m2.net.1.weight"])
    with pytest.raises(ConfigError, match="model.encoder.pretrained"):
        build_experiment(load_config(None, [*BASE, "model.encoder.freeze=true"]))


def test_trunks_pretrained_for_another_seed_are_refused(trunks, tmp_path):
    # Another seed is another train/test split: the trunk may have seen this run's test set.
    with pytest.raises(ConfigError, match="parsefl.seed=0, this run has 1"):
        build_experiment(load_config(None, [*BASE, "seed=1",
                                            f"model.encoder.pretrained={trunks}"]))
    (tmp_path / "seed0").symlink_to(trunks)
    exp = build_experiment(load_config(None, [*BASE, "model.encoder.pretrained="
                                              f"{tmp_path}/seed{{seed}}"]))
    assert torch.equal(exp.agents[0].model.trunks["m1"].state_dict()["net.1.weight"],
                       load_file(str(trunks / "m1.safetensors"))["net.1.weight"])
