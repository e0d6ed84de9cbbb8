"""Networks that change: modality schedules, membership, warm starts, stragglers — in the
engine, in both backends and in the config."""

from __future__ import annotations

import networkx as nx
import pytest
import torch
from conftest import make_agent

from parsefl.config import load_config
from parsefl.errors import ConfigError
from parsefl.experiments.run.build import build_experiment
from parsefl.registry import SHARING
from parsefl.runtime import InMemoryTransport, RoundEngine
from parsefl.runtime.checks import ReceiveChecks
from parsefl.runtime.schedules import ScheduledMembership, ScheduledModalities
from parsefl.runtime.vectorized import VectorizedExecutor
from parsefl.topology import StaticGraph

AB = ("a", "b")
ALL = {"enc.a", "enc.b", "enc_s.a", "enc_s.b", "head_r", "head_u.a", "head_u.b", "synergy.a+b"}
# 1 - 0 - {3, 4}, 1 - 2: agent 1's MH weights are 1/(1+3) toward 0 and 1/(1+2) toward 2.
EDGES = [(0, 1), (1, 2), (0, 3), (0, 4)]


def _engine(n=5, edges=EDGES, **schedules):
    agents = [make_agent(i, AB) for i in range(n)]
    return RoundEngine(agents, SHARING.get("parse")(), StaticGraph(nx.Graph(edges)),
                       InMemoryTransport(), **schedules)


def _fill(agent, comp, value):
    agent.set_component(comp, {n: torch.full_like(t, value)
                               for n, t in agent.get_component(comp).items()})


def test_modality_events_and_outage_are_seeded_and_never_empty():
    sched = ScheduledModalities({0: AB, 1: AB}, [(1, "b", 2, 4)])
    assert [sched.at(r)[1] for r in range(5)] == [AB, AB, ("a",), ("a",), AB]
    assert sched.key(1) != sched.key(2) and sched.key(0) == sched.key(4)
    noisy = ScheduledModalities({i: AB for i in range(20)}, outage=0.3, seed=1)
    again = ScheduledModalities({i: AB for i in range(20)}, outage=0.3, seed=1)
    held = [noisy.at(r)[i] for r in range(10) for i in range(20)]
    assert held == [again.at(r)[i] for r in range(10) for i in range(20)]
    assert all(held) and 0.15 < sum(len(h) < 2 for h in held) / len(held) < 0.6


def test_membership_join_leave_offline():
    sched = ScheduledMembership(range(4), join={1: 2}, leave={3: 1})
    assert [sorted(sched.at(r)) for r in range(3)] == [[0, 2, 3], [0, 2], [0, 1, 2]]
    flaky = ScheduledMembership(range(50), offline=0.3, seed=0)
    share = sum(len(flaky.at(r)) for r in range(10)) / 500
    assert 0.55 < share < 0.85 and flaky.at(3) == ScheduledMembership(
        range(50), offline=0.3, seed=0).at(3)


def test_scheduled_loss_changes_exactly_the_offered_components_at_its_round():
    engine = _engine(modalities=ScheduledModalities({i: AB for i in range(5)},
                                                    [(1, "b", 2, None)]))
    offered = []
    for r in range(4):
        engine.prepare(r)
        offered.append(set(engine.plans[1].paths))
    lost = {"enc.b", "enc_s.a", "enc_s.b", "head_u.b", "synergy.a+b"}
    assert offered == [ALL, ALL, ALL - lost, ALL - lost]
    assert set(engine.plans[0].paths["enc.b"]) == {3, 4}  # 1 no longer holds it
    assert engine.agents[1].held == ("a",) and "enc.b" in engine.agents[1].component_params


def test_regained_components_start_from_the_weighted_neighbours_copies():
    engine = _engine(modalities=ScheduledModalities({i: AB for i in range(5)},
                                                    [(1, "b", 1, 2)]))
    engine.prepare(0)
    engine.prepare(1)
    kept = engine.agents[1].get_component("enc.a")
    for comp in ("enc.b", "head_u.b", "synergy.a+b", "enc.a"):
        _fill(engine.agents[0], comp, 1.0)
        _fill(engine.agents[2], comp, 8.0)
    engine.prepare(2)  # 1 regains b: its b-components = (1/4 * 1 + 1/3 * 8) / (1/4 + 1/3) = 5
    for comp in ("enc.b", "head_u.b", "synergy.a+b"):
        for t in engine.agents[1].get_component(comp).values():
            assert torch.allclose(t, torch.full_like(t, 5.0), atol=1e-6), comp
    for n, t in engine.agents[1].get_component("enc.a").items():  # never lost: untouched
        assert torch.equal(t, kept[n])
    assert all(float(t.flatten()[0]) == 1.0 for t in engine.agents[0].get_component(
        "enc.b").values())



def test_warm_start_copies_pass_the_receive_checks():
    """A peer's copy that the receive checks reject is counted and left out of the warm start,
    as the distributed transport (which checks every message it delivers) leaves it out."""
    engine = _engine(modalities=ScheduledModalities({i: AB for i in range(5)},
                                                    [(1, "b", 1, 2)]),
                     checks=ReceiveChecks(max_norm=1e3))
    engine.prepare(0)
    engine.prepare(1)
    for comp in ("enc.b", "head_u.b", "synergy.a+b"):
        _fill(engine.agents[0], comp, 1.0)
        _fill(engine.agents[2], comp, 1e4)  # over the bound: rejected
    engine.prepare(2)  # 1 regains b from 0's copy alone
    for comp in ("enc.b", "head_u.b", "synergy.a+b"):
        for t in engine.agents[1].get_component(comp).values():
            assert torch.equal(t, torch.ones_like(t)), comp
    assert engine.checks.counts == {"norm": 3}

def test_a_late_joiner_warm_starts_and_offline_agents_do_not_train():
    engine = _engine(membership=ScheduledMembership(range(5), join={1: 2}))
    before = {c: engine.agents[1].get_component(c) for c in ALL}
    engine.step(0)
    engine.step(1)
    for c in ALL:  # offline: neither trained nor merged
        for n, t in engine.agents[1].get_component(c).items():
            assert torch.equal(t, before[c][n])
    engine.prepare(2)
    w0, w2 = 1 / 4, 1 / 3
    copies = {j: engine.agents[j].get_component("head_r") for j in (0, 2)}
    for n, t in engine.agents[1].get_component("head_r").items():
        expect = (w0 * copies[0][n] + w2 * copies[2][n]) / (w0 + w2)
        assert torch.allclose(t, expect, atol=1e-6)


BASE = ["data.name=synthetic_pid", "data.params={n_samples: 600}", "mix={m1: 3, m2: 2, m1+m2: 3}",
        "model.dim=12", "model.encoder.params={hidden: [16]}", "train.local_steps=2",
        "train.optimizer=sgd", "train.lr=0.05", "topology.name=ring"]
DYNAMIC = ["dynamics.modalities.events=[{agent: 6, modality: m2, lose: 1, regain: 3}]",
           "dynamics.membership.offline=0.3", "dynamics.membership.join={2: 2}",
           "dynamics.local_steps={min: 1, max: 3}"]


def _run(backend, extra=(), rounds=4):
    exp = build_experiment(load_config(None, [*BASE, *DYNAMIC, f"runtime.backend={backend}",
                                              *extra]))
    stats = [exp.loop.step(r) for r in range(rounds)]
    exp.loop.sync()
    return exp, stats


def test_vectorized_runs_every_schedule_like_the_reference():
    ref, ref_stats = _run("reference")
    vec, vec_stats = _run("vectorized")
    assert isinstance(vec.loop.executor, VectorizedExecutor)
    for s, t in zip(ref_stats, vec_stats, strict=True):
        assert s.link_bytes == t.link_bytes and s.loss == pytest.approx(t.loss, abs=1e-5)
    with torch.no_grad():
        for a, b in zip(ref.agents, vec.agents, strict=True):
            x = {m: ref.test_x[m] for m in a.modalities}
            assert torch.allclose(a.model.logits(x), b.model.logits(x), atol=5e-4), a.id


@pytest.mark.parametrize("override, field", [
    ("dynamics.modalities.events=[{agent: 0, modality: m2, lose: 1}]",
     "dynamics.modalities.events.0.modality"),
    ("dynamics.modalities.events=[{agent: 9, modality: m1, lose: 1}]",
     "dynamics.modalities.events.0.agent"),
    ("dynamics.modalities.events=[{agent: 0, modality: m1, lose: 1}]",
     "dynamics.modalities.events"),
    ("dynamics.membership.join={12: 3}", "dynamics.membership.join"),
    ("dynamics.local_steps={m3: 2}", "dynamics.local_steps.m3"),
])
def test_bad_dynamics_name_the_field(override, field):
    with pytest.raises(ConfigError) as err:
        build_experiment(load_config(None, [*BASE, override]))
    assert err.value.field == field


def test_edge_dropout_keeps_subsets_of_the_base_per_seed_and_round():
    from parsefl.topology import build_topology

    ring = {(i, (i + 1) % 8) if i < 7 else (0, 7) for i in range(8)}
    assert set(build_topology("edge_dropout", 8, 0, {"p": 0.0}).at(3).edges()) == ring
    assert build_topology("edge_dropout", 8, 0, {"p": 1.0}).at(3).number_of_edges() == 0
    half = build_topology("edge_dropout", 8, 0, {"p": 0.5})
    rounds = [frozenset(half.at(r).edges()) for r in range(6)]
    assert all(r <= ring for r in rounds) and len(set(rounds)) > 1
    assert rounds[4] == frozenset(build_topology("edge_dropout", 8, 0, {"p": 0.5}).at(4).edges())
    with pytest.raises(ConfigError) as err:
        build_topology("edge_dropout", 8, 0, {"p": 0.1, "base": "mobility"})
    assert err.value.field == "topology.params.base"


def test_mobility_is_a_random_geometric_graph_of_moving_points():
    from parsefl.topology import build_topology

    still = build_topology("mobility", 10, 0, {"speed": 0.0})
    assert set(still.at(0).edges()) == set(still.at(7).edges())
    assert build_topology("mobility", 10, 0, {"radius": 0.75}).at(5).number_of_edges() == 45
    moving = build_topology("mobility", 10, 0, {"speed": 0.2})
    assert len({frozenset(moving.at(r).edges()) for r in range(5)}) > 1


def test_a_time_varying_graph_re_plans_every_round():
    from parsefl.topology import build_topology

    agents = [make_agent(i, AB) for i in range(4)]
    engine = RoundEngine(agents, SHARING.get("parse")(),
                         build_topology("edge_dropout", 4, 0, {"p": 0.5}), InMemoryTransport())
    for r in range(3):
        engine.step(r)
    assert engine.plan_version == 3


class _Stop(Exception):
    pass


@pytest.mark.parametrize("backend", ["reference", "vectorized"])
def test_resume_across_a_modality_change_equals_the_whole_run(backend, tmp_path):
    from parsefl.experiments.run.simulate import run_experiment

    def stop(stats, ev):
        if stats.round == 3:
            raise _Stop

    cfg = load_config(None, [*BASE, "rounds=7", "eval_every=7", "runtime.checkpoint_every=2",
                             f"runtime.backend={backend}", "train.optimizer=adam",
                             "dynamics.modalities.events=[{agent: 6, modality: m2, lose: 2, "
                             "regain: 5}]", "dynamics.membership.join={2: 5}"])
    whole = run_experiment(cfg, tmp_path / "whole")
    with pytest.raises(_Stop):
        run_experiment(cfg, tmp_path / "cut", stop)  # checkpoint after round 3 (4 done)
    resumed = run_experiment(cfg, tmp_path / "cut", resume=True)
    strip = lambda r: {k: v for k, v in r.items() if k != "wall_time_s"}  # noqa: E731
    assert strip(resumed) == strip(whole)


def test_stragglers_steps_per_group_or_drawn_per_agent_and_round():
    from parsefl.experiments.run.dynamics import _steps

    groups = [("m1",), ("m2",), ("m1", "m2")]
    by_group = _steps({"m1+m2": 4}, groups, seed=0)
    assert [by_group(i, 3) for i in range(3)] == [None, None, 4]
    drawn = _steps({"min": 1, "max": 3}, groups, seed=0)
    values = [drawn(i, r) for i in range(3) for r in range(30)]
    assert set(values) == {1, 2, 3} and values == [_steps({"min": 1, "max": 3}, groups, 0)(i, r)
                                                    for i in range(3) for r in range(30)]
    agent = make_agent(0, AB)
    agent.train_cfg = agent.train_cfg.model_copy(update={"local_steps": 1})
    agent.steps = 3
    assert len(agent.batches()) == 3
