"""The runtime's contracts (``runtime.protocols``): every engine and executor has every member
of its protocol, so that no caller needs to probe for one."""

from __future__ import annotations

import networkx as nx
import pytest
from conftest import make_agent

from parsefl.config import TrainConfig
from parsefl.runtime import Engine, Executor, InMemoryTransport, RoundEngine
from parsefl.runtime.distributed import DistributedEngine
from parsefl.runtime.distributed_vectorized import DistributedVectorizedExecutor
from parsefl.runtime.reference import ReferenceExecutor
from parsefl.runtime.vectorized import VectorizedExecutor
from parsefl.sharing.base import SharingStrategy
from parsefl.topology import StaticGraph


def members(protocol: type) -> set[str]:
    """A protocol's attributes and methods, its bases' included."""
    names: set[str] = set()
    for cls in protocol.__mro__:
        if cls is object or cls.__name__ in {"Protocol", "Generic"}:
            continue
        names |= set(getattr(cls, "__annotations__", {}))
        names |= {n for n in vars(cls) if not n.startswith("_")}
    return names


def _engine(cls: type = RoundEngine) -> RoundEngine:
    agents = [make_agent(i, "a") for i in range(3)]
    return cls(agents, SharingStrategy(), StaticGraph(nx.cycle_graph(3)), InMemoryTransport())


def test_the_protocols_list_what_callers_use():
    assert {"train", "gossip", "sync", "reload", "backend_name"} <= members(Executor)
    assert {"checkpoint_state", "load_checkpoint_state"} <= members(Executor)
    assert {"step", "sync", "replay_schedules", "executor", "checks", "plans", "online",
            "plan_key", "plan_version", "adversary", "strategy"} <= members(Engine)


@pytest.mark.parametrize("cls", [RoundEngine, DistributedEngine])
def test_every_engine_has_every_member_of_the_engine_protocol(cls):
    engine = _engine(cls)
    assert sorted(n for n in members(Engine) if not hasattr(engine, n)) == []


@pytest.mark.parametrize(("cls", "protocol"), [
    (ReferenceExecutor, Executor), (VectorizedExecutor, Executor),
    (DistributedVectorizedExecutor, Executor)])
def test_every_executor_has_every_member_of_its_protocol(cls, protocol):
    engine = _engine()
    executor = cls(engine) if cls is ReferenceExecutor else cls(engine, TrainConfig())
    assert sorted(n for n in members(protocol) if not hasattr(executor, n)) == []


def test_the_backend_names_are_what_records_say():
    """results.json's ``dynamics.executor``: a distributed worker's stacked executor is the
    simulator's vectorized backend."""
    assert ReferenceExecutor.backend_name == "ReferenceExecutor"
    assert VectorizedExecutor.backend_name == "VectorizedExecutor"
    assert DistributedVectorizedExecutor.backend_name == "VectorizedExecutor"
