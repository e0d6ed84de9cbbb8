"""A method's phases, and the ``rounds: auto`` stop that respects them (never inside a phase
that is not the last; a plateaued phase hands over to the next one)."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import networkx as nx
import pytest

from parsefl.config import load_config
from parsefl.experiments.run.convergence import PlateauStop, final_phase_start, stop_record
from parsefl.experiments.run.driver import RoundEnd
from parsefl.runtime import InMemoryTransport, RoundStats
from parsefl.sharing.harmony import Harmony
from parsefl.sharing.phases import Phases
from parsefl.topology import StaticGraph


def test_phases_name_each_round_and_move_when_one_ends_early():
    p = Phases(("a", "b", "c"), (0, 10, 30))
    assert [p.at(r) for r in (0, 9, 10, 29, 30, 99)] == ["a", "a", "b", "b", "c", "c"]
    p.begin_next(6)  # "a" plateaued after 6 rounds: "b" starts at round 6, "c" moves as much
    assert p.starts == [0, 6, 26] and p.at(5) == "a" and p.at(6) == "b"
    assert p.spans(20) == [{"name": "a", "start": 0, "rounds": 6, "ended_by": "plateau"},
                           {"name": "b", "start": 6, "rounds": 14, "ended_by": None}]
    assert p.spans(40)[1]["ended_by"] == "schedule" and p.spans(40)[2]["rounds"] == 14
    q = Phases(("a", "b", "c"), (0, 10, 30))
    q.load(p.state())
    assert q.starts == p.starts and q.spans(40) == p.spans(40)
    with pytest.raises(ValueError):
        p.begin_next(30)  # round 29 is in the final phase
    with pytest.raises(ValueError):
        Phases(("a", "b"), (0,))


def test_harmony_declares_its_two_stages():
    h = Harmony(rounds=60, stage1_fraction=0.5)
    assert h.phases.names == ("unimodal", "fusion") and h.phases.starts == [0, 30]
    assert h.phase(29) == "unimodal" and h.phase(30) == "fusion"
    assert h.plan_key(29) != h.plan_key(30)


def _stopper(phases: Phases, curves: dict[int, list]) -> PlateauStop:
    loop = SimpleNamespace(strategy=SimpleNamespace(phases=phases),
                           topology=StaticGraph(nx.path_graph(2)),
                           transport=InMemoryTransport())
    validate = SimpleNamespace(curves=curves, agents=[SimpleNamespace(id=0),
                                                      SimpleNamespace(id=1)])
    return PlateauStop(loop, validate, every=1, min_rounds=4)


def _end(r: int) -> RoundEnd:
    return RoundEnd(r, RoundStats(r, 0.0, Counter()), last=False)


def test_a_plateau_in_an_earlier_phase_starts_the_next_never_ends_the_run():
    phases = Phases(("one", "two"), (0, 50))
    flat = [(d, 0.5) for d in range(1, 11)]
    stop = _stopper(phases, {0: list(flat), 1: list(flat)})
    end = _end(9)  # 10 rounds done, a flat curve: phase "one" plateaued
    stop(end)
    assert not end.last and not stop.stopped and phases.starts == [0, 10]
    # Phase "two": too few of its own rounds yet, then its points alone are judged.
    rising = {i: flat + [(d, 0.5 + 0.05 * (d - 10)) for d in range(11, 15)] for i in (0, 1)}
    stop.validate.curves = rising
    end = _end(13)
    stop(end)
    assert not end.last  # 4 rounds of phase two, still gaining
    level = {i: rising[i] + [(d, 0.7) for d in range(15, 25)] for i in (0, 1)}
    stop.validate.curves = level
    end = _end(23)
    stop(end)
    assert end.last and stop.stopped
    assert stop_record(phases, 24, stop.stopped) == {
        "stopped_by": "plateau",
        "phases": [{"name": "one", "start": 0, "rounds": 10, "ended_by": "plateau"},
                   {"name": "two", "start": 10, "rounds": 14, "ended_by": None}]}
    assert final_phase_start(phases, 24) == 10


def test_one_agent_still_gaining_keeps_the_phase_going():
    phases = Phases(("one", "two"), (0, 50))
    flat = [(d, 0.5) for d in range(1, 11)]
    stop = _stopper(phases, {0: flat, 1: [(d, 0.05 * d) for d in range(1, 11)]})
    end = _end(9)
    stop(end)
    assert not end.last and phases.starts == [0, 50]


HARMONY_AUTO = ["method=harmony", "data.name=synthetic_pid",
                "data.params={label: mixed, n_samples: 800}", "mix={m1: 2, m2: 2, m1+m2: 2}",
                "partition.name=iid", "model.dim=12", "model.encoder.params.hidden=[16]",
                "device=cpu", "diagnostics.gradient_cosine=false", "rounds=auto",
                "train.val_fraction=0.2", "train.max_rounds=200", "eval_every=2"]


def test_harmony_with_rounds_auto_runs_both_stages_before_it_stops(tmp_path):
    from parsefl.experiments.run.simulate import run_experiment

    res = run_experiment(load_config(None, HARMONY_AUTO), tmp_path)
    names = [p["name"] for p in res["phases"]]
    assert names == ["unimodal", "fusion"], res["phases"]
    fusion = res["phases"][1]
    assert fusion["rounds"] >= 20  # at least min_rounds (10 evaluations) of stage 2
    assert res["stopped_by"] in ("plateau", "max_rounds")
    assert res["rounds_completed"] == fusion["start"] + fusion["rounds"]
    assert res["convergence"]["judged_from"] == fusion["start"]
    multi = res["final"]["accuracy"]["groups"]["m1+m2"]
    assert multi > 0.5, res["final"]  # the fusion head trained (chance is 1/8)
