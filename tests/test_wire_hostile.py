"""Every received byte is untrusted: a hostile second process sends the frames that used to kill
an honest one (huge shapes, deep JSON, bad degrees, forged capabilities and links), more than a
hundred generated malformed frames, and finally an oversized announcement; the honest process
rejects, logs and counts each, and keeps serving."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import torch
from two_ranks import join, run_pair

GOOD = {"src": 1, "dst": 0, "kind": "params", "component": "c", "path": [1, 0], "offset": 0,
        "length": 24, "tensors": [{"name": "w", "dtype": "float32", "shape": [2, 3]}]}
NASTY = {  # per header field: values that must each be refused (none is the valid one)
    "src": [-1, 0, 4, 2**70, "1", None, 1.5, True, [1], {}],
    "dst": [-1, 1, 3, 2**70, "0", None, [0], False],
    "kind": ["evil", None, 7, ["params"], "caps", "degree"],
    "component": ["zz", None, 5, "", ["c"]],
    "path": [[], [0, 1], [1], [1, 2**70, 0], "10", None, [1, "x", 0], [2, 0]],
    "offset": [-1, 1, 24, 2**70, "0", None, 0.0],
    "length": [-1, 0, 23, 25, 2**70, "24", None],
    "tensors": [[], None, "w", [{}], [None], [{"name": "w"}], [{"name": "w", "dtype": "float32"}]],
}
TENSOR_NASTY = {
    "name": ["v", None, 5, ""],
    "dtype": ["float64", "int8", "evil", None, "float16"],
    "shape": [[2**70], [2**40, 2**40], [-1, 3], [3, 2], [6], [], [2, 3, 1, 1, 1, 1, 1, 1, 1],
              "23", None, [2, "3"], [1.5, 4]],
}


def _bytes(data: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else \
        torch.empty(0, dtype=torch.uint8)


def _frame(heads: list, payload: bytes, version: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    return _bytes(json.dumps({"v": version, "messages": heads}).encode()), _bytes(payload)


def fuzz_frames(seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Malformed frames from agent 1 to agent 0, each carrying exactly one bad message (or one
    bad header frame): field values, tensor entries, truncations, random bytes."""
    good = torch.ones(2, 3).numpy().tobytes()
    frames = [_frame([{**GOOD, k: v}], good) for k, vals in NASTY.items() for v in vals]
    frames += [_frame([{**GOOD, "tensors": [{**GOOD["tensors"][0], k: v}]}], good)
               for k, vals in TENSOR_NASTY.items() for v in vals]
    frames.append(_frame([GOOD], torch.full((2, 3), float("inf")).numpy().tobytes()))
    frames += [_frame([GOOD], good[:cut]) for cut in (0, 1, 12, 23)]  # truncated payload
    whole = bytes(_frame([GOOD], good)[0].numpy())
    rng = random.Random(seed)
    frames += [(_bytes(whole[:rng.randrange(1, len(whole))]), _bytes(good)) for _ in range(12)]
    frames += [(_bytes(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))),
                _bytes(good)) for _ in range(8)]
    frames += [(_bytes(b), _bytes(good)) for b in (
        b"\xff\xfe{}", b"[]", b"{}", b'{"v": 1}', b'{"v": 1, "messages": {}}', b"null",
        b'{"v": 2, "messages": []}', b"[" * 5000 + b"]" * 5000,
        b'{"a":' * 2000 + b"1" + b"}" * 2000,
        b'"' + b"\\" * 101 + b'"')]
    frames.append(_frame(["not an object"], good))
    return frames


def hostile_messages():
    """The issue's cases that go through the real encoder: bad degrees, forged capabilities,
    a forged rewire link for a component agent 0 does not hold."""
    from parsefl.runtime.transport import Message

    cap = {"agent": 10**6, "modalities": ["m1"], "signatures": {"c": "ab"}}
    return [[Message(1, 0, "degree", {"c": 0}, (1, 0))],
            [Message(2, 0, "degree", {"c": -5}, (2, 0))],
            [Message(3, 0, "caps", [[cap, [1]]], (3, 0))],
            [Message(1, 0, "caps", [[{**cap, "agent": 2}, [1, 10**6]]], (1, 0))],
            [Message(2, 0, "link", ["zz"], (2, 0))]]


def test_hostile_peer_and_fuzz_never_stop_the_receiver(tmp_path):
    got = run_pair(__file__, tmp_path)
    n_fuzz = len(fuzz_frames())
    assert n_fuzz >= 100
    # 2 huge shapes + 1 deep header + 5 handshake cases + the fuzz frames + the oversized
    # announcement: one counted rejection each, nothing accepted but the good messages.
    assert got["rejected"] == 2 + 1 + 5 + n_fuzz + 1
    assert got["accepted"] == [[1, "c"], [1, "c"]]
    assert got["lost"] == {"1": "announced an oversized frame"} and got["after"] == []
    log = (tmp_path / "rank0.log").read_text()
    assert log.count("rejected") == got["rejected"]
    assert "nested deeper" in log and "region too short" in log and "exceeds" in log


def _run(rank: int, port: int, out: Path) -> None:
    from parsefl.runtime import distributed
    from parsefl.runtime import transport_base as wire  # where frames are encoded

    store = join(rank, port, out)
    owner = [0, 1, 1, 1]
    specs = {(i, "c"): {"w": ("float32", (2, 3))} for i in range(4) if owner[i] == rank}
    transport = distributed.DistributedTransport(rank, owner, specs, store, timeout_s=20.0)
    raw = _raw_frames()
    calls = len(raw) + len(hostile_messages()) + 1
    if rank == 1:
        _send(transport, wire, raw, store)
        return
    accepted = []
    for _ in range(calls):
        accepted += [[m.src, m.component] for m in transport.exchange([]).get(0, [])]
    accepted += [[m.src, m.component] for m in transport.exchange([]).get(0, [])]
    after = transport.exchange([])  # the oversized announcement's call: rank 1 is dropped
    (out / "rank0.json").write_text(json.dumps({
        "accepted": accepted, "rejected": transport.wire["rejected"],
        "lost": {str(k): v for k, v in transport.lost.items()}, "after": list(after)}))


def _raw_frames() -> list[tuple[torch.Tensor, torch.Tensor]]:
    good = torch.ones(2, 3).numpy().tobytes()
    huge = [_frame([{**GOOD, "tensors": [{**GOOD["tensors"][0], "shape": s}]}], good)
            for s in ([2**70], [2**40, 2**40])]
    deep = (_bytes(b"[" * 6000 + b"]" * 6000), _bytes(good))  # 10**5 deep is oversized
    return [*huge, deep, *fuzz_frames()]


def _send(transport, wire, raw, store) -> None:
    """Rank 1: the raw frames, the hostile handshake messages, a good message; a second good
    message; then an announcement of a 2 GiB frame, of which nothing is sent."""
    from parsefl.runtime.transport import Message

    original, queue = wire.encode, iter(raw)
    wire.encode = lambda msgs: next(queue)
    for _ in raw:
        transport.exchange([Message(1, 0, "params", {"w": torch.ones(2, 3)}, (1, 0), "c")])
    wire.encode = original
    for msgs in hostile_messages():
        transport.exchange(msgs)
    for _ in range(2):
        transport.exchange([Message(1, 0, "params", {"w": torch.ones(2, 3)}, (1, 0), "c")])
    transport.calls += 1
    transport.notes.put(transport._key(1, 0), f"1 100 {2**31}")  # as rank 1 announces


if __name__ == "__main__":
    _run(int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]))
