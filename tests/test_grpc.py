"""The gRPC transport with mutual TLS: the simulator's numbers over real processes with no
store, refusal without certificates, plaintext only with --insecure (recorded), a killed first
process survived, and a server that refuses foreign certificates and forged requests."""

from __future__ import annotations

import os
import signal
import socket
import threading
from pathlib import Path

import grpc
import pytest
from test_distributed import BASE, BOUND_S, EQUAL, _simulate, _strip, _wait_for_round

from parsefl.experiments.distributed.launcher import launch
from parsefl.runtime.grpc_transport import METHOD, PREFIX, GrpcTransport, Tls
from parsefl.security import init_keys


def test_grpc_launch_gives_the_simulator_numbers(tmp_path):
    overrides = [*EQUAL, "rounds=2", "eval_every=1"]
    got = launch(None, overrides, nproc=2, out_dir=tmp_path / "g", wall_timeout_s=BOUND_S,
                 transport="grpc")
    assert _strip(got) == _strip(_simulate(tmp_path / "sim", overrides))
    info = got["distributed"]
    assert (info["transport"], info["authenticated"], info["encrypted"], info["insecure"]) == \
        ("grpc", True, True, False)
    assert info["rejected_messages"] == 0 and info["missing_ranks"] == []


def test_insecure_grpc_is_recorded_and_survives_losing_the_first_process(tmp_path):
    out = tmp_path / "run"
    box: dict = {}
    overrides = [*BASE, "rounds=8", "eval_every=4"]
    runner = threading.Thread(target=lambda: box.update(r=launch(
        None, overrides, nproc=2, out_dir=out, timeout_s=3.0, wall_timeout_s=BOUND_S,
        transport="grpc", insecure=True, allow_partial=True)))
    runner.start()
    os.kill(_wait_for_round(out / "logs" / "rank_0.log", 2), signal.SIGKILL)
    runner.join(BOUND_S)
    info = box["r"]["distributed"]
    assert (info["encrypted"], info["authenticated"], info["insecure"]) == (False, False, True)
    assert info["missing_ranks"] == [0] and [a["id"] for a in box["r"]["agents"]] == [3, 4, 5]
    assert "INSECURE" in (out / "logs" / "rank_1.log").read_text()
    assert "lost rank 0" in (out / "logs" / "rank_1.log").read_text()


def test_worker_refuses_grpc_without_certificates(tmp_path):
    from parsefl.errors import ConfigError
    from parsefl.experiments.distributed.links import transport_settings
    from parsefl.experiments.distributed.worker import parser
    from parsefl.runtime.transport_base import Wiring, build_transport

    args = parser().parse_args(["--out", str(tmp_path), "--transport", "grpc"])
    with pytest.raises(ConfigError, match="needs --keys DIR"):
        build_transport(transport_settings(args, 0, 2, 1.0), Wiring([0, 1], {}))


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tls(keys: Path, agent: int) -> Tls:
    return Tls((keys / "ca.pem").read_bytes(),
               (keys / "private" / f"agent_{agent:04d}.key").read_bytes(),
               (keys / "certs" / f"agent_{agent:04d}.pem").read_bytes())


def test_server_refuses_foreign_certificates_and_forged_requests(tmp_path):
    keys, rogue = tmp_path / "k", tmp_path / "r"
    init_keys(keys, 4)
    init_keys(rogue, 4)
    owner, where = [0, 1, 1, 1], f"127.0.0.1:{_port()}"
    specs = {(0, "c"): {"w": ("float32", (2, 3))}}
    server = GrpcTransport(0, owner, specs, 2.0, addresses={0: where, 1: "127.0.0.1:1"},
                           tls=_tls(keys, 0))
    server.start()
    try:
        def ask(tls: Tls, name: str, request: bytes) -> bytes:
            creds = grpc.ssl_channel_credentials(tls.ca, tls.key, tls.cert)
            with grpc.secure_channel(where, creds, options=[
                    ("grpc.ssl_target_name_override", name)]) as channel:
                return channel.unary_unary(METHOD)(request, timeout=5)

        ok = PREFIX.pack(1, 1, 0, 0)
        assert ask(_tls(keys, 1), "agent-0", ok) == b"ok"  # agent 1 is rank 1's: accepted
        with pytest.raises(grpc.RpcError):  # a certificate of another CA: no TLS session
            ask(_tls(rogue, 1), "agent-0", ok)
        refused = [ask(_tls(keys, 0), "agent-0", ok),  # rank 0's certificate claiming rank 1
                   ask(_tls(keys, 1), "agent-0", PREFIX.pack(1, 1, 10, 0)),  # truncated
                   ask(_tls(keys, 1), "agent-0", PREFIX.pack(1, 1, 2**40, 0)),  # oversized
                   ask(_tls(keys, 1), "agent-0", PREFIX.pack(1, 7, 0, 0)),  # unknown rank
                   ask(_tls(keys, 1), "agent-0", b"\x00" * 5)]  # no prefix
        assert refused == [b"refused"] * 5 and server.wire["rejected"] == 5
    finally:
        server.close()


def test_two_processes_that_lost_each_other_agree_on_the_round_they_take_each_other_back(
        tmp_path):
    """Both ends of a lost pair propose a round; each takes the later one, so they take each
    other back at the start of the same round. A lost sender's frames are answered "lost"
    until then; a membership request under another rank's certificate is refused."""
    import json
    import time

    from parsefl.runtime.grpc_membership import MEMBER

    keys = tmp_path / "k"
    init_keys(keys, 2)
    owner, where = [0, 1], {0: f"127.0.0.1:{_port()}", 1: f"127.0.0.1:{_port()}"}
    specs = {(0, "c"): {"w": ("float32", (2, 3))}, (1, "c"): {"w": ("float32", (2, 3))}}
    a, b = (GrpcTransport(r, owner, specs, 2.0, addresses=where, tls=_tls(keys, r))
            for r in (0, 1))
    for t in (a, b):
        t.start()
    try:
        a.begin_round(5)
        b.begin_round(7)
        a.lost[1], b.lost[0] = "partition", "partition"
        # b's frames for round 8 while a lost it: refused as from a lost peer
        assert b.stubs[0](PREFIX.pack(9 << 16 | 1, 1, 0, 0), timeout=5) == b"lost"
        b._proposed[0] = 12  # b would take a back at 12; a (the lower rank) proposes 10
        a._propose(1, 10)
        deadline = time.monotonic() + 10
        while 1 not in a.pending and time.monotonic() < deadline:
            a._probe(5)  # collects the answer
            time.sleep(0.05)
        assert a.pending == {1: 12} and b.pending == {0: 12}
        # a's frames for round 12 reach b early (b is in round 7): kept for then
        assert a.stubs[1](PREFIX.pack(13 << 16 | 1, 0, 0, 0), timeout=5) == b"ok"
        a.begin_round(12)
        b.begin_round(12)
        assert a.lost == {} and b.lost == {} and a.readmitted == [(1, 12)] == \
            [(1 - r, 12) for r, _ in b.readmitted]
        assert a.wire["rejected"] == 1 and b.wire["rejected"] == 0  # the "lost" frame
        # a membership request to rank 1 claiming rank 0 under rank 1's own certificate
        forged = json.dumps({"rank": 0, "op": "admit", "at": 20}).encode()
        mine = _tls(keys, 1)
        creds = grpc.ssl_channel_credentials(mine.ca, mine.key, mine.cert)
        with grpc.secure_channel(where[1], creds, options=[
                ("grpc.ssl_target_name_override", "agent-1")]) as channel:
            assert channel.unary_unary(MEMBER)(forged, timeout=5) == b"{}"
        assert b.pending == {} and b.lost == {} and b.wire["rejected"] == 1
    finally:
        for t in (a, b):
            t.close()


def test_join_with_no_peer_running_is_refused_in_one_line(tmp_path):
    from parsefl.errors import ConfigError

    keys = tmp_path / "k"
    init_keys(keys, 2)
    where = {0: f"127.0.0.1:{_port()}", 1: f"127.0.0.1:{_port()}"}  # nobody at rank 0's
    joiner = GrpcTransport(1, [0, 1], {}, 1.0, addresses=where, tls=_tls(keys, 1),
                           startup_s=1.0)
    joiner.start()
    try:
        with pytest.raises(ConfigError, match=r"--join: no peer process answered within 1 s "
                                              r"\(ranks \[0\]\)"):
            joiner.join()
    finally:
        joiner.close()
