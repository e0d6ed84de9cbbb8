"""Transports move messages between agents and report the bytes on every physical link to
their :class:`~parsefl.runtime.meter.LinkMeter`. The round engine talks to the network only
through ``Transport.exchange``; the in-memory simulator and a distributed runtime differ only
here."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from parsefl.runtime.meter import LinkMeter, path_links, payload_bytes

__all__ = ["InMemoryTransport", "Message", "Transport", "path_links", "payload_bytes"]


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


class Transport(Protocol):
    meter: LinkMeter  # where the transport bills the payload bytes it moves

    def exchange(self, messages: Iterable[Message]) -> dict[int, list[Message]]:
        """Deliver every message; return the messages received by each local agent."""
        ...

    def take_link_bytes(self) -> Counter:
        """Payload bytes per physical link since the last call (then reset)."""
        ...


@dataclass
class InMemoryTransport:
    """All agents in one process: delivery hands each message (and its tensors) over as is,
    without copying; senders never modify a tensor after sending it."""

    meter: LinkMeter = field(default_factory=LinkMeter)

    @property
    def link_bytes(self) -> Counter:
        """The bytes counted since the last ``take_link_bytes`` (read-only view)."""
        return self.meter.peek()

    def exchange(self, messages: Iterable[Message]) -> dict[int, list[Message]]:
        inbox: dict[int, list[Message]] = defaultdict(list)
        for msg in messages:
            self.meter.record_message(msg)  # a relayed message costs every hop
            inbox[msg.dst].append(msg)
        return inbox

    def take_link_bytes(self) -> Counter:
        """The bytes per link counted since the last call (then reset)."""
        return self.meter.take()
