"""Transports move messages between agents and count the bytes on every physical link. The
round loop talks to the network only through ``Transport.exchange``; the in-memory simulator
and a distributed runtime differ only here."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch


@dataclass(frozen=True)
class Message:
    """One message from ``src`` to ``dst`` along the physical ``path`` (src ... dst).

    ``kind`` is "params" (``body``: parameter name -> tensor, counted in the bytes) or a control
    kind of the handshake ("caps", "degree") whose body is plain JSON-able data.
    """

    src: int
    dst: int
    kind: str
    body: Any
    path: tuple[int, ...]
    component: str | None = None


def payload_bytes(tensors: Mapping[str, torch.Tensor]) -> int:
    """Bytes of the tensors' data as sent (numel x element size)."""
    return sum(t.numel() * t.element_size() for t in tensors.values())


def path_links(path: tuple[int, ...]) -> list[tuple[int, int]]:
    """The undirected physical links a path crosses, each as (min, max)."""
    return [(min(a, b), max(a, b)) for a, b in zip(path, path[1:], strict=False)]


class Transport(Protocol):
    link_bytes: Counter

    def exchange(self, messages: Iterable[Message]) -> dict[int, list[Message]]:
        """Deliver every message; return the messages received by each local agent."""
        ...

    def take_link_bytes(self) -> Counter:
        """Payload bytes per physical link since the last call (then reset)."""
        ...


@dataclass
class InMemoryTransport:
    """All agents in one process: delivery is a hand-over of (copied) tensors."""

    link_bytes: Counter = field(default_factory=Counter)

    def exchange(self, messages: Iterable[Message]) -> dict[int, list[Message]]:
        inbox: dict[int, list[Message]] = defaultdict(list)
        for msg in messages:
            if msg.kind == "params":
                size = payload_bytes(msg.body)
                for link in path_links(msg.path):  # a relayed message costs every hop
                    self.link_bytes[link] += size
            inbox[msg.dst].append(msg)
        return inbox

    def take_link_bytes(self) -> Counter:
        """The bytes per link counted since the last call (then reset)."""
        out, self.link_bytes = self.link_bytes, Counter()
        return out
