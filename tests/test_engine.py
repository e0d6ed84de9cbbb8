"""The round engine: plan caching keyed by the strategy's plan key, names, derived engines."""

from __future__ import annotations

import importlib.util

import networkx as nx
import pytest
from conftest import make_agent

from parsefl.aggregation import build_aggregator
from parsefl.errors import ConfigError
from parsefl.runtime import InMemoryTransport, RoundEngine
from parsefl.runtime.distributed import DistributedEngine
from parsefl.sharing.base import Capability, SharingStrategy
from parsefl.topology import StaticGraph


class EveryOtherRound(SharingStrategy):
    """Offers head_r only in even pairs of rounds: its plan key must change with them."""

    def plan_key(self, round):
        return round // 2 % 2

    def offered(self, me: Capability, round: int) -> set[str]:
        return {"head_r"} if self.plan_key(round) == 0 else set()


def _engine(strategy=None, **kw):
    agents = [make_agent(i, "a") for i in range(3)]
    return RoundEngine(agents, strategy or SharingStrategy(), StaticGraph(nx.cycle_graph(3)),
                       InMemoryTransport(), **kw)


def test_plans_are_rebuilt_exactly_when_the_plan_key_changes():
    engine = _engine(EveryOtherRound())
    offered = []
    for r in range(6):
        engine.prepare(r)
        offered.append((engine.plan_version, sorted(engine.plans[0].paths)))
    assert offered == [(1, ["head_r"]), (1, ["head_r"]), (2, []), (2, []), (3, ["head_r"]),
                       (3, ["head_r"])]


def test_plan_key_names_the_plans_and_plan_version_counts_the_rebuilds():
    """Without plan caching (the distributed engine) the plans are rebuilt every round: the
    version moves every round, the key (and error feedback's public copies) only with it."""
    engine = _engine(EveryOtherRound())
    engine.cache_plans = False
    seen = []
    for r in range(4):
        engine.prepare(r)
        seen.append((engine.plan_version, engine.plan_key))
    hkey = engine.handshake_key(0)
    assert seen == [(1, (hkey, 0)), (2, (hkey, 0)), (3, (hkey, 1)), (4, (hkey, 1))]


@pytest.mark.parametrize(("module", "old"), [
    ("parsefl.runtime", "RoundLoop"), ("parsefl.runtime.engine", "RoundLoop"),
    ("parsefl.runtime.distributed", "DistributedLoop"),
    ("parsefl.runtime.vectorized", "vectorizable"),
    ("parsefl.runtime.vectorized_blocker", "vectorizable")])
def test_the_old_names_are_gone(module, old):
    with pytest.raises(ImportError):
        exec(f"from {module} import {old}", {})


@pytest.mark.parametrize("module", ["parsefl.runtime.loop", "parsefl.attacks.hook",
                                    "parsefl.compressors.messages"])
def test_the_old_modules_are_gone(module):
    """The engine is ``runtime.engine`` (its reference executor ``runtime.reference``); the
    send-path hooks are ``runtime.send_path``."""
    assert importlib.util.find_spec(module) is None


def test_the_old_plan_epoch_is_gone():
    assert not hasattr(_engine(), "plan_epoch")


def test_the_old_worker_module_is_gone():
    assert importlib.util.find_spec("parsefl.experiments.launch") is None
    assert importlib.util.find_spec("parsefl.experiments.distributed.worker") is not None


def test_from_engine_keeps_the_rules_and_takes_the_agents():
    mean = build_aggregator("mean")
    template = _engine(overlay="relay", hops=3, aggregator=mean)
    local = [template.agents[1]]
    derived = DistributedEngine.from_engine(template, local, InMemoryTransport())
    assert isinstance(derived, DistributedEngine) and list(derived.agents) == [1]
    assert derived.overlay is template.overlay and derived.aggregator is mean
    assert derived.strategy is template.strategy and derived.radius == 3


def test_a_strategy_that_still_merges_is_refused():
    class OldStyle(SharingStrategy):
        name = "old_style"

        def merge(self, own, received, self_weight, weights):
            return dict(own)

    with pytest.raises(ConfigError, match="aggregator"):
        _engine(OldStyle())
