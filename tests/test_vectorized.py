"""The vectorized backend gives the reference backend's numbers (same seed, every strategy)."""

from __future__ import annotations

import pytest
import torch

from parsefl.config import load_config
from parsefl.errors import ConfigError
from parsefl.experiments.run.build import build_experiment
from parsefl.registry import SHARING
from parsefl.runtime.vectorized import VectorizedExecutor

# Float tolerance: stacked (batched) matmuls and the sparse mixing product add in another
# order than the per-agent loop, so values agree to ~1e-6 after a few rounds, not bitwise. We
# compare every agent's logits on the test set: a parameter that no loss term really moves
# (e.g. a unimodal agent's s-row bias under sliced_hybrid, whose gradient is float noise) can
# drift further under Adam (and, under sliced_hybrid, reach multimodal agents by gossip:
# logits then differ by ~1e-4).
ATOL = 5e-4
BASE = ["data.name=synthetic_pid", "data.params={n_samples: 600}", "partition.name=dirichlet",
        "partition.alpha=1.0", "mix={m1: 3, m2: 2, m1+m2: 3}", "model.dim=12",
        "model.encoder.params={hidden: [16]}", "train.local_steps=3", "topology.name=ring"]


def _run(backend: str, method: str, rounds: int = 2, extra=()):
    exp = build_experiment(load_config(None, [*BASE, f"method={method}",
                                              f"runtime.backend={backend}", *extra]))
    stats = [exp.loop.step(r) for r in range(rounds)]
    exp.loop.sync()
    return exp, stats


@pytest.mark.parametrize("method", [m for m in SHARING.names() if m != "centralized"])
def test_vectorized_equals_reference(method):
    extra = ["method_params={stage1_fraction: 0.5}"] if method == "harmony" else []
    ref, ref_stats = _run("reference", method, extra=extra)
    vec, vec_stats = _run("vectorized", method, extra=extra)
    assert isinstance(vec.loop.executor, VectorizedExecutor)
    _same_outputs(ref, vec)
    for s, t in zip(ref_stats, vec_stats, strict=True):
        assert s.link_bytes == t.link_bytes
        assert s.loss == pytest.approx(t.loss, abs=1e-5)
        assert s.gradient_cosine == pytest.approx(t.gradient_cosine, abs=1e-4)


def test_relay_overlay_and_heterogeneous_widths():
    extra = ["overlay.name=relay", "overlay.hops=2",
             "model.encoder.variants=[{hidden: [16]}, {hidden: [8]}]"]
    ref, _ = _run("reference", "parse", extra=extra)
    vec, _ = _run("vectorized", "parse", extra=extra)
    assert len(vec.loop.executor.groups) == 6  # 3 groups x 2 widths
    _same_outputs(ref, vec)


def _same_outputs(ref, vec):
    with torch.no_grad():
        for a, b in zip(ref.agents, vec.agents, strict=True):
            x = {m: ref.test_x[m] for m in a.modalities}
            assert torch.allclose(a.model.logits(x), b.model.logits(x), atol=ATOL), a.id


def test_auto_picks_vectorized_only_when_it_can():
    auto = build_experiment(load_config(None, [*BASE]))
    assert isinstance(auto.loop.executor, VectorizedExecutor)
    epochs = build_experiment(load_config(None, [*BASE, "train.local_steps=null"]))
    assert isinstance(epochs.loop.executor, VectorizedExecutor)  # local epochs run stacked
    missing = ["imperfect.missing_modality=0.3"]
    assert not isinstance(build_experiment(load_config(None, [*BASE, *missing])).loop.executor,
                          VectorizedExecutor)
    with pytest.raises(ConfigError, match="several modality views"):
        build_experiment(load_config(None, [*BASE, *missing, "runtime.backend=vectorized"]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_run_matches_cpu():
    cpu, _ = _run("vectorized", "parse", extra=["device=cpu"])
    gpu, _ = _run("vectorized", "parse", extra=["device=cuda"])
    assert next(gpu.agents[0].model.parameters()).is_cuda
    for a, b in zip(cpu.agents, gpu.agents, strict=True):
        for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True):
            assert torch.allclose(p, q.cpu(), atol=1e-4)


def test_mixing_matrix_gossip_equals_the_hand_computed_average():
    # The path-overlay case of test_gossip: enc.a held by agents 0-1-2 on a 4-ring (agent 3
    # holds b): MH weights w01 = w12 = 1/3, so values 0, 3, 6 become 1, 3, 5.
    import networkx as nx
    from conftest import make_agent

    from parsefl.config import TrainConfig
    from parsefl.registry import SHARING
    from parsefl.runtime import InMemoryTransport, RoundEngine
    from parsefl.topology import StaticGraph

    agents = [make_agent(i, "a") for i in range(3)] + [make_agent(3, "b")]
    for agent, value in zip(agents[:3], (0.0, 3.0, 6.0), strict=True):
        comp = agent.get_component("enc.a")
        agent.set_component("enc.a", {k: torch.full_like(v, value) for k, v in comp.items()})
    loop = RoundEngine(agents, SHARING.get("parse")(), StaticGraph(nx.cycle_graph(4)),
                     InMemoryTransport())
    loop.executor = VectorizedExecutor(loop, TrainConfig(local_steps=1, batch_size=4))
    loop.prepare(0)
    loop.gossip()
    loop.sync()
    for agent, value in zip(agents[:3], (1.0, 3.0, 5.0), strict=True):
        for tensor in agent.get_component("enc.a").values():
            assert torch.allclose(tensor, torch.full_like(tensor, value), atol=1e-6)
