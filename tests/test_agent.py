"""runtime/agent.py: an agent's components are read as copies and written in place; its
batches are deterministic per seed and cover its data as the config says."""

from __future__ import annotations

import torch

from parsefl.config import LossConfig, TrainConfig
from parsefl.model import ModelSpec, SlicedModel
from parsefl.runtime import Agent

INPUT = {"a": (4,), "b": (5,)}


def _agent(i: int = 0, n: int = 10, seed: int = 0, **train) -> Agent:
    model = SlicedModel(("a", "b"), INPUT, ModelSpec(n_classes=3, dim=6,
                                                     encoder_params={"hidden": [6]}))
    model.reset_components(0)
    gen = torch.Generator().manual_seed(100 + i)
    x = {m: torch.randn(n, *INPUT[m], generator=gen) for m in INPUT}
    return Agent(i, model, x, torch.arange(n) % 3, TrainConfig(**train), LossConfig(), seed)


def test_get_component_is_a_copy_and_set_component_writes_in_place():
    agent = _agent()
    before = agent.get_component("head_r")
    param = dict(agent.model.named_parameters())[next(iter(before))]
    copy = next(iter(before.values()))
    copy.add_(1.0)  # editing the copy leaves the model alone
    assert not torch.equal(param, copy)
    agent.set_component("head_r", {k: torch.full_like(v, 0.25) for k, v in before.items()})
    assert torch.equal(param, torch.full_like(param, 0.25))
    assert dict(agent.model.named_parameters())[next(iter(before))] is param  # same tensor


def test_local_steps_give_that_many_batches_of_the_batch_size():
    agent = _agent(n=10, batch_size=4, local_steps=3)
    batches = agent.batches()
    assert [(mods, len(idx)) for mods, idx in batches] == [(("a", "b"), 4)] * 3
    assert all(0 <= int(i) < 10 for _, idx in batches for i in idx)


def test_one_local_epoch_covers_every_sample_once_and_drops_a_lone_last_sample():
    agent = _agent(n=9, batch_size=4, local_epochs=1)
    sizes = [len(idx) for _, idx in agent.batches()]
    assert sizes == [4, 4]  # 9 = 4 + 4 + 1; a batch of one sample is dropped
    agent = _agent(n=10, batch_size=4, local_epochs=2)
    seen = torch.cat([idx for _, idx in agent.batches()])
    assert sorted(seen.tolist()) == sorted(list(range(10)) * 2)


def test_batches_depend_on_seed_and_agent_id_only():
    same = [torch.cat([i for _, i in _agent(i=1, seed=7, batch_size=4).batches()])
            for _ in range(2)]
    assert torch.equal(*same)
    other = torch.cat([i for _, i in _agent(i=2, seed=7, batch_size=4).batches()])
    assert not torch.equal(same[0], other)


def test_training_lowers_the_loss_and_predict_uses_the_modalities_asked_for():
    torch.manual_seed(0)
    agent = _agent(n=12, batch_size=6, lr=1e-2)
    first = agent.train_local()
    for _ in range(20):
        last = agent.train_local()
    assert last < first
    x = {m: torch.randn(7, *INPUT[m]) for m in INPUT}
    assert agent.predict(x).shape == (7,)
    only_a = agent.predict({"a": x["a"]}, modalities=("a",))
    assert only_a.shape == (7,) and int(only_a.max()) < 3
