"""The one place where communication is billed: bytes per physical link and hop.

Every transport (in-memory, distributed) and every backend that moves components without
messages (the vectorized one) reports to a :class:`LinkMeter`, so the rule "a component's
payload bytes are charged to every physical link its path crosses" is written once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from parsefl.types import PhysicalLink


def payload_bytes(tensors: Mapping[str, torch.Tensor]) -> int:
    """Bytes of the tensors' data as sent (numel x element size)."""
    return sum(t.numel() * t.element_size() for t in tensors.values())


def path_links(path: Sequence[int]) -> list[PhysicalLink]:
    """The undirected physical links a path crosses, each as (min, max)."""
    return [(min(a, b), max(a, b)) for a, b in zip(path, path[1:], strict=False)]


class LinkMeter:
    """Payload bytes per physical link since the last :meth:`take`.

    Only parameter payloads are billed (the handshake's small control messages are not), and
    a relayed payload is billed on every hop of its path, once per hop.
    """

    def __init__(self) -> None:
        self._bytes: Counter = Counter()

    def record(self, path: Sequence[int], size: int) -> None:
        """Bill ``size`` bytes to every link of ``path`` (src ... dst)."""
        for link in path_links(path):
            self._bytes[link] += size

    def record_message(self, msg: Any) -> int:
        """Bill a transport message (a ``runtime.transport.Message``); returns its payload
        bytes (0 for control messages, which are not billed)."""
        if msg.kind != "params":
            return 0
        size = payload_bytes(msg.body)
        self.record(msg.path, size)
        return size

    def add(self, counts: Mapping[PhysicalLink, int]) -> None:
        """Bill bytes already worked out per link (a backend replaying a cached round)."""
        self._bytes.update(counts)

    def peek(self) -> Counter:
        """The bytes counted since the last :meth:`take` (a copy; nothing is reset)."""
        return Counter(self._bytes)

    def take(self) -> Counter:
        """The bytes per link since the last call, then reset."""
        out, self._bytes = self._bytes, Counter()
        return out
