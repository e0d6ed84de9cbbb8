"""Agents built as rows of what they share (runtime.blueprint): one initialised model per
architecture, the vectorized backend's stacked rows made from it at once, the dataset's tensors
as the one copy of the inputs, and a module per agent only where one is asked for."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from parsefl.config import load_config
from parsefl.experiments.run.build import _model, build_experiment, build_strategy

BASE = ["data.name=synthetic_pid", "data.params={n_samples: 600}", "partition.name=dirichlet",
        "partition.alpha=1.0", "mix={m1: 3, m2: 2, m1+m2: 3}", "model.dim=12",
        "model.encoder.params={hidden: [16]}", "train.local_steps=3", "topology.name=ring",
        "runtime.backend=vectorized"]


def _build(*extra: str):
    return build_experiment(load_config(None, [*BASE, *extra]))


def test_rows_start_from_each_agents_own_initialisation():
    """A fresh group's rows are what building each agent's model on its own gives (the
    blueprint relies on a component's initial values depending on seed, name and signature
    only: a per-agent initialisation would fail here)."""
    exp = _build("model.encoder.variants=[{hidden: [16]}, {hidden: [8]}]")
    cfg, ds, strategy = exp.cfg, exp.dataset, build_strategy(exp.cfg)
    for group in exp.loop.executor.groups:
        for k, agent in enumerate(group.agents):
            params = dict(cfg.model.encoder.params) | _variant_of(cfg, agent)
            alone = _model(cfg, ds, strategy, agent.modalities, params, exp.device)
            for name, value in alone.named_parameters():
                assert torch.equal(group.params[name][k], value), (agent.id, name)


def _variant_of(cfg, agent) -> dict:
    width = agent.blueprint.model.trunks[agent.modalities[0]].out_features
    return {"hidden": [width]}


def test_agents_are_rows_without_modules_and_read_the_datasets_inputs():
    exp = _build()
    for group in exp.loop.executor.groups:
        for k, agent in enumerate(group.agents):
            assert not agent.materialized  # building made no module for it
            assert agent.rows[1] == k
            for m, x in group.x.items():  # the dataset's tensors: no copy
                assert x.data_ptr() == exp.dataset.train.x[m].ctypes.data
                assert agent.source.base[m] is x
                assert torch.equal(agent.x[m], torch.as_tensor(
                    exp.dataset.train.x[m][exp.parts[agent.id]]))
    agent = exp.agents[0]
    before = {n: v.clone() for n, v in agent.weights().items()}
    exp.loop.step(0)
    assert any(not torch.equal(before[n], v) for n, v in agent.weights().items())
    assert not agent.materialized


def test_predictions_without_a_module_equal_the_modules():
    exp = _build()
    exp.loop.step(0)
    agent = exp.agents[-1]
    x = {m: exp.test_x[m] for m in agent.modalities}
    lazy = agent.predict(x)
    assert not agent.materialized
    model = agent.model  # made now, its parameters views of the agent's row
    assert agent.materialized
    assert torch.equal(lazy, agent.predict(x))
    row = agent.rows[0]["head_r.weight"][agent.rows[1]]
    assert model.head_r.weight.data_ptr() == row.data_ptr()


def test_an_agent_that_is_no_row_writes_its_own_copy():
    exp = _build("runtime.backend=reference")
    a, b = exp.agents[0], exp.agents[1]  # same architecture, one blueprint
    assert a.blueprint is b.blueprint
    comp = "head_r"
    zeros = {n: torch.zeros_like(v) for n, v in a.get_component(comp).items()}
    a.set_component(comp, zeros)
    assert all(torch.equal(v, zeros[n]) for n, v in a.get_component(comp).items())
    assert not any(torch.equal(v, zeros[n]) for n, v in b.get_component(comp).items())
    assert not any(torch.equal(v, zeros[n]) for n, v in
                   {n: a.blueprint.params[n] for n in zeros}.items())


@pytest.mark.parametrize("n", [4096])
def test_builds_thousands_of_agents_quickly(n, tmp_path):
    """Smoke check of the build time (the figure itself: benchmarks/scaling.py --build)."""
    rng = np.random.default_rng(0)
    per, total = 4, n * 4 + 40
    y = rng.integers(0, 3, total)
    split = np.array(["train"] * (total - 40) + ["test"] * 40)
    path = tmp_path / "tiny.npz"
    np.savez(path, y=y, split=split, x_a=rng.normal(size=(total, 5)).astype(np.float32),
             x_b=rng.normal(size=(total, 6)).astype(np.float32))
    third = n // 3
    cfg = load_config(None, [
        f"data.name=npz:{path}", f"mix={{a: {third}, b: {third}, a+b: {n - 2 * third}}}",
        "partition.name=iid", "partition.min_samples=1", "model.dim=6",
        "model.encoder.name=mlp", "model.encoder.params={hidden: [8]}", "train.batch_size=2",
        "train.local_steps=1", "runtime.backend=vectorized", "device=cpu", "eval_every=1000"])
    start = time.perf_counter()
    exp = build_experiment(cfg)
    took = time.perf_counter() - start
    assert len(exp.agents) == n and sum(len(g.agents) for g in exp.loop.executor.groups) == n
    assert all(len(a.x[next(iter(a.x))]) == per for a in exp.agents)
    assert took < 60, f"{n} agents took {took:.1f} s to build (~0.3 ms each when quiet)"


def test_checkpoint_files_and_state_go_through_rows_without_modules(tmp_path):
    from safetensors.torch import load_file

    from parsefl.experiments.run.results import save_checkpoints

    exp = _build()
    exp.loop.step(0)
    save_checkpoints(exp.agents, tmp_path)
    agent = exp.agents[2]
    saved = load_file(str(tmp_path / "agent_0002.safetensors"))
    assert saved.keys() == agent.weights().keys()
    assert all(torch.equal(v, agent.weights()[n]) for n, v in saved.items())
    agent.load_state_dict({n: torch.zeros_like(v) for n, v in saved.items()})
    row = agent.rows[0]["head_r.weight"][agent.rows[1]]
    assert not row.any()  # written into the group's row
    with pytest.raises(ValueError, match="other tensors"):
        agent.load_state_dict({n: v[:1] for n, v in saved.items()})
    assert not any(a.materialized for a in exp.agents)
