"""The vectorized executor inside `parsefl launch` workers: stacked agents per process, remote
copies through gloo, the simulator's vectorized numbers (to float tolerance), the placement and
its cross-edge share in the summary; the weights when a remote copy does not arrive."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from parsefl.aggregation import build_aggregator
from parsefl.config import load_config
from parsefl.experiments.distributed.launcher import launch
from parsefl.experiments.run.simulate import run_experiment
from parsefl.runtime.distributed_vectorized import _folded
from parsefl.runtime.handshake import GossipPlan

# Relay paths (billed per hop) and round_robin (most edges cross) exercise the remote path.
TINY = ["data.name=synthetic_pid", "data.params={label: redundancy, n_samples: 600}",
        "mix={m1: 3, m2: 3, m1+m2: 3}", "partition.name=iid", "model.dim=12",
        "model.encoder.params.hidden=[16]", "device=cpu", "diagnostics.gradient_cosine=false",
        "train.local_steps=2", "rounds=3", "eval_every=3", "overlay.name=relay",
        "overlay.hops=2", "runtime.placement=round_robin"]


@pytest.mark.parametrize("transport", ["gloo", "grpc"])
def test_two_stacked_processes_give_the_vectorized_simulator_numbers(tmp_path: Path, transport):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sim = run_experiment(load_config(None, TINY), tmp_path / "sim")
    finally:
        torch.set_num_threads(threads)
    dist = launch(None, TINY, nproc=2, out_dir=tmp_path / "dist", wall_timeout_s=120,
                  transport=transport, insecure=transport == "grpc")  # 127.0.0.1 only
    info = dist["distributed"]
    assert info["backend"] == "vectorized" and info["placement"] == "round_robin"
    assert info["transport"] == transport
    assert info["cross_edge_share"] == 8 / 9  # ring of 9, ids alternate: only (8, 0) stays
    assert info["wire_bytes"]["params_bytes"] > 0 and info["rejected_messages"] == 0
    assert dist["communication"]["bytes_total"] == sim["communication"]["bytes_total"]
    assert [a["accuracy"] for a in dist["agents"]] == [a["accuracy"] for a in sim["agents"]]
    for f in sorted((tmp_path / "sim" / "checkpoints").glob("agent_*.safetensors")):
        ours, theirs = load_file(f), load_file(tmp_path / "dist" / "checkpoints" / f.name)
        for name, value in ours.items():  # summation order differs: float tolerance
            assert torch.allclose(value, theirs[name], atol=1e-6), (f.name, name)


def test_a_remote_copy_that_did_not_arrive_gives_its_weight_back():
    plans = {0: GossipPlan({"c": {1: (0, 1), 5: (0, 5)}}, {"c": 0.5},
                           {"c": {1: 0.25, 5: 0.25}}),
             1: GossipPlan({"c": {0: (1, 0)}}, {"c": 0.5}, {"c": {0: 0.5}})}
    view = _folded(plans, "c", [0, 1, 5], {0}, {0: set()}, {5}, build_aggregator("mean"))
    assert view[0].self_weight == {"c": 0.75} and view[0].weights == {"c": {1: 0.25}}
    assert view[0].paths == {"c": {1: (0, 1)}}
    assert view[1] is plans[1]  # nothing missing there
    assert view[5].self_weight == {"c": 1.0} and view[5].weights == {"c": {}}


@pytest.mark.parametrize("bad", ["runtime.placement=spread"])
def test_an_unknown_placement_is_a_config_error(bad):
    from parsefl.errors import ConfigError

    with pytest.raises(ConfigError, match="runtime.placement: unknown placement 'spread'"):
        load_config(None, [bad])


def test_stacked_workers_resume_with_their_optimizer_state(tmp_path: Path):
    """Two rounds, then a resumed third (Adam: the stacked moments must come back) equal
    the simulator's three rounds."""
    base = [o for o in TINY if not o.startswith(("rounds=", "eval_every="))]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_experiment(load_config(None, [*base, "rounds=3", "eval_every=3"]), tmp_path / "sim")
    finally:
        torch.set_num_threads(threads)
    opts = {"nproc": 2, "out_dir": tmp_path / "dist", "wall_timeout_s": 120,
            "checkpoint_every": 2}
    launch(None, [*base, "rounds=2", "eval_every=3"], **opts)
    resumed = launch(None, [*base, "rounds=3", "eval_every=3"], resume=True, **opts)
    assert resumed["distributed"]["resumed_from_round"] == 2
    for f in sorted((tmp_path / "sim" / "checkpoints").glob("agent_*.safetensors")):
        ours, theirs = load_file(f), load_file(tmp_path / "dist" / "checkpoints" / f.name)
        for name, value in ours.items():
            assert torch.allclose(value, theirs[name], atol=1e-6), (f.name, name)
