"""The sliced model: slice sizes, components, fusion operators and loss terms."""

from __future__ import annotations

import pytest
import torch

from parsefl.config import LossConfig
from parsefl.errors import ConfigError
from parsefl.model import ModelSpec, SlicedModel, slice_dims, sliced_loss
from parsefl.model.loss import cross_correlation
from parsefl.registry import FUSIONS

SHAPES = {"a": (4,), "b": (5,), "c": (3,)}


def _model(mods, **kw):
    return SlicedModel(mods, SHAPES, ModelSpec(n_classes=3, dim=kw.pop("dim", 9), **kw))


@pytest.mark.parametrize("dim,split,expected", [
    (96, (1, 1, 1), (32, 32, 32)), (10, (1, 1, 1), (4, 3, 3)), (8, (2, 1, 1), (4, 2, 2)),
    (9, (1, 1, 0), (5, 4, 0)),
])
def test_slice_dims(dim, split, expected):
    assert slice_dims(dim, split) == expected


def test_bad_split_is_a_config_error():
    with pytest.raises(ConfigError, match="model.split"):
        slice_dims(9, (1, -1, 1))


def test_components_cover_every_parameter_once():
    model = _model(("a", "b", "c"))
    comps = model.components()
    names = [n for names in comps.values() for n in names]
    assert sorted(names) == sorted(n for n, _ in model.named_parameters())
    assert set(comps) == {"enc.a", "enc.b", "enc.c", "enc_s.a", "enc_s.b", "enc_s.c", "head_r",
                          "head_u.a", "head_u.b", "head_u.c", "synergy.a+b+c"}
    assert set(_model(("a",)).components()) == {"enc.a", "head_r", "head_u.a"}


def test_shared_components_start_identical_across_agent_kinds():
    uni, multi = _model(("a",)), _model(("a", "b"))
    uni.reset_components(7)
    multi.reset_components(7)
    for comp in ("enc.a", "head_r", "head_u.a"):
        for name in uni.components()[comp]:
            assert torch.equal(uni.get_parameter(name), multi.get_parameter(name))
    other = _model(("a",))
    other.reset_components(8)
    assert not torch.equal(uni.head_r.weight, other.head_r.weight)


def test_logits_are_the_sum_of_active_heads_and_drop_removes_one():
    model = _model(("a", "b"))
    x = {"a": torch.randn(5, 4), "b": torch.randn(5, 5)}
    out = model(x)
    r = (out.r_logits["a"] + out.r_logits["b"]) / 2
    u = out.u_logits["a"] + out.u_logits["b"]
    assert torch.allclose(out.logits, r + u + out.s_logits, atol=1e-6)
    assert torch.allclose(model(x, drop={"s"}).logits, r + u, atol=1e-6)
    assert torch.allclose(model(x, drop={"r", "u"}).logits, out.s_logits, atol=1e-6)


@pytest.mark.parametrize("name", FUSIONS.names())
@pytest.mark.parametrize("k", [2, 3])
def test_every_fusion_operator(name, k):
    mods = ("a", "b", "c")[:k]
    model = _model(mods, fusion=name)
    x = {m: torch.randn(6, *SHAPES[m]) for m in mods}
    out = model(x)
    assert out.s_logits.shape == (6, 3)
    loss, _ = sliced_loss(out, torch.tensor([0, 1, 2, 0, 1, 2]), LossConfig())
    loss.backward()
    assert all(p.grad is not None for p in model.fusion.parameters())


def test_every_loss_term_can_be_switched_off():
    model = _model(("a", "b"))
    out = model({"a": torch.randn(6, 4), "b": torch.randn(6, 5)})
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    _, terms = sliced_loss(out, y, LossConfig())
    assert set(terms) == {"main", "aux", "unimodal_path", "align", "decorrelation"}
    off = LossConfig(aux=0, align=0, decorrelation=0, unimodal_path=0)
    total, terms = sliced_loss(out, y, off)
    assert set(terms) == {"main"}
    expected = float(torch.nn.functional.cross_entropy(out.logits, y).detach())
    assert float(total.detach()) == pytest.approx(expected)


def test_unimodal_agent_has_no_alignment_or_unimodal_path_term():
    model = _model(("a",))
    out = model({"a": torch.randn(6, 4)})
    _, terms = sliced_loss(out, torch.tensor([0, 1, 2, 0, 1, 2]), LossConfig())
    assert set(terms) == {"main", "aux", "decorrelation"}


def test_cross_correlation_closed_forms():
    a = torch.randn(256, 2)
    assert float(cross_correlation(a, a[:, [1, 0]])) == pytest.approx(0.5, abs=0.1)
    assert float(cross_correlation(a, torch.cat([a, a], 1)[:, [0, 0]])) == pytest.approx(
        0.5 * (1 + float(torch.corrcoef(a.T)[0, 1]) ** 2), abs=1e-3)


def test_slice_drop_in_results_removes_exactly_that_head(tmp_path):
    from parsefl.config import load_config
    from parsefl.experiments.run.build import build_experiment
    from parsefl.experiments.run.simulate import run_experiment, slice_drop

    overrides = ["data.name=synthetic_pid", "data.params={n_samples: 300}", "mix={m1: 1, m1+m2: 1}",
                 "partition.name=iid", "model.dim=9", "train.local_steps=1", "rounds=1"]
    res = run_experiment(load_config(None, overrides), tmp_path)
    drop = res["ablations"]["slice_drop"]
    assert set(drop) == {"r", "u", "s"}
    # A unimodal agent has no s slice: dropping s changes nothing for it.
    assert drop["s"]["accuracy"]["groups"]["m1"] == res["final"]["accuracy"]["groups"]["m1"]
    exp = build_experiment(load_config(None, [*overrides, "method=dsgd_task"]))
    assert slice_drop(exp) is None
