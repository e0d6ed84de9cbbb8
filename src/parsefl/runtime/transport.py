"""Transports move messages between agents and report the bytes on every physical link to
their :class:`~parsefl.runtime.meter.LinkMeter`. The round engine talks to the network only
through ``Transport.exchange``; the in-memory simulator and a distributed runtime differ only
here."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from parsefl.runtime.meter import LinkMeter, path_links, payload_bytes

__all__ = ["SEAL", "CapabilitySeal", "InMemoryTransport", "Message", "Transport", "path_links",
           "payload_bytes"]


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


SEAL = ("epoch", "sig")  # the fields a sealed capability entry adds to the capability


class CapabilitySeal(Protocol):
    """How a signed run's handshake seals capability entries (one handshake's worth; the
    implementation: :class:`parsefl.security.frames.CapabilitySigner`)."""

    def sign(self, entry: Mapping[str, Any], epoch: int) -> dict[str, Any]:
        """A local agent's own entry, signed by that agent for handshake ``epoch``."""
        ...

    def admits(self, entry: Mapping[str, Any], epoch: int, origin: str) -> bool:
        """Whether a received entry is signed by the agent it describes for ``epoch``; a
        refused one is logged and counted as a rejection."""
        ...


class Transport(Protocol):
    meter: LinkMeter  # where the transport bills the payload bytes it moves

    @property
    def seal(self) -> CapabilitySeal | None:
        """A new handshake's capability seal (None: an unsigned run, or the simulator)."""
        ...

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
    def seal(self) -> None:
        """All agents in one process: nothing to sign."""
        return None

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
