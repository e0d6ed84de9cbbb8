"""The vectorized backend with local epochs: agents of unequal data size take unequal numbers
of steps (each its own batches, the last short batch included, a lone last sample dropped), and
an agent that has finished keeps its parameters, moments and step count untouched."""

from __future__ import annotations

import pytest
import torch

from parsefl.config import LossConfig, TrainConfig, load_config
from parsefl.experiments.run.build import build_experiment
from parsefl.model import ModelSpec, SlicedModel
from parsefl.runtime import Agent
from parsefl.runtime.stacked_group import StackedGroup, _slots
from parsefl.runtime.vectorized import VectorizedExecutor

INPUT = {"a": (4,), "b": (5,)}
SIZES = [3, 5, 9, 6, 7]  # batch 4: [3], [4] (+1 dropped), [4, 4] (+1), [4, 2], [4, 3]
# Stacked (vmapped) matmuls add in another order than the per-agent ones: float32 rounding.
ATOL = 1e-5


def _agent(i: int, n: int, **train) -> Agent:
    model = SlicedModel(("a", "b"), INPUT, ModelSpec(n_classes=3, dim=6,
                                                     encoder_params={"hidden": [6]}))
    model.reset_components(i)
    gen = torch.Generator().manual_seed(100 + i)
    x = {m: torch.randn(n, *INPUT[m], generator=gen) for m in INPUT}
    cfg = TrainConfig(batch_size=4, **train)
    # No decorrelation term: it standardizes each slice by its batch std (+ 1e-5), which on
    # agent 3's batch of 2 turns float32 rounding (~1e-8) into 8e-5 after four SGD steps with
    # momentum, in either backend; this test is about the batches, not that conditioning.
    loss = LossConfig(decorrelation=0.0)
    return Agent(i, model, x, torch.arange(n) % 3, cfg, loss, seed=0)


def test_epoch_batches_sit_on_shared_slots_each_agent_in_its_own_order():
    agents = [_agent(i, n, local_epochs=2) for i, n in enumerate(SIZES)]
    batches = [[idx for _, idx in a.batches()] for a in agents]
    assert [[len(b) for b in mine] for mine in batches] == [
        [3, 3], [4, 4], [4, 4, 4, 4], [4, 2, 4, 2], [4, 3, 4, 3]]
    slots = _slots(agents, batches, agents[0].train_cfg)
    # F = 2 full batches at most per epoch: slots 0, 1 (full), 2 (short), then epoch 2.
    layout = [sorted((row, len(idx)) for row, idx in slot) for slot in slots]
    assert layout == [[(0, 3), (1, 4), (2, 4), (3, 4), (4, 4)], [(2, 4)], [(3, 2), (4, 3)],
                      [(0, 3), (1, 4), (2, 4), (3, 4), (4, 4)], [(2, 4)], [(3, 2), (4, 3)]]


@pytest.mark.parametrize("train", [{"optimizer": "adam", "weight_decay": 0.01},
                                   {"optimizer": "sgd", "momentum": 0.9, "lr": 0.05}])
def test_stacked_epochs_equal_each_agent_training_alone(train):
    ref = [_agent(i, n, local_epochs=2, **train) for i, n in enumerate(SIZES)]
    vec = [_agent(i, n, local_epochs=2, **train) for i, n in enumerate(SIZES)]
    losses = [a.train_local() for a in ref[:-1]]  # the last agent is offline this round
    group = StackedGroup(vec, vec[0].train_cfg)
    before = {n: p[-1].clone() for n, p in group.params.items()}
    got = group.train(None, [[i for _, i in a.batches()] for a in vec[:-1]] + [None], False)
    assert got[:-1].tolist() == pytest.approx(losses, abs=ATOL)
    for k, agent in enumerate(ref[:-1]):
        mine = dict(vec[k].model.named_parameters())  # views of the group's rows
        for name, p in agent.model.named_parameters():
            assert torch.allclose(p, mine[name], atol=ATOL), (k, name)
            assert torch.equal(mine[name], group.params[name][k])
            state, stacked = agent.optimizer.state[p], group.optimizer.state[name]
            for key, value in state.items():  # Adam's step count and moments, SGD's buffer
                assert torch.allclose(stacked[key][k], value, atol=ATOL), (k, name, key)
    steps = group.optimizer.state[group.names[0]]["step"]
    assert steps.tolist() == [2, 2, 4, 4, 0]  # a step per batch; the offline agent none
    for n, p in group.params.items():  # the offline agent: parameters and moments untouched
        assert torch.equal(p[-1], before[n])
        assert all(not v[-1].any() for v in group.optimizer.state[n].values())


def test_quickstart_size_run_equals_the_reference_backend():
    base = ["data.name=synthetic_pid", "data.params={n_samples: 1200}", "mix={m1: 4, m2: 4, "
            "m1+m2: 4}", "partition.name=dirichlet", "partition.alpha=0.5", "model.dim=24",
            "model.encoder.params={hidden: [32]}", "train.local_epochs=1", "eval_every=3"]
    runs = {}
    for backend in ("reference", "auto"):
        exp = build_experiment(load_config(None, [*base, f"runtime.backend={backend}"]))
        runs[backend] = (exp, [exp.loop.step(r) for r in range(3)])
    (ref, ref_stats), (vec, vec_stats) = runs["reference"], runs["auto"]
    assert isinstance(vec.loop.executor, VectorizedExecutor)
    assert len(set(ref.n_train)) > 1  # unequal shards: unequal step counts
    for s, t in zip(ref_stats, vec_stats, strict=True):
        assert s.loss == pytest.approx(t.loss, abs=1e-5)
        assert s.link_bytes == t.link_bytes
    with torch.no_grad():
        for a, b in zip(ref.agents, vec.agents, strict=True):
            x = {m: ref.test_x[m] for m in a.modalities}
            assert torch.allclose(a.model.logits(x), b.model.logits(x), atol=5e-4), a.id


@pytest.mark.parametrize("method", ["dsgd_full", "harmony", "sliced_hybrid"])
def test_other_strategies_with_local_epochs_equal_the_reference(method):
    base = ["data.name=synthetic_pid", "data.params={n_samples: 600}", "partition.name=dirichlet",
            "partition.alpha=1.0", "mix={m1: 3, m2: 2, m1+m2: 3}", "model.dim=12",
            "model.encoder.params={hidden: [16]}", "train.batch_size=16", f"method={method}",
            "train.optimizer=sgd", "train.momentum=0.9", "train.lr=0.05"]
    if method == "harmony":
        base.append("method_params={stage1_fraction: 0.5}")
    runs = {}
    for backend in ("reference", "vectorized"):
        exp = build_experiment(load_config(None, [*base, f"runtime.backend={backend}"]))
        runs[backend] = (exp, [exp.loop.step(r) for r in range(2)])
    (ref, ref_stats), (vec, vec_stats) = runs["reference"], runs["vectorized"]
    for s, t in zip(ref_stats, vec_stats, strict=True):
        assert s.loss == pytest.approx(t.loss, abs=1e-5)
    with torch.no_grad():
        for a, b in zip(ref.agents, vec.agents, strict=True):
            x = {m: ref.test_x[m] for m in a.modalities}
            assert torch.allclose(a.model.logits(x), b.model.logits(x), atol=5e-4), a.id
