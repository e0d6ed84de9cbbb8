"""model.split: pid — slices sized from local PID estimates, agreed by flooding."""

from __future__ import annotations

import networkx as nx

from parsefl.config import load_config
from parsefl.experiments.run.build import build_experiment
from parsefl.experiments.studies.pid_split import flood

BASE = [
    "data.name=synthetic_pid",
    "partition.name=iid",
    "model.split=pid",
    "mix={m1: 2, m2: 2, m1+m2: 4}",
]


def _dims(label: str) -> list[dict[str, int]]:
    exp = build_experiment(load_config(None, [*BASE, f"data.params={{label: {label}}}"]))
    return [a.model.dims for a in exp.agents]


def test_pid_split_gives_synergy_data_a_larger_synergy_slice():
    redundancy, synergy = _dims("redundancy"), _dims("synergy")
    assert synergy[-1]["s"] > redundancy[-1]["s"]
    assert redundancy[-1]["r"] > synergy[-1]["r"]
    # Every agent agreed on r and u (unimodal agents have no s rows), so components match.
    for dims in (redundancy, synergy):
        assert len({(d["r"], d["u"]) for d in dims}) == 1
    # The floor keeps every slice alive (default 0.1 of D = 96).
    assert min(synergy[-1].values()) >= 9 and min(redundancy[-1].values()) >= 9


def test_flooding_reaches_every_connected_agent_only():
    graph = nx.Graph([(0, 1), (1, 2), (3, 4)])
    heard = flood(graph, {0: (1.0, 0.0, 0.0), 4: (0.0, 0.0, 1.0)})
    assert set(heard[2]) == {0} and set(heard[3]) == {4}
    assert heard[1][0] == (1.0, 0.0, 0.0)
