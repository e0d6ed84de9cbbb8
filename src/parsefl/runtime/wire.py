"""The wire format of the distributed runtime: a typed JSON header plus one raw byte buffer
per message, and the checks a receiver applies. No pickle anywhere: a header is plain JSON and
a payload is raw tensor bytes whose dtype and shape the header declares."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch

from parsefl.runtime.agent import Agent
from parsefl.runtime.transport import Message

WIRE_VERSION = 1
KINDS = ("params", "caps", "degree", "link", "flag")
DTYPES = {str(d).removeprefix("torch."): d for d in (
    torch.float32, torch.float64, torch.float16, torch.bfloat16,
    torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool,
)}
MAX_FRAME = 1 << 31  # an announced frame larger than this is a protocol error, not a payload

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


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _as_bytes(t: torch.Tensor) -> torch.Tensor:
    return t.detach().cpu().contiguous().reshape(-1).view(torch.uint8)


def _utf8(data: Any) -> torch.Tensor:
    return torch.frombuffer(bytearray(json.dumps(data, separators=(",", ":")).encode()),
                            dtype=torch.uint8)


def encode(messages: Sequence[Message]) -> tuple[torch.Tensor, torch.Tensor]:
    """One peer's messages of one call as (header frame, payload frame), both uint8."""
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
        heads.append({**head, "offset": offset, "length": length})
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


def check_control(msg: Message) -> None:
    """Raise :class:`WireError` unless a handshake body has the shape the handshake reads."""
    body, ok = msg.body, True
    if msg.kind == "degree":
        ok = isinstance(body, dict) and all(type(v) is int for v in body.values())
    elif msg.kind == "flag":  # the rounds: auto stop flag (experiments.convergence)
        ok = isinstance(body, dict) and set(body) == {"plateau"} and body["plateau"] in (0, 1)
    elif msg.kind == "link":
        ok = isinstance(body, list) and all(isinstance(c, str) for c in body)
    elif msg.kind == "caps":
        ok = isinstance(body, list) and all(
            isinstance(e, list) and len(e) == 2 and isinstance(e[0], dict)
            and type(e[0].get("agent")) is int and isinstance(e[0].get("modalities"), list)
            and isinstance(e[0].get("signatures"), dict)
            and isinstance(e[1], list) and all(type(p) is int for p in e[1])
            for e in body)
    if not ok:
        raise WireError(f"{msg.kind} body of unexpected shape: {str(body)[:200]}")


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
        try:
            body = json.loads(bytes(region.numpy()).decode())
        except (UnicodeDecodeError, ValueError) as err:
            raise WireError(f"control body is not UTF-8 JSON: {err}") from None
        return Message(src, dst, kind, body, tuple(path), comp)
    if not isinstance(comp, str) or not isinstance(head.get("tensors"), list):
        raise WireError("params message without a component or tensor list")
    return Message(src, dst, kind, _tensors(head["tensors"], region, device), tuple(path), comp)


def _tensors(specs: list, region: torch.Tensor, device: torch.device) -> dict[str, torch.Tensor]:
    body, pos = {}, 0
    for spec in specs:
        try:
            name, dtype, shape = spec["name"], DTYPES[spec["dtype"]], tuple(spec["shape"])
        except (KeyError, TypeError):
            name, dtype, shape = None, None, ()
        if not isinstance(name, str) or not all(type(s) is int and s >= 0 for s in shape):
            raise WireError(f"bad tensor entry {str(spec)[:120]}")
        size = torch.Size(shape).numel() * dtype.itemsize
        if pos + size > len(region):
            raise WireError(f"{name}: {size} bytes announced, region too short")
        # clone() first: a view of another dtype needs an aligned, fresh storage.
        body[name] = region[pos:pos + size].clone().view(dtype).reshape(shape).to(device)
        pos += size
    if pos != len(region):
        raise WireError(f"{len(region) - pos} unexplained payload bytes")
    return body
