"""``robust``: screening on own data, per-neighbour trust, and both backends agreeing.

The screen is checked on hand-made copies (the receiver's own copy as the good one, a scaled
sign flip as the bad one) through each backend's own loss path; trust against its closed
form; the whole rule against the reference executor on a real attacked run, and across a
resume."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from parsefl.aggregation import build_aggregator, flatten
from parsefl.aggregation.reputation import Reputation
from parsefl.config import load_config
from parsefl.errors import ConfigError
from parsefl.experiments.run.build import build_experiment
from parsefl.experiments.run.simulate import run_experiment
from parsefl.runtime.screening import screened_merge, stacked_losses

BASE = [
    "data.name=synthetic_pid", "data.params={label: redundancy, n_samples: 600}",
    "mix={m1: 2, m2: 2, m1+m2: 2}", "partition.name=iid", "model.dim=12",
    "model.encoder.params.hidden=[16]", "device=cpu", "diagnostics.gradient_cosine=false",
    "rounds=3", "eval_every=3", "runtime.threads=1", "aggregation.name=robust",
]
ATTACKER = "adversary={agents: [3], attack: sign_flip}"


def _trained(backend: str):
    """An experiment after two rounds (its heads have learnt something to lose)."""
    exp = build_experiment(load_config(None, [*BASE, f"runtime.backend={backend}"]))
    for r in range(2):
        exp.loop.step(r)
    exp.loop.sync()
    return exp


@pytest.fixture(scope="module")
def experiments():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield {b: _trained(b) for b in ("reference", "vectorized")}
    finally:
        torch.set_num_threads(threads)


def _copies(exp, comp):
    agent = exp.agents[0]
    own = agent.get_component(comp)
    good = {k: v.clone() for k, v in own.items()}  # the receiver's own values: no harm
    bad = {k: -5.0 * v for k, v in own.items()}  # a scaled sign flip
    return agent, own, {7: good, 8: bad}


def test_the_screen_rejects_a_bad_copy_and_keeps_a_good_one_in_both_backends(experiments):
    comp = "head_r"
    merged, losses = {}, {}
    for backend, exp in experiments.items():
        agent, own, received = _copies(exp, comp)
        agg = build_aggregator("robust", {"inner": "mean"})
        if backend == "reference":  # the reference executor's merge, one holder
            merged[backend] = flatten(screened_merge(agg, agent, comp, own, received, 0.4,
                                                     {7: 0.3, 8: 0.3}, r=2))
        else:  # the vectorized backend's loss path over the agent's stacked row
            group, row = exp.loop.executor.where[agent.id]
            names = list(own)
            values = torch.stack([flatten(own), flatten(received[7]), flatten(received[8])])[None]
            mix = SimpleNamespace(parts=[(group, torch.tensor([row]))], names=names)
            losses[backend] = stacked_losses(mix.parts, mix.names, values, agg, r=2)
            w = torch.tensor([[0.4, 0.3, 0.3]])
            out = agg.combine_screened(values, torch.ones(1, 3, dtype=torch.bool), w,
                                       losses[backend], [agent.id], [[7, 8]])
            merged[backend] = out[0]
        agg.end_round()
        # the good copy kept (trust grows, capped at 1), the bad one rejected (trust halves)
        assert agg.reputation.trust == {(agent.id, 7): 1.0, (agent.id, 8): 0.5}, backend
        # the bad copy's weight went to the own copy; the good copy equals it: the own copy
        assert torch.allclose(merged[backend], flatten(own), atol=1e-6), backend
    assert torch.equal(merged["reference"], merged["vectorized"])
    own_loss, good, bad = losses["vectorized"][0].tolist()
    assert good == pytest.approx(own_loss) and bad > own_loss + 0.05


def test_trust_decays_and_recovers_in_closed_form():
    rep = Reputation(decay=0.5, recover=0.1)
    for _ in range(3):  # three penalised rounds: 0.5^3
        rep.observe([(0, 1), (0, 2)], [True, False])
        rep.end_round()
    assert rep.of(0, 1) == 0.125 and rep.of(0, 2) == 1.0
    for _ in range(4):  # four clean rounds: 0.125 + 4 * 0.1
        rep.observe([(0, 1)], [False])
        rep.end_round()
    assert rep.of(0, 1) == pytest.approx(0.525)
    rep.observe([(0, 1), (0, 1)], [False, True])  # any bad copy in a round penalises it
    rep.end_round()
    assert rep.of(0, 1) == pytest.approx(0.2625)
    for _ in range(8):
        rep.observe([(0, 1)], [False])
        rep.end_round()
    assert rep.of(0, 1) == 1.0  # capped at full trust
    again = Reputation(0.5, 0.1)
    again.load(json.loads(json.dumps(rep.state())))
    assert again.trust == rep.trust


def test_mixing_weights_follow_trust():
    """Inner rule mean, own copy 4 (weight 1/2), one accepted copy at 5 (weight 1/2, offset 1
    within max_offset 0.5 of |4|): with trust 1/4 it gets weight 1/8, the own copy 7/8."""
    agg = build_aggregator("robust", {"inner": "mean"})
    agg.reputation.trust[(0, 1)] = 0.25
    values = torch.tensor([[[4.0], [5.0]]])
    out = agg.combine_screened(values, torch.ones(1, 2, dtype=torch.bool),
                               torch.tensor([[0.5, 0.5]]), torch.tensor([[1.0, 1.0]]),
                               [0], [[1]])
    assert out.tolist() == [[4.125]]


def _screen(agg, values, losses, mask=None):
    """Which peer copies ``robust`` accepts (its weights after the screen, trust 1)."""
    values = torch.tensor(values, dtype=torch.float32)
    k = values.shape[1]
    mask = torch.ones(1, k, dtype=torch.bool) if mask is None else torch.tensor([mask])
    agg.reputation.trust.clear()
    before = dict(agg.reputation.trust)
    agg.combine_screened(values, mask, torch.full((1, k), 1.0 / k),
                         torch.tensor([losses], dtype=torch.float64), [0], [list(range(1, k))])
    agg.end_round()
    accepted = [agg.reputation.of(0, j) == 1.0 for j in range(1, k) if mask[0, j]]
    agg.reputation.trust = before
    return accepted


def test_the_screens_in_hand_computed_cases():
    """Own copy (3, 4) (norm 5). Offset screen (max_offset 0.5): a copy at distance 2.5 passes,
    one at 2.6 is rejected. Spread screen (3): distances 1, 1, 3.1: the lower median 1, so 3.1
    is rejected and 3 would pass; with fewer than three peers there is no spread test. Loss
    screen: losses own 0.1, peers 0.5, 0.6, 2.0: reference = lower median 0.5, limit
    0.5 + max(2 * 0.5, 1) = 1.5, so 2.0 is rejected; the own copy's loss (0.1) would have put
    the limit at 1.1."""
    agg = build_aggregator("robust", {"inner": "mean"})
    own = [3.0, 4.0]
    assert _screen(agg, [[own, [3.0, 6.5], [3.0, 6.6]]], [0, 0, 0]) == [True, False]
    agg = build_aggregator("robust", {"inner": "mean", "max_offset": 0})
    near = [[own, [4.0, 4.0], [3.0, 5.0], [3.0, 7.1]]]
    assert _screen(agg, near, [0, 0, 0, 0]) == [True, True, False]
    assert _screen(agg, [[own, [4.0, 4.0], [3.0, 5.0], [3.0, 7.0]]], [0, 0, 0, 0]) == [True] * 3
    assert _screen(agg, [[own, [3.0, 40.0]]], [0, 0]) == [True]  # one peer: no spread
    lone = agg.combine_screened(torch.tensor([[own]]), torch.ones(1, 1, dtype=torch.bool),
                                torch.ones(1, 1), torch.zeros(1, 1, dtype=torch.float64),
                                [0], [[]])
    assert lone.tolist() == [own]  # no peer copy: the own copy
    assert _screen(agg, [[own, [4.0, 4.0], [3.0, 40.0]]], [0, 0, 0]) == [True, True]  # two
    # padding (mask False) is no distance in the median (with it, 3.1 would be the median)
    far = [[own, [4.0, 4.0], [3.0, 5.0], [3.0, 7.1], [0.0, 0.0], [0.0, 0.0]]]
    assert _screen(agg, far, [0, 0, 0, 0, 9, 9],
                   [True, True, True, True, False, False]) == [True, True, False]
    same = [[own, own, own, own]]
    assert _screen(agg, same, [0.1, 0.5, 0.6, 2.0]) == [True, True, False]
    assert _screen(agg, same, [0.1, 0.5, 0.6, 1.5]) == [True, True, True]
    assert _screen(agg, same, [0.1, 0.5, float("nan"), 1.0]) == [True, False, True]


def test_bad_state_and_params_are_one_line_errors():
    with pytest.raises(ValueError, match="bad trust entry"):
        Reputation(0.5, 0.1).load({"trust": [[0, 1, 2.0]]})
    for params, field in (({"inner": "median"}, "inner"), ({"decay": 1.0}, "decay"),
                          ({"batch": -1}, "batch"), ({"margin": -1}, "margin"),
                          ({"max_offset": -1}, "max_offset"), ({"spread": 0.5}, "spread")):
        with pytest.raises(ConfigError, match=f"aggregation.params.{field}"):
            build_aggregator("robust", params)
    with pytest.raises(ConfigError, match="communication.error_feedback"):
        load_config(None, [*BASE, "communication.compressor=int8",
                           "communication.error_feedback=true"])


def _weights(folder):
    return {f.name: load_file(f) for f in sorted((folder / "checkpoints").glob("agent_*"))}


@pytest.mark.parametrize("backend", ["reference", "vectorized"])
def test_an_attacked_run_matches_the_reference_and_resumes_with_its_trust(tmp_path, backend):
    """Agent 3 flips signs: both backends give the reference numbers; a run stopped after
    round 1 and resumed (trust read back from the checkpoint) gives the same weights."""
    torch.set_num_threads(1)
    over = [*BASE, ATTACKER, "rounds=4", "runtime.checkpoint_every=2",
            f"runtime.backend={backend}"]
    whole = run_experiment(load_config(None, over), tmp_path / "whole")
    screened = whole["screened"]  # results.json: the screen's counts, rejections per sender
    assert screened["rejected"] > 0 and [j for j, _ in screened["rejected_from"]] == [3]
    assert screened["offset"] == screened["rejected"] <= screened["copies"]  # ring: no spread
    if backend == "vectorized":
        ref = run_experiment(load_config(None, [*over[:-1], "runtime.backend=reference"]),
                             tmp_path / "ref")
        assert whole["final"]["accuracy"] == ref["final"]["accuracy"]
        assert whole["screened"] == ref["screened"]
        for name, tensors in _weights(tmp_path / "whole").items():
            other = _weights(tmp_path / "ref")[name]
            assert all(torch.allclose(v, other[k], atol=1e-5) for k, v in tensors.items())

    class Stop(Exception):
        pass

    def stop(stats, ev):
        if stats.round == 1:
            raise Stop

    cfg = load_config(None, over)
    with pytest.raises(Stop):
        run_experiment(cfg, tmp_path / "cut", stop)
    marker = json.loads((tmp_path / "cut" / "state" / "round_000002" / "run.json").read_text())
    trust = {(i, j): t for i, j, t in marker["aggregator"]["trust"]}
    assert trust[2, 3] == trust[4, 3] == 0.25  # the attacker's ring neighbours: two decays
    assert trust[2, 1] == 1.0
    assert marker["aggregator"]["screened"]["rejected"] > 0
    resumed = run_experiment(cfg, tmp_path / "cut", resume=True)
    assert resumed["screened"] == whole["screened"]  # the counts carried across the resume
    for name, tensors in _weights(tmp_path / "whole").items():
        other = _weights(tmp_path / "cut")[name]
        assert all(torch.equal(v, other[k]) for k, v in tensors.items()), name


def test_without_the_loss_screen_both_backends_agree(tmp_path):
    """``batch: 0``: no forward pass; the offset screen alone still rejects every sign flip."""
    torch.set_num_threads(1)
    over = [*BASE, ATTACKER, "aggregation.params={batch: 0}"]
    got = {b: run_experiment(load_config(None, [*over, f"runtime.backend={b}"]), tmp_path / b)
           for b in ("reference", "vectorized")}
    assert got["reference"]["final"] == got["vectorized"]["final"]
    assert got["reference"]["screened"] == got["vectorized"]["screened"]
    assert got["reference"]["screened"]["loss"] == 0
    assert [j for j, _ in got["reference"]["screened"]["rejected_from"]] == [3]


def _same_weights(a, b, atol):
    ours, theirs = _weights(a), _weights(b)
    assert sorted(ours) == sorted(theirs) and ours
    for name, tensors in ours.items():
        assert all(torch.allclose(v, theirs[name][k], atol=atol) for k, v in tensors.items()), \
            name


@pytest.mark.parametrize("backend", ["reference", "vectorized"])
@pytest.mark.parametrize("attacked", [False, True], ids=["clean", "sign_flip"])
def test_launch_gives_the_simulator_numbers(tmp_path, backend, attacked):
    """``robust`` under ``parsefl launch --nproc 2``: each worker screens its own receivers'
    copies on their own data and keeps their trust, so the run is the simulator's (numbers,
    the screen's counts summed over the ranks, weights); round-robin placement puts most
    copies, the attacker's included, across the wire."""
    from parsefl.experiments.distributed.launcher import launch

    over = [*BASE, "rounds=4", "eval_every=4", f"runtime.backend={backend}",
            "runtime.placement=round_robin", *([ATTACKER] if attacked else [])]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sim = run_experiment(load_config(None, over), tmp_path / "sim")
    finally:
        torch.set_num_threads(threads)
    launch(None, over, nproc=2, out_dir=tmp_path / "dist", wall_timeout_s=120)
    dist = json.loads((tmp_path / "dist" / "results.json").read_text())
    assert dist["distributed"]["backend"] == backend
    assert dist["screened"] == sim["screened"]
    assert (dist["screened"]["rejected"] > 0) == attacked
    assert [a["accuracy"] for a in dist["agents"]] == [a["accuracy"] for a in sim["agents"]]
    assert dist["final"] == sim["final"]
    _same_weights(tmp_path / "sim", tmp_path / "dist", atol=1e-6)


def test_launch_resumes_with_each_ranks_trust(tmp_path):
    """Each rank's checkpoint part holds its receivers' trust: a launch stopped after round 2
    and resumed to round 4 gives the whole launch's weights and screen counts."""
    from parsefl.experiments.distributed.launcher import launch

    over = [*BASE, ATTACKER, "eval_every=2", "runtime.placement=round_robin"]
    opts = {"nproc": 2, "wall_timeout_s": 120, "checkpoint_every": 2}
    whole = launch(None, [*over, "rounds=4"], out_dir=tmp_path / "whole", **opts)
    launch(None, [*over, "rounds=2"], out_dir=tmp_path / "cut", **opts)
    trust = {}
    for rank in (0, 1):  # round robin: rank 0 hosts 0, 2, 4 (the attacker's neighbours)
        part = json.loads((tmp_path / "cut" / "state" / "round_000002" / f"rank_{rank}.json")
                          .read_text())
        trust[rank] = {(i, j): t for i, j, t in part["aggregator"]["trust"]}
        assert {i % 2 for i, _ in trust[rank]} == {rank}  # its own receivers only
    assert trust[0][2, 3] == trust[0][4, 3] == 0.25  # two decays
    assert set(trust[1].values()) == {1.0}
    resumed = launch(None, [*over, "rounds=4"], resume=True, out_dir=tmp_path / "cut", **opts)
    assert resumed["screened"] == whole["screened"]
    _same_weights(tmp_path / "whole", tmp_path / "cut", atol=0)
