"""Each attack changes what is sent as its definition says (hand-made tensors), through the
adversary's send-path hook; both simulator backends send the same crafted copies."""

from __future__ import annotations

import math

import networkx as nx
import pytest
import torch
from conftest import make_agent

from parsefl.aggregation import build_aggregator
from parsefl.attacks import Adversary, AttackInput, build_attack
from parsefl.attacks.omniscient import alie_z
from parsefl.config import TrainConfig, load_config
from parsefl.errors import ConfigError
from parsefl.registry import ATTACKS, SHARING
from parsefl.runtime import InMemoryTransport, RoundEngine
from parsefl.runtime.vectorized import VectorizedExecutor
from parsefl.topology import StaticGraph

T = torch.tensor


def _input(**extra):
    """Recipient 0 holds (0, 0); its honest peer sends (2, 4); the attacker (own copy (1, -2))
    sits at column 2; MH weights 1/3 each."""
    base = dict(own=T([[1.0, -2.0]]), view=T([[[0.0, 0.0], [2.0, 4.0], [1.0, -2.0]]]),
                honest=T([[True, True, False]]), byzantine=T([[False, False, True]]),
                weights=T([[1 / 3, 1 / 3, 1 / 3]]), initial=T([[5.0, 5.0]]),
                keys=[(0, 7, 0, "c")])
    return AttackInput(**{**base, **extra})


def _craft(name, **params):
    return build_attack(name, params).craft(_input()).tolist()[0]


def test_model_poisoning_attacks_by_definition():
    assert _craft("sign_flip") == [-1.0, 2.0]
    assert _craft("scale", lam=3) == [3.0, -6.0]
    assert _craft("free_rider") == [5.0, 5.0]
    assert all(math.isnan(v) for v in _craft("nan"))
    # IPM: -eps * mean of the honest copies {(0, 0), (2, 4)} = -0.1 * (1, 2)
    assert _craft("ipm") == pytest.approx([-0.1, -0.2])
    # dissensus: x_i - eps * w (x_j - x_i) / w_byz = 0 - 1 * (2, 4)
    assert _craft("dissensus", epsilon=1.0) == pytest.approx([-2.0, -4.0])


def test_alie_mean_minus_z_std_with_the_papers_z():
    # n = 3 copies, m = 1 attacker: s = floor(3/2 + 1) - 1 = 1, z = Phi^-1(2/3)
    z = alie_z(3, 1)
    assert z == pytest.approx(0.430727, abs=1e-6)
    # honest {(0, 0), (2, 4)}: mean (1, 2), unbiased std (v2, 2v2)
    assert _craft("alie") == pytest.approx([1 - z * math.sqrt(2), 2 - z * 2 * math.sqrt(2)])
    assert _craft("alie", z=1.0) == pytest.approx([1 - math.sqrt(2), 2 - 2 * math.sqrt(2)])


def test_gaussian_adds_noise_of_the_given_norm_seeded_per_pair():
    attack = build_attack("gaussian", {"norm": 2.0})
    a = attack.craft(_input())
    b = attack.craft(_input())
    c = attack.craft(_input(keys=[(1, 7, 0, "c")]))
    assert torch.linalg.vector_norm(a - T([[1.0, -2.0]])).item() == pytest.approx(2.0)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_label_flip_trains_on_reversed_labels_and_sends_honestly():
    attack = build_attack("label_flip")
    assert attack.poison_labels(T([0, 1, 9]), 10).tolist() == [9, 8, 0]
    assert _craft("label_flip") == [1.0, -2.0]


def test_registry_and_config_errors():
    assert set(ATTACKS.names()) >= {"sign_flip", "scale", "gaussian", "alie", "ipm",
                                    "dissensus", "nan", "free_rider", "label_flip"}
    with pytest.raises(ConfigError) as err:
        load_config(None, ["adversary={agents: [1], attack: nope}"])
    assert err.value.field == "adversary.attack" and "sign_flip" in err.value.problem
    with pytest.raises(ConfigError) as err:
        load_config(None, ["adversary={agents: [1], count: 2}"])
    assert err.value.field == "adversary"
    with pytest.raises(ConfigError) as err:
        load_config(None, ["adversary={agents: [1], attack: label_flip, from_round: 3}"])
    assert err.value.field == "adversary.from_round"


def _path(aggregator, vectorized, attack, from_round=0):
    """enc.a held by agents 0-1-2 (a path overlay on a 4-ring, agent 3 holds b), values
    0, 3, 6; agent 2 attacks."""
    agents = [make_agent(i, "a") for i in range(3)] + [make_agent(3, "b")]
    for agent, value in zip(agents[:3], (0.0, 3.0, 6.0), strict=True):
        comp = agent.get_component("enc.a")
        agent.set_component("enc.a", {k: torch.full_like(v, value) for k, v in comp.items()})
    adversary = Adversary([2], build_attack(attack), from_round)
    engine = RoundEngine(agents, SHARING.get("parse")(), StaticGraph(nx.cycle_graph(4)),
                         InMemoryTransport(), aggregator=build_aggregator(aggregator),
                         adversary=adversary)
    if vectorized:
        engine.executor = VectorizedExecutor(engine, TrainConfig(local_steps=1, batch_size=4))
    engine.prepare(0)
    engine.round = 0
    engine.gossip()
    engine.sync()
    got = [{round(float(x), 5) for t in a.get_component("enc.a").values() for x in t.flatten()}
           for a in agents[:3]]
    return got, engine.checks.counts


@pytest.mark.parametrize("vectorized", [False, True])
def test_sign_flip_through_the_engine_both_backends(vectorized):
    # Agent 2 sends -6 to agent 1 (MH 1/3 each): (0 + 3 - 6) / 3 = -1; agent 0 is not its
    # neighbour on enc.a: 2/3 * 0 + 1/3 * 3 = 1; the attacker merges honestly: 2/3*6 + 1 = 5.
    got, counts = _path("mean", vectorized, "sign_flip")
    assert got == [{1.0}, {-1.0}, {5.0}] and counts == {}
    # clipped: agent 1's deltas -3 (from 0) and -9 (from 2): tau = the smaller, -9 -> -3
    got, _ = _path("clipped", vectorized, "sign_flip")
    assert got[1] == {1.0}


@pytest.mark.parametrize("vectorized", [False, True])
def test_nan_is_rejected_and_its_weight_goes_back(vectorized):
    # Agent 1 rejects agent 2's NaN copy: 2/3 * 3 + 1/3 * 0 = 2. Agent 2 sends NaN for every
    # component it shares: enc.a, head_r and head_u.a to agent 1, head_r to agent 3: 4 copies.
    got, counts = _path("mean", vectorized, "nan")
    assert got == [{1.0}, {2.0}, {5.0}] and counts == {"non_finite": 4}


@pytest.mark.parametrize("vectorized", [False, True])
def test_attack_waits_for_from_round(vectorized):
    got, _ = _path("mean", vectorized, "sign_flip", from_round=1)
    assert got == [{1.0}, {3.0}, {5.0}]


@pytest.mark.parametrize(("aggregator", "attack"), [
    ("clipped", "alie"), ("trimmed_mean", "dissensus"), ("median", "ipm"),
    ("geomed", "gaussian"), ("mean", "free_rider"), ("clipped", "nan"),
])
def test_vectorized_equals_reference_under_attack_on_a_full_build(aggregator, attack):
    from parsefl.experiments.run.build import build_experiment

    base = ["data.name=synthetic_pid", "data.params={n_samples: 300}", "partition.name=iid",
            "mix={m1: 2, m2: 2, m1+m2: 3}", "model.dim=12", "model.encoder.params={hidden: [8]}",
            "train.local_steps=2", "topology.name=ring", "overlay.name=relay",
            f"aggregation.name={aggregator}", "diagnostics.gradient_cosine=false",
            f"adversary={{agents: [1, 4], attack: {attack}}}"]
    runs = {}
    for backend in ("reference", "vectorized"):
        exp = build_experiment(load_config(None, [*base, f"runtime.backend={backend}"]))
        for r in range(2):
            exp.loop.step(r)
        exp.loop.sync()
        runs[backend] = exp
    ref, vec = runs["reference"], runs["vectorized"]
    assert isinstance(vec.loop.executor, VectorizedExecutor)
    assert ref.loop.checks.counts == vec.loop.checks.counts
    for a, b in zip(ref.agents, vec.agents, strict=True):
        for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True):
            assert torch.allclose(p, q, atol=1e-5)


def test_choosing_the_attackers():
    from parsefl.attacks.select import choose_adversaries
    from parsefl.config import AdversaryConfig

    groups = [("a",), ("a",), ("b",), ("b",), ("a", "b"), ("a", "b")]
    assert choose_adversaries(AdversaryConfig(agents=[4, 1, 4]), groups, 0) == [1, 4]
    two = choose_adversaries(AdversaryConfig(count=2), groups, 0)
    assert len(two) == 2 and two == choose_adversaries(AdversaryConfig(count=2), groups, 0)
    per = choose_adversaries(AdversaryConfig(per_group={"b": 1, "a+b": 2}), groups, 0)
    assert per[-2:] == [4, 5] and per[0] in (2, 3) and len(per) == 3
    with pytest.raises(ConfigError) as err:
        choose_adversaries(AdversaryConfig(per_group={"c": 1}), groups, 0)
    assert err.value.field == "adversary.per_group.c" and "a+b" in err.value.problem
    with pytest.raises(ConfigError) as err:
        choose_adversaries(AdversaryConfig(agents=[6]), groups, 0)
    assert err.value.field == "adversary.agents"
