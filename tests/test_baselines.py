"""Every baseline moves exactly the components its definition says, on a 4-agent ring."""

from __future__ import annotations

import pytest
import torch

from parsefl.config import load_config
from parsefl.experiments.run.build import build_experiment
from parsefl.experiments.run.simulate import run_experiment
from parsefl.model import MonolithicModel
from parsefl.registry import SHARING

BASE = ["data.name=synthetic_pid", "data.params={n_samples: 400}", "partition.name=iid",
        "mix={m1: 1, m2: 1, m1+m2: 2}", "model.dim=12", "model.encoder.params.hidden=[8]",
        "train.local_steps=1", "rounds=2", "runtime.backend=reference"]  # messages to inspect


def _sent(method: str, rounds: int = 1, extra=()) -> dict[int, list[tuple[int, int, str]]]:
    """(src, dst, component) of every params message per round."""
    exp = build_experiment(load_config(None, [*BASE, f"method={method}", *extra]))
    transport = exp.loop.transport
    log: list = []
    exchange = transport.exchange
    transport.exchange = lambda msgs: exchange(log.extend(msgs) or msgs)
    out = {}
    for r in range(rounds):
        log.clear()
        exp.loop.step(r)
        out[r] = sorted((m.src, m.dst, m.component) for m in log if m.kind == "params")
    return out


def _edges(*pairs):
    return {(a, b) for a, b in pairs} | {(b, a) for a, b in pairs}


def _components(sent):
    return {c for _, _, c in sent}


def test_ring_is_0_1_2_3():
    # Agents: 0 = m1, 1 = m2, 2 = m1+m2, 3 = m1+m2; ring edges 0-1, 1-2, 2-3, 3-0.
    exp = build_experiment(load_config(None, BASE))
    assert [a.modalities for a in exp.agents] == [("m1",), ("m2",), ("m1", "m2"), ("m1", "m2")]


def test_local_sends_nothing():
    assert _sent("local")[0] == []


def test_dsgd_task_sends_only_the_classifier_to_every_neighbour():
    sent = _sent("dsgd_task")[0]
    assert _components(sent) == {"classifier"}
    assert {(s, d) for s, d, _ in sent} == _edges((0, 1), (1, 2), (2, 3), (3, 0))


def test_dsgd_modality_sends_encoders_to_holders_only():
    sent = _sent("dsgd_modality")[0]
    assert set(sent) == {(0, 3, "enc.m1"), (3, 0, "enc.m1"), (2, 3, "enc.m1"),
                         (3, 2, "enc.m1"), (1, 2, "enc.m2"), (2, 1, "enc.m2"),
                         (2, 3, "enc.m2"), (3, 2, "enc.m2")}


def test_dsgd_hybrid_is_task_plus_modality():
    hybrid = set(_sent("dsgd_hybrid")[0])
    assert hybrid == set(_sent("dsgd_task")[0]) | set(_sent("dsgd_modality")[0])


def test_dsgd_full_gossips_the_whole_zero_filled_model():
    sent = _sent("dsgd_full")[0]
    every = {"enc.m1", "enc.m2", "fusion.m1+m2", "classifier"}
    for s, d in _edges((0, 1), (1, 2), (2, 3), (3, 0)):
        assert {c for a, b, c in sent if (a, b) == (s, d)} == every


def test_dsgd_full_zero_fills_missing_modalities():
    exp = build_experiment(load_config(None, [*BASE, "method=dsgd_full"]))
    model = exp.agents[0].model
    assert isinstance(model, MonolithicModel) and model.encoded == ("m1", "m2")
    x = {"m1": torch.randn(5, 16)}
    zeros = {**x, "m2": torch.zeros(5, 16)}
    assert torch.equal(model.logits(x), model.logits(zeros))


def test_harmony_switches_from_encoders_to_fusion():
    sent = _sent("harmony", rounds=2, extra=["method_params.stage1_fraction=0.5"])
    assert _components(sent[0]) == {"enc.m1", "enc.m2", "head_u.m1", "head_u.m2"}
    # Stage 2: multimodal agents 2 and 3 swap fusion + classifier only; the unimodal agents
    # have no unimodal neighbour left on the ring, so nothing else moves.
    assert set(sent[1]) == {(2, 3, "classifier"), (3, 2, "classifier"),
                            (2, 3, "fusion.m1+m2"), (3, 2, "fusion.m1+m2")}


def test_sliced_hybrid_shares_s_rows_and_unique_heads_with_everyone():
    sent = _sent("sliced_hybrid")[0]
    assert (0, 1, "head_u.m1") in sent and (0, 1, "head_u.m2") in sent
    assert (0, 3, "enc_s.m1") in sent  # a unimodal agent swaps s rows
    parse = _sent("parse")[0]
    assert (0, 1, "head_u.m1") not in parse and (0, 3, "enc_s.m1") not in parse
    assert (2, 3, "enc_s.m1") in parse


def test_parse_audiences():
    sent = _sent("parse")[0]
    assert {c for s, d, c in sent if (s, d) == (0, 1)} == {"head_r"}
    assert {c for s, d, c in sent if (s, d) == (2, 3)} == {
        "enc.m1", "enc.m2", "enc_s.m1", "enc_s.m2", "head_r", "head_u.m1", "head_u.m2",
        "synergy.m1+m2"}


def test_centralized_ignores_the_graph(tmp_path):
    a = run_experiment(load_config(None, [*BASE, "method=centralized"]), tmp_path / "a")
    b = run_experiment(load_config(None, [*BASE, "method=centralized", "topology.name=star"]),
                       tmp_path / "b")
    assert a["agents"] == b["agents"]
    assert a["communication"]["bytes_total"] == 0
    assert [r["n_train"] for r in a["agents"]] == [80, 80, 80, 80]


@pytest.mark.parametrize("method", SHARING.names())
def test_every_method_runs_and_reports(method, tmp_path):
    res = run_experiment(load_config(None, [*BASE, f"method={method}"]), tmp_path)
    assert set(res["final"]["accuracy"]["groups"]) == {"m1", "m2", "m1+m2"}
    assert (res["communication"]["bytes_total"] == 0) == (method in ("local", "centralized"))


@pytest.mark.parametrize("method", ["dsgd_task", "dsgd_hybrid", "sliced_hybrid", "parse"])
def test_gradient_cosine_is_logged_for_shared_components(method, tmp_path):
    res = run_experiment(load_config(None, [*BASE, f"method={method}"]), tmp_path)
    cos = res["diagnostics"]["gradient_cosine"]
    assert cos["mean"] and all(-1 <= v <= 1 for v in cos["mean"].values())
    expected = {"dsgd_task": "classifier", "dsgd_hybrid": "enc.m1", "parse": "head_r",
                "sliced_hybrid": "head_u.m2"}[method]
    assert expected in cos["mean"]
    assert len(cos["per_round"]) == 2
