"""Schedules as inputs of the round engine: the handshake re-runs when one of them changes."""

from __future__ import annotations

import networkx as nx
from conftest import make_agent

from parsefl.registry import SHARING
from parsefl.runtime import InMemoryTransport, RoundEngine
from parsefl.runtime.schedules import (
    AlwaysOnline,
    ConstantModalities,
    MembershipSchedule,
    ModalitySchedule,
)
from parsefl.topology import StaticGraph


class CountingTransport(InMemoryTransport):
    """Counts discovery ("caps") and planning ("degree") exchanges."""

    def __init__(self):
        super().__init__()
        self.calls = {"caps": 0, "degree": 0}

    def exchange(self, messages):
        messages = list(messages)
        for kind in self.calls:
            self.calls[kind] += any(m.kind == kind for m in messages)
        return super().exchange(messages)


class OfflineFrom(MembershipSchedule):
    """Agent ``who`` goes offline from round ``start`` on."""

    def __init__(self, agents, who, start):
        self.agents, self.who, self.start = frozenset(agents), who, start

    def at(self, round):
        return self.agents - {self.who} if round >= self.start else self.agents


class ChangesAt(ModalitySchedule):
    """The same modalities, but announced as a new assignment from round ``start`` on."""

    def __init__(self, held, start):
        self.held, self.start = held, start

    def at(self, round):
        return self.held

    def key(self, round):
        return round >= self.start


def _engine(**schedules):
    agents = [make_agent(i, "a") for i in range(4)]
    return RoundEngine(agents, SHARING.get("parse")(), StaticGraph(nx.cycle_graph(4)),
                       CountingTransport(), **schedules)


def test_constant_schedules():
    held = ConstantModalities({0: ["a"], 1: ("a", "b")})
    assert held.at(7) == {0: ("a",), 1: ("a", "b")} and held.key(0) == held.key(9)
    online = AlwaysOnline([2, 0])
    assert online.at(3) == frozenset({0, 2}) and online.key(0) == online.key(5)


def test_constant_schedules_handshake_once():
    engine = _engine()
    for r in range(3):
        engine.prepare(r)
    assert engine.transport.calls == {"caps": 1, "degree": 1} and engine.plan_version == 1


def test_membership_change_reruns_the_handshake_without_the_offline_agent():
    engine = _engine(membership=OfflineFrom(range(4), who=2, start=1))
    engine.prepare(0)
    assert set(engine.plans[1].paths["enc.a"]) == {0, 2}
    engine.prepare(1)
    assert engine.transport.calls["caps"] == 2 and 2 not in engine.plans
    assert set(engine.plans[1].paths["enc.a"]) == {0}
    engine.prepare(2)
    assert engine.transport.calls == {"caps": 2, "degree": 2} and engine.plan_version == 2


def test_modality_change_reruns_the_handshake():
    engine = _engine(modalities=ChangesAt({i: ("a",) for i in range(4)}, start=2))
    for r in range(4):
        engine.prepare(r)
    assert engine.transport.calls == {"caps": 2, "degree": 2}
