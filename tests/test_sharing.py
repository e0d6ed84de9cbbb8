"""Sharing strategies as pure functions of capabilities and rounds: no models, no builds.

The plan-key contract (every registered strategy): what a strategy offers and exchanges is a
function of the capabilities and ``plan_key(round)`` alone, so every runtime may reuse its
gossip plans while the key stays the same.
"""

from __future__ import annotations

import pytest

from parsefl.registry import SHARING
from parsefl.sharing.base import Capability

ROUNDS = 10
UNI = Capability(0, ("a",), {"enc.a": "E", "head_r": "H", "head_u.a": "U",
                              "classifier": "C"})
MULTI = Capability(1, ("a", "b"), {"enc.a": "E", "enc.b": "F", "head_r": "H", "head_u.a": "U",
                                   "head_u.b": "V", "synergy.a+b": "S", "fusion.a+b": "G",
                                   "classifier": "C"})
NARROW = Capability(2, ("a",), {"enc.a": "e-narrow", "head_r": "H", "head_u.a": "U",
                                "classifier": "C"})
CAPS = [UNI, MULTI, NARROW]


def _strategy(name: str):
    return SHARING.get(name)(rounds=ROUNDS)


@pytest.mark.parametrize("name", SHARING.names())
def test_offer_depends_only_on_the_plan_key(name):
    strategy = _strategy(name)
    seen: dict = {}
    for r in range(ROUNDS):
        answer = tuple(
            (frozenset(strategy.offered(me, r)),
             tuple(strategy.exchanges(c, me, peer, r) for peer in CAPS for c in sorted(
                 set(me.signatures) & set(peer.signatures))))
            for me in CAPS)
        key = strategy.plan_key(r)
        assert seen.setdefault(key, answer) == answer, f"round {r} changed under one key"


@pytest.mark.parametrize("name", SHARING.names())
def test_offer_is_a_subset_of_what_the_agent_holds(name):
    strategy = _strategy(name)
    for me in CAPS:
        assert strategy.offered(me, 0) <= set(me.signatures)


def test_components_travel_only_with_equal_signatures():
    parse = _strategy("parse")
    assert parse.exchanges("head_r", UNI, NARROW, 0)
    assert not parse.exchanges("enc.a", UNI, NARROW, 0)  # wide and narrow trunks differ
    assert parse.exchanges("enc.a", UNI, MULTI, 0)
    assert parse.plan_key(0) == parse.plan_key(ROUNDS - 1) is None


def test_local_and_centralized_offer_nothing():
    for name in ("local", "centralized"):
        assert _strategy(name).offered(MULTI, 0) == set()


def test_monolithic_baselines_offer_by_prefix():
    assert _strategy("dsgd_task").offered(MULTI, 0) == {"classifier"}
    assert _strategy("dsgd_modality").offered(MULTI, 0) == {"enc.a", "enc.b"}
    assert _strategy("dsgd_hybrid").offered(UNI, 0) == {"enc.a", "classifier"}


def test_harmony_changes_its_offer_and_its_plan_key_at_the_stage_boundary():
    harmony = SHARING.get("harmony")(rounds=ROUNDS, stage1_fraction=0.3)
    assert [harmony.plan_key(r) for r in (0, 2, 3, 9)] == ["unimodal", "unimodal", "fusion",
                                                           "fusion"]
    assert harmony.offered(MULTI, 2) == {"enc.a", "enc.b", "head_u.a", "head_u.b"}
    assert harmony.offered(MULTI, 3) == {"fusion.a+b", "classifier"}
    assert harmony.offered(UNI, 3) == {"enc.a", "head_u.a"}  # unimodal: stage 1's sharing
