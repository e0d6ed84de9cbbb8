"""Capability entries signed end to end (issue 23): in a signed run each entry of the handshake
is signed by the agent it describes for the handshake's epoch, so a relay (a valid identity)
can neither claim capabilities for another agent, strip a signature, nor replay an older entry;
each such entry is counted and dropped. An honest relayed entry gives the unsigned plans."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import networkx as nx
import pytest

from parsefl.overlays import make_overlay
from parsefl.runtime.handshake import discover, plan_gossip
from parsefl.runtime.transport import InMemoryTransport, Message
from parsefl.runtime.transport_base import NetworkTransport
from parsefl.runtime.wire import WireError, check_control
from parsefl.security import FrameAuth, Identities, init_keys
from parsefl.sharing.base import Capability, SharingStrategy

N = 4
# Path 0 - 1 - 2 - 3: agent 0 hears of agent 2 only through agent 1 (the relay under test).
GRAPH = nx.path_graph(N)
CAPS = {0: Capability(0, ("a",), {"ca": "x", "h": "h"}),
        1: Capability(1, ("a",), {"ca": "x", "h": "h"}),
        2: Capability(2, ("b",), {"cb": "y", "h": "h"}),
        3: Capability(3, ("b",), {"cb": "y", "h": "h"})}

Tamper = Callable[[dict], dict]  # the relay's rewrite of agent 2's entry


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("caps") / "keys"
    init_keys(folder, N)
    return folder


@dataclass
class Solo(NetworkTransport):
    """Every agent in one process: the network transport's checks and counts, no network.
    ``tamper`` is agent 1 relaying agent 2's entry to agent 0 (a valid identity that lies)."""

    tamper: Tamper | None = None

    @classmethod
    def build(cls, settings, wiring):  # noqa: ANN001, ANN206  (never built from settings)
        raise NotImplementedError

    def _swap(self, frames):  # noqa: ANN001, ANN202  (no peer process)
        return {}

    def exchange(self, messages):  # noqa: ANN001, ANN201
        return super().exchange([_relay(m, self.tamper) for m in messages])


class Tampering(InMemoryTransport):
    """The simulator's transport under the same relay: what the attack does unsigned."""

    def __init__(self, tamper: Tamper) -> None:
        super().__init__()
        self.tamper = tamper

    def exchange(self, messages):  # noqa: ANN001, ANN201
        return super().exchange([_relay(m, self.tamper) for m in messages])


def _relay(msg: Message, tamper: Tamper | None) -> Message:
    if tamper is None or msg.kind != "caps" or (msg.src, msg.dst) != (1, 0):
        return msg
    return replace(msg, body=[(tamper(dict(e)) if e["agent"] == 2 else e, p)
                              for e, p in msg.body])


def _signed(keys, tamper: Tamper | None = None) -> Solo:
    return Solo(0, [0] * N, {}, auth=FrameAuth(Identities(keys, range(N))), tamper=tamper)


def _handshake(transport, caps: Mapping[int, Capability] = CAPS, epoch: int = 0):
    overlay = make_overlay("relay", 2)
    known = discover(caps, GRAPH, transport, overlay.radius, epoch)
    return known, plan_gossip(caps, known, SharingStrategy(), transport, epoch, overlay, GRAPH)


def _claims_a(entry: dict) -> dict:
    """Agent 2 'holds' modality a too: agent 0 would exchange ``ca`` with it."""
    return {**entry, "modalities": ["a", "b"], "signatures": {**entry["signatures"], "ca": "x"}}


def _resigned_by_relay(keys) -> Tamper:
    relay = FrameAuth(Identities(keys, [1]))  # the relay's process has its own key only
    return lambda e: {**_claims_a(e), "sig": relay.sign_blob(1, b"anything")}


def test_honest_relayed_entries_are_accepted_and_plan_as_unsigned(keys):
    signed = _signed(keys)
    known, plans = _handshake(signed)
    plain_known, plain = _handshake(InMemoryTransport())
    assert plans == plain and known == plain_known
    assert plans[0].paths["h"] == {1: (0, 1), 2: (0, 1, 2)}  # agent 2 came through the relay
    assert signed.wire["rejected"] == 0 and signed.checks.counts == {}


@pytest.mark.parametrize("forge", [
    lambda keys: _claims_a,  # the relay kept agent 2's signature
    _resigned_by_relay,  # ... or signed with its own key
], ids=["altered", "relay-signed"])
def test_a_relay_claiming_capabilities_for_another_agent_is_refused_and_counted(
        keys, caplog, forge):
    # Unsigned, the lie is believed: agent 0 plans ca with 1 and 2, tells agent 1 it has two
    # peers, and agent 1 weighs agent 0's copy 1/3 instead of 1/2 (agent 2 never confirms).
    fooled_known, fooled = _handshake(Tampering(forge(keys)))
    assert fooled_known[0][2][0].modalities == ("a", "b")
    assert fooled[1].weights["ca"] == pytest.approx({0: 1 / 3})
    transport = _signed(keys, forge(keys))
    with caplog.at_level(logging.WARNING):
        known, plans = _handshake(transport)
    assert transport.wire["rejected"] == 1 and transport.checks.counts == {"capability": 1}
    assert "rejected capability entry of agent 2 from agent 1 (round -1, call 2): capability " \
        "entry not signed by agent 2" in caplog.text
    # the forged entry was agent 0's only news of agent 2: it is dropped, nothing replaces it
    assert 2 not in known[0] and all(2 not in peers for peers in plans[0].paths.values())
    assert plans[0].paths["ca"] == {1: (0, 1)} and plans[1].weights["ca"] == {0: 0.5}


def test_a_relay_stripping_the_signature_is_refused_and_counted(keys, caplog):
    transport = _signed(keys, lambda e: {k: v for k, v in e.items() if k != "sig"})
    with caplog.at_level(logging.WARNING):
        known, _ = _handshake(transport)
    assert transport.wire["rejected"] == 1 and transport.checks.counts == {"capability": 1}
    assert "agent 2 from agent 1 (round -1, call 2): unsigned capability entry" in caplog.text
    assert 2 not in known[0] and 2 in known[1]  # agent 1 itself heard it from agent 2


def test_a_replayed_entry_from_an_earlier_handshake_is_refused(keys, caplog):
    """Round 0: agent 2 holds a and b. Round 5 (a dynamics change re-runs the handshake): it
    holds b only; the relay replays its round-0 entry, validly signed by agent 2."""
    before = {**CAPS, 2: Capability(2, ("a", "b"), {"ca": "x", "cb": "y", "h": "h"})}
    recorded: dict = {}
    _handshake(_signed(keys, lambda e: recorded.setdefault("entry", e)), before, epoch=0)
    assert recorded["entry"]["epoch"] == 0 and "a" in recorded["entry"]["modalities"]
    fooled_known, fooled = _handshake(Tampering(lambda e: recorded["entry"]), epoch=5)
    assert fooled_known[0][2][0] == before[2]  # unsigned, the stale entry would be believed
    assert fooled[1].weights["ca"] == pytest.approx({0: 1 / 3})
    transport = _signed(keys, lambda e: recorded["entry"])
    with caplog.at_level(logging.WARNING):
        known, plans = _handshake(transport, epoch=5)
    assert transport.wire["rejected"] == 1 and transport.checks.counts == {"capability": 1}
    assert "stale capability entry (made for epoch 0, this handshake's is 5)" in caplog.text
    assert 2 not in known[0] and plans[1].weights["ca"] == {0: 0.5}


def test_a_sealed_entry_passes_the_wire_checks_and_a_malformed_seal_does_not(keys):
    entry = _signed(keys).seal.sign({"agent": 2, "modalities": ["b"], "signatures": {}}, 3)
    assert set(entry) == {"agent", "modalities", "signatures", "epoch", "sig"}
    check_control(Message(1, 0, "caps", [[entry, [2, 1]]], (1, 0)), None, N)
    for bad in ({"epoch": "3"}, {"epoch": -1}, {"sig": 7}, {"sig": "ab" * 100}):
        with pytest.raises(WireError):
            check_control(Message(1, 0, "caps", [[{**entry, **bad}, [2, 1]]], (1, 0)), None, N)


# -- one real signed run of two processes; rank 1's agent 1 forges agent 2's entry ----------

FORGER = '''
import dataclasses, os, sys
# only in rank 1's worker (the launching test process imports this file too)
if sys.argv[0].endswith("worker.py") and os.environ.get("RANK") == "1":
    from parsefl.runtime.transport_base import NetworkTransport
    honest = NetworkTransport.exchange

    def forged(entry, mine):
        """Agent 2 (rank 0's) 'holds' m1 as well, with agent 1's own enc.m1 signature."""
        return {**entry, "modalities": [*entry["modalities"], "m1"],
                "signatures": {**entry["signatures"], "enc.m1": mine["signatures"]["enc.m1"]}}

    def exchange(self, messages):
        out = []
        for m in messages:
            if m.kind == "caps" and (m.src, m.dst) == (1, 0):
                mine = next(e for e, _ in m.body if e["agent"] == 1)
                m = dataclasses.replace(m, body=[(forged(e, mine) if e["agent"] == 2 else e, p)
                                                 for e, p in m.body])
            out.append(m)
        return honest(self, out)

    NetworkTransport.exchange = exchange
'''


def test_a_signed_two_process_run_refuses_a_forged_relayed_entry(tmp_path):
    from test_distributed import BASE, BOUND_S

    from parsefl.experiments.distributed.launcher import launch

    (tmp_path / "forger.py").write_text(FORGER)
    # Ring 0-1-2-3-4-5, agents 0, 2, 4 on rank 0 and 1, 3, 5 on rank 1: agent 0 (m1) hears of
    # agent 2 (m2) only through agent 1. Unsigned, agent 0 would plan enc.m1 with agent 2.
    overrides = [*BASE, "rounds=1", "eval_every=1", "overlay.name=relay", "overlay.hops=2",
                 "runtime.auth=true"]
    results = launch(None, overrides, nproc=2, out_dir=tmp_path / "run", placement="round_robin",
                     wall_timeout_s=BOUND_S, plugins=[tmp_path / "forger.py"])
    info = results["distributed"]
    assert info["authenticated"] and info["rejected_messages"] == 1
    assert results["rejected_messages"] == {"capability": 1}
    summary = json.loads((tmp_path / "run" / "logs" / "summary_rank_0.json").read_text())
    assert summary["wire"]["rejected"] == 1 and summary["rejected"] == {"capability": 1}
    log = (tmp_path / "run" / "logs" / "rank_0.log").read_text()
    assert "rejected capability entry of agent 2 from agent 1" in log
    assert "not signed by agent 2" in log
    plans = json.loads((tmp_path / "run" / "logs" / "plans_rank_0.json").read_text())
    # The forged entry was agent 0's only news of agent 2: dropped, not replaced. Believed
    # (unsigned), it would make agent 0 plan enc.m1 with agent 2 and announce 4 peers instead
    # of 3: agent 4 would weigh agent 0's copy 1/5 instead of 1/(1 + 3).
    assert all("2" not in plan["paths"] for plan in plans["0"].values())
    assert sorted(plans["0"]["enc.m1"]["paths"]) == ["1", "4", "5"]
    assert plans["4"]["enc.m1"]["weights"] == {"0": 0.25, "5": 0.25}


def test_a_signed_launch_with_dynamics_gives_the_simulator_numbers(tmp_path):
    """Agents drop out, join late and lose a modality: the handshake re-runs for new epochs in
    both processes in lockstep, and every honest entry verifies for its epoch."""
    from test_distributed import _simulate
    from test_dynamics_launch import DYN, _strip

    from parsefl.experiments.distributed.launcher import launch

    overrides = [*DYN, "runtime.backend=reference"]
    dist = launch(None, [*overrides, "runtime.auth=true"], nproc=2, out_dir=tmp_path / "dist",
                  wall_timeout_s=120)
    assert _strip(dist) == _strip(_simulate(tmp_path / "sim", overrides))
    assert dist["distributed"]["authenticated"] and dist["distributed"]["rejected_messages"] == 0
