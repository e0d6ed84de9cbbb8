"""The wire format of the distributed runtime: a typed JSON header plus one raw byte buffer
per message, and the checks a receiver applies. No pickle anywhere: a header is plain JSON and
a payload is raw tensor bytes whose dtype and shape the header declares."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch

from parsefl.runtime.agent import Agent
from parsefl.runtime.transport import Message

WIRE_VERSION = 1
KINDS = ("params", "caps", "degree", "link", "flag", "val")
DTYPES = {str(d).removeprefix("torch."): d for d in (
    torch.float32, torch.float64, torch.float16, torch.bfloat16,
    torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool,
)}
MAX_FRAME = 1 << 31  # an announced frame larger than this is a protocol error, not a payload
MAX_JSON_DEPTH = 16  # our headers nest 4 deep, caps bodies 4: deeper is hostile (json recurses)
MAX_DIMS = 8  # tensor rank bound; every dimension is also bounded by the bytes that arrived
HEAD_BYTES = 1024  # header budget per message (fields, path), plus TENSOR_HEAD per tensor
TENSOR_HEAD = 256 + 2 * MAX_DIMS * 20  # name, dtype and shape of one tensor
CONTROL_BYTES = 1 << 20  # handshake JSON budget per peer frame, plus per-agent caps below
CAP_BYTES = 4096  # one agent's capability entry (modalities, component signatures, seal)
SIG_HEX = 2 * 72  # an ECDSA P-256 signature (DER, at most 72 bytes) in hex
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')

TensorSpec = tuple[str, tuple[int, ...]]  # dtype name, shape
ComponentSpecs = Mapping[tuple[int, str], Mapping[str, TensorSpec]]  # (agent, component) -> ...
Frames = tuple[int, torch.Tensor, torch.Tensor]  # messages, header frame, payload frame


class WireError(ValueError):
    """A received message that is not accepted; the text is the logged reason."""


def component_specs(agents: Iterable[Agent]) -> dict[tuple[int, str], dict[str, TensorSpec]]:
    """What each local agent expects to receive, per component: name -> (dtype, shape)."""
    return {
        (a.id, comp): {n: (_dtype_name(t.dtype), tuple(t.shape))
                       for n, t in a.get_component(comp).items()}
        for a in agents for comp in a.capability().signatures
    }


def frame_limits(expected: ComponentSpecs, n_agents: int, senders: int
                 ) -> tuple[int, int, int]:
    """The largest (messages, header bytes, payload bytes) a peer hosting ``senders`` agents
    can legitimately send this receiver in one call: each sender sends each local agent at
    most each component once (plus handshake bodies). Anything larger is refused unread."""
    params = sum(_spec_bytes(s) for s in expected.values())
    local = len({agent for agent, _ in expected})
    messages = senders * (len(expected) + 3 * max(local, 1))
    tensors = sum(len(s) for s in expected.values())
    control = CONTROL_BYTES + senders * local * n_agents * CAP_BYTES
    return messages, messages * HEAD_BYTES + senders * tensors * TENSOR_HEAD, \
        senders * params + control


def _spec_bytes(spec: Mapping[str, TensorSpec]) -> int:
    return sum(math.prod(shape) * DTYPES[dt].itemsize for dt, shape in spec.values())


def loads_bounded(data: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` of UTF-8 ``data`` after a cheap bracket scan bounds its nesting (the
    decoder recurses: 10^5 nested brackets would raise RecursionError deep inside it)."""
    depth = deepest = 0
    for ch in _STRING.sub(b"", data).translate(None, b" \t\r\n,:0123456789"):
        if ch in b"[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > max_depth:
                raise WireError(f"JSON nested deeper than {max_depth}")
        elif ch in b"]}":
            depth -= 1
    try:
        return json.loads(data.decode())
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise WireError(f"not UTF-8 JSON: {str(err)[:120]}") from None


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _as_bytes(t: torch.Tensor) -> torch.Tensor:
    return t.detach().cpu().contiguous().reshape(-1).view(torch.uint8)


def _utf8(data: Any) -> torch.Tensor:
    return torch.frombuffer(bytearray(json.dumps(data, separators=(",", ":")).encode()),
                            dtype=torch.uint8)


Stamp = Callable[[dict[str, Any], bytes], dict[str, Any]]  # (header entry, its bytes) -> signed


def encode(messages: Sequence[Message], stamp: Stamp | None = None
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """One peer's messages of one call as (header frame, payload frame), both uint8;
    ``stamp`` signs each header entry (see :mod:`parsefl.security.frames`)."""
    heads, chunks, offset = [], [], 0
    for msg in messages:
        head = {"src": msg.src, "dst": msg.dst, "kind": msg.kind, "component": msg.component,
                "path": list(msg.path)}
        if msg.kind == "params":
            head["tensors"] = [{"name": n, "dtype": _dtype_name(t.dtype), "shape": list(t.shape)}
                               for n, t in msg.body.items()]
            parts = [_as_bytes(t) for t in msg.body.values()]
        else:
            parts = [_utf8(msg.body)]
        length = sum(p.numel() for p in parts)
        head = {**head, "offset": offset, "length": length}
        if stamp is not None:
            head = stamp(head, b"".join(bytes(p.numpy()) for p in parts))
        heads.append(head)
        chunks += parts
        offset += length
    payload = torch.cat(chunks) if chunks else torch.empty(0, dtype=torch.uint8)
    header = _utf8({"v": WIRE_VERSION, "messages": heads}) if heads else \
        torch.empty(0, dtype=torch.uint8)
    return header, payload


def check_params(msg: Message, expected: ComponentSpecs) -> None:
    """Raise :class:`WireError` unless ``msg``'s tensors match the receiver's own component
    (names, dtypes, shapes) and are all finite."""
    spec = expected.get((msg.dst, msg.component))  # type: ignore[arg-type]
    if spec is None:
        raise WireError(f"agent {msg.dst} holds no component {msg.component!r}")
    if set(msg.body) != set(spec):
        raise WireError(f"tensor names {sorted(msg.body)} != expected {sorted(spec)}")
    for name, t in msg.body.items():
        got = (_dtype_name(t.dtype), tuple(t.shape))
        if got != spec[name]:
            raise WireError(f"{name}: dtype/shape {got} != expected {spec[name]}")
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise WireError(f"{name}: contains NaN or Inf")


def check_control(msg: Message, expected: ComponentSpecs | None = None,
                  n_agents: int | None = None) -> None:
    """Raise :class:`WireError` unless a handshake body has the shape the handshake reads and
    values it can use: degrees in 1..agents for components the receiver holds, links only for
    such components, capabilities only of agents that exist, over paths of existing agents."""
    body, n = msg.body, n_agents if n_agents is not None else 1 << 62
    held = None if expected is None else {c for a, c in expected if a == msg.dst}
    if msg.kind == "degree":
        ok = isinstance(body, dict) and all(type(v) is int and 1 <= v <= n for v in body.values())
        ok = ok and (held is None or set(body) <= held)
    elif msg.kind == "flag":  # the rounds: auto stop flag (experiments.convergence)
        ok = isinstance(body, dict) and set(body) == {"plateau"} and body["plateau"] in (0, 1)
    elif msg.kind == "val":  # validation counts of the network stop rule (network_stop)
        ok = isinstance(body, dict) and set(body) == {"counts"} and _counts(body["counts"], n)
    elif msg.kind == "link":
        ok = isinstance(body, list) and all(isinstance(c, str) for c in body)
        ok = ok and (held is None or set(body) <= held)
    elif msg.kind == "caps":
        ok = isinstance(body, list) and all(_cap_entry(e, n) for e in body)
    else:
        ok = False
    if not ok:
        raise WireError(f"{msg.kind} body of unexpected shape or value: {str(body)[:200]}")


def _counts(entries: Any, n: int) -> bool:
    """A val body's entries: at most one per agent, ``[agent, group, correct, total]`` with the
    agent in ``0..n-1``, a group name of at most 256 characters, 0 <= correct <= total < 2^31."""
    if not isinstance(entries, list) or len(entries) > n:
        return False
    ok = all(isinstance(e, list) and len(e) == 4 and type(e[0]) is int and 0 <= e[0] < n
             and isinstance(e[1], str) and len(e[1]) <= 256 and type(e[2]) is int
             and type(e[3]) is int and 0 <= e[2] <= e[3] < 1 << 31 for e in entries)
    return ok and len({e[0] for e in entries}) == len(entries)


def _cap_entry(entry: Any, n: int) -> bool:
    """One ``[capability, path]`` pair of a caps body, with every agent id in ``0..n-1``."""
    if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], dict)
            and isinstance(entry[1], list) and 0 < len(entry[1]) <= n):
        return False
    cap, path = entry
    mods, sigs = cap.get("modalities"), cap.get("signatures")
    return (type(cap.get("agent")) is int and 0 <= cap["agent"] < n
            and all(type(p) is int and 0 <= p < n for p in path)
            and isinstance(mods, list) and all(isinstance(m, str) for m in mods)
            and isinstance(sigs, dict) and all(isinstance(v, str) for v in sigs.values())
            and _seal_fields(cap))


def _seal_fields(cap: dict) -> bool:
    """A signed run's seal on an entry, where present: the handshake epoch and an ECDSA
    signature (hex); whether it verifies is the handshake's check (a missing seal too)."""
    epoch, sig = cap.get("epoch", 0), cap.get("sig", "")
    return type(epoch) is int and epoch >= 0 and isinstance(sig, str) and len(sig) <= SIG_HEX


def decode_one(head: Any, payload: torch.Tensor, device: torch.device) -> Message:
    """One header entry and its payload region as a Message (structure checks only)."""
    if not isinstance(head, dict):
        raise WireError("header entry is not an object")
    src, dst, kind, comp, path = (head.get(k) for k in ("src", "dst", "kind", "component", "path"))
    off, length = head.get("offset"), head.get("length")
    ints = (src, dst, off, length, *(path if isinstance(path, list) else ["x"]))
    if not all(type(v) is int for v in ints) or kind not in KINDS or not path:
        raise WireError(f"malformed header fields: {str(head)[:200]}")
    if path[0] != src or path[-1] != dst or off < 0 or length < 0 or off + length > len(payload):
        raise WireError(f"inconsistent path or byte range: {str(head)[:200]}")
    region = payload[off:off + length]
    if kind != "params":
        body = loads_bounded(bytes(region.numpy()))
        return Message(src, dst, kind, body, tuple(path), comp)
    if not isinstance(comp, str) or not isinstance(head.get("tensors"), list):
        raise WireError("params message without a component or tensor list")
    return Message(src, dst, kind, _tensors(head["tensors"], region, device), tuple(path), comp)


def _tensors(specs: list, region: torch.Tensor, device: torch.device) -> dict[str, torch.Tensor]:
    body, pos = {}, 0
    for spec in specs:
        try:
            name, dtype, shape = spec["name"], DTYPES[spec["dtype"]], spec["shape"]
        except (KeyError, TypeError):
            name, dtype, shape = None, None, None
        if not isinstance(name, str) or name in body or not isinstance(shape, list) \
                or len(shape) > MAX_DIMS or not all(type(s) is int and s >= 0 for s in shape):
            raise WireError(f"bad tensor entry {str(spec)[:120]}")
        # Python integers: [2**70] or [2**40, 2**40] is compared with the bytes that arrived
        # before anything is allocated (torch.Size would overflow first).
        size = math.prod(shape) * dtype.itemsize
        if pos + size > len(region):
            raise WireError(f"{name}: {size} bytes announced, region too short")
        # clone() first: a view of another dtype needs an aligned, fresh storage.
        body[name] = region[pos:pos + size].clone().view(dtype).reshape(tuple(shape)).to(device)
        pos += size
    if pos != len(region):
        raise WireError(f"{len(region) - pos} unexplained payload bytes")
    return body
