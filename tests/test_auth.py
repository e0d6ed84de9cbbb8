"""Identities and signed frames: `parsefl keys init` output is trusted only as issued, and a
running process with authentication accepts 0 frames of each attack (unknown certificate, a
valid certificate claiming another agent, replay, bad signature, truncation, no signature,
oversized announcement), logging and counting each."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from two_ranks import join, run_pair

from parsefl.errors import ConfigError
from parsefl.security import FrameAuth, Identities, init_keys
from parsefl.security.frames import _signed_bytes


def test_keys_init_writes_a_ca_certificates_and_a_peers_file(tmp_path):
    peers = init_keys(tmp_path / "k", 3)
    data = json.loads(peers.read_text())
    assert [a["id"] for a in data["agents"]] == [0, 1, 2]
    assert oct((tmp_path / "k" / "private" / "agent_0001.key").stat().st_mode)[-3:] == "600"
    ids = Identities(tmp_path / "k", [1])
    assert set(ids.public) == {0, 1, 2} and set(ids.private) == {1}
    auth, other = FrameAuth(ids), FrameAuth(Identities(tmp_path / "k"))
    head = auth.stamp({"src": 1, "dst": 0}, b"abc", call=5)
    other.check(head, b"abc", call=5)  # accepted once
    for region, call, why in ((b"abc", 5, "replayed"), (b"abd", 5, "bad signature"),
                              (b"abc", 6, "bad signature")):
        with pytest.raises(ValueError, match=why):
            other.check({**head, "call": call} if call != 5 else head, region, call)
    with pytest.raises(ConfigError, match="already holds keys"):
        init_keys(tmp_path / "k", 3)


def test_a_certificate_from_another_ca_is_not_trusted(tmp_path):
    init_keys(tmp_path / "a", 2)
    init_keys(tmp_path / "b", 2)
    (tmp_path / "a" / "certs" / "agent_0001.pem").write_bytes(
        (tmp_path / "b" / "certs" / "agent_0001.pem").read_bytes())
    with pytest.raises(ConfigError, match="not issued by the CA"):
        Identities(tmp_path / "a")


def test_each_attack_on_a_running_process_is_refused_and_counted(tmp_path):
    init_keys(tmp_path / "keys", 4)
    init_keys(tmp_path / "rogue", 4)
    got = run_pair(__file__, tmp_path)
    assert got["accepted"] == [1, 8]  # the calls with an honest frame
    assert got["rejected"] == 7 and list(got["lost"]) == ["1"]
    log = (tmp_path / "rank0.log").read_text()
    for reason in ("replayed message", "unknown certificate", "certificate of agent 2 used to "
                   "claim agent 1", "bad signature", "byte range", "unsigned", "exceeds"):
        assert log.count(reason) == 1, reason


def test_signed_launch_gives_the_simulator_numbers(tmp_path):
    from test_distributed import BOUND_S as WALL
    from test_distributed import EQUAL, _simulate, _strip

    from parsefl.experiments.distributed.launcher import launch
    from parsefl.experiments.distributed.merge import merge_run

    overrides = [*EQUAL, "rounds=2", "eval_every=1", "runtime.auth=true"]
    dist = launch(None, overrides, nproc=2, out_dir=tmp_path / "dist", wall_timeout_s=WALL)
    assert _strip(dist) == _strip(_simulate(tmp_path / "sim", overrides))
    info = dist["distributed"]
    assert info["authenticated"] and not info["encrypted"] and info["transport"] == "gloo"
    assert info["rejected_messages"] == 0 and (tmp_path / "dist" / "keys" / "ca.pem").is_file()
    assert "signed frames" in (tmp_path / "dist" / "logs" / "rank_1.log").read_text()
    (tmp_path / "dist" / "results.json").unlink()  # `parsefl merge` rebuilds it from the logs
    merged = merge_run(tmp_path / "dist")
    assert _strip(merged) == _strip(dist) and merged["distributed"]["authenticated"]


def _run(rank: int, port: int, out: Path) -> None:
    from parsefl.runtime import distributed
    from parsefl.runtime import transport_base as wire  # where frames are encoded

    store = join(rank, port, out)
    owner = [0, 1, 1, 1]
    mine = [i for i in range(4) if owner[i] == rank]
    specs = {(i, "c"): {"w": ("float32", (2, 3))} for i in mine}
    auth = FrameAuth(Identities(out / "keys", mine))
    transport = distributed.DistributedTransport(rank, owner, specs, store, 20.0, auth=auth)
    if rank == 1:
        _attack(transport, wire, out, store)
        return
    accepted = []
    for call in range(1, 10):
        if transport.exchange([]).get(0):
            accepted.append(call)
    (out / "rank0.json").write_text(json.dumps({
        "accepted": accepted, "rejected": transport.wire["rejected"],
        "lost": {str(k): v for k, v in transport.lost.items()}}))


def _attack(transport, wire, out: Path, store) -> None:
    from parsefl.runtime.transport import Message

    original = wire.encode
    msg = Message(1, 0, "params", {"w": torch.ones(2, 3)}, (1, 0), "c")

    def signed(stamp):
        return original([msg], lambda head, region: stamp(head, region, transport.calls + 1))

    def as_agent_2(head, region, call):
        head = {**head, "call": call, "seq": 99, "cert": both.fingerprints[2]}
        return {**head, "sig": both.sign(2, _signed_bytes(head, region)).hex()}

    both = Identities(out / "keys", [2])
    honest = signed(transport.auth.stamp)
    flipped = signed(transport.auth.stamp)
    flipped[1][0] ^= 1
    short = signed(transport.auth.stamp)
    frames = [honest, honest,  # the second is a replay
              signed(FrameAuth(Identities(out / "rogue", [1])).stamp),
              signed(as_agent_2), flipped, (short[0], short[1][:20]), original([msg]),
              None]  # an honest frame again
    for frame in frames:
        wire.encode = (lambda msgs, stamp=None, f=frame: f) if frame else original
        transport.exchange([msg])
    transport.calls += 1
    transport.notes.put(transport._key(1, 0), f"1 100 {2**31}")  # signed, but oversized


if __name__ == "__main__":
    _run(int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]))
