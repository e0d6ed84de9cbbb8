"""A transport over ``torch.distributed`` (gloo) with the simulator's semantics: every process
runs the round engine over the agents it hosts and calls ``exchange`` in lockstep with the others.

Per call: (1) *announce*: a TCPStore key per peer process ("messages, header bytes, payload
bytes"), then wait for the peers' keys up to ``timeout_s`` — the key is also the liveness check,
because a gloo receive that times out closes every pair of the process group (torch 2.13:
"Application timeout caused pair closure"), so a receive is posted only once announced;
(2) *transfer*: point-to-point frames, one UTF-8 JSON header and one raw payload per peer, no
pickle; (3) *check*: each message against the receiver's own component, bad ones logged and left
out (what every network transport shares: :mod:`parsefl.runtime.transport_base`). A peer that
misses the deadline or whose connection breaks is lost for the rest of the run.
Protocol and limits: docs/distributed.md.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar

import networkx as nx
import torch
import torch.distributed as dist

from parsefl.registry import TRANSPORTS
from parsefl.runtime.engine import RoundEngine
from parsefl.runtime.transport_base import (
    NetworkTransport,
    Received,
    TransportSettings,
    Wiring,
)
from parsefl.runtime.wire import Frames, frame_limits

log = logging.getLogger(__name__)


MAX_NOTE = 1 << 26  # bytes of one store value we agree to parse (a summary is the largest)


@dataclass
class StoreNotes:
    """What the processes of one run tell each other through the gloo store, as JSON values
    ``{"v": text}``; with keys each is signed (``"sig"``) by the writing rank's first agent
    over its key and text, so a value another process wrote under that key — anyone who can
    reach the store can write there — is refused rather than believed. Values are bounded
    before they are parsed. ``owner``: the rank of each agent."""

    store: Any
    rank: int
    owner: Sequence[int]
    auth: Any = None  # FrameAuth: sign with our first agent, verify with the writer's

    def put(self, key: str, text: str) -> int:
        """Write ``text`` under ``key``; returns the bytes written."""
        note = {"v": text}
        if self.auth is not None:
            note["sig"] = self.auth.sign_blob(self.owner.index(self.rank),
                                              f"{key}\0{text}".encode())
        raw = json.dumps(note)
        self.store.set(key, raw)
        return len(raw)

    def read(self, key: str, writer: int, raw: bytes | None = None) -> str:
        """The text rank ``writer`` put under ``key`` (which must exist; ``raw``: its value,
        already fetched); raises ValueError naming why when the value is malformed, oversized
        or not signed by ``writer``."""
        from parsefl.runtime.wire import WireError, loads_bounded

        raw = self.store.get(key) if raw is None else raw
        if len(raw) > MAX_NOTE:
            raise ValueError(f"{len(raw)} bytes under {key}")
        try:
            note = loads_bounded(raw, max_depth=2)
        except WireError as err:
            raise ValueError(f"malformed value under {key} ({err})") from None
        text = note.get("v") if isinstance(note, dict) else None
        if not isinstance(text, str):
            raise ValueError(f"malformed value under {key}")
        if self.auth is not None and not (
                writer in self.owner and isinstance(note.get("sig"), str)
                and self.auth.verify_blob(self.owner.index(writer), f"{key}\0{text}".encode(),
                                          note["sig"])):
            raise ValueError(f"the value under {key} is not signed by rank {writer}")
        return text


def place_agents(n_agents: int, world: int, how: str = "block") -> list[int]:
    """The rank hosting each agent. ``block``: contiguous id ranges (the first ``n % world``
    ranks get one more), which keeps ring/grid neighbours mostly in one process;
    ``round_robin``: agent i on rank ``i % world``."""
    if not 1 <= world <= n_agents:
        raise ValueError(f"need 1 <= processes <= agents, got {world} processes, {n_agents} agents")
    if how == "round_robin":
        return [i % world for i in range(n_agents)]
    if how != "block":
        raise ValueError(f"placement must be 'block' or 'round_robin', got {how!r}")
    base, extra = divmod(n_agents, world)
    return [r for r in range(world) for _ in range(base + (r < extra))]


def peer_ranks(graph: nx.Graph, owner: Sequence[int], rank: int, radius: int) -> frozenset[int]:
    """Ranks hosting an agent within ``radius`` hops of one of ``rank``'s agents: the only
    processes it can ever exchange with on this graph."""
    near = set()
    for agent in (i for i, r in enumerate(owner) if r == rank):
        near |= set(nx.single_source_shortest_path_length(graph, agent, cutoff=radius))
    return frozenset(owner[j] for j in near) - {rank}


@TRANSPORTS.register("gloo", "torch.distributed (gloo) point to point; a TCPStore announces "
                     "each frame and is the liveness check")
@dataclass
class DistributedTransport(NetworkTransport):
    """The ``Transport`` interface over an initialized gloo process group and its store."""

    needs_store: ClassVar[bool] = True

    store: dist.Store
    timeout_s: float = 30.0

    def __post_init__(self) -> None:
        self.notes = StoreNotes(self.store, self.rank, self.owner, self.auth)

    @classmethod
    def build(cls, settings: TransportSettings, wiring: Wiring) -> DistributedTransport:
        if wiring.store is None:
            raise ValueError("the gloo transport needs the rendezvous store (merge.connect)")
        return cls(settings.rank, wiring.owner, wiring.expected, wiring.store,
                   settings.timeout_s, **wiring.common())

    def _swap(self, frames: Mapping[int, Frames]) -> Received:
        """Send each live peer its frames, return what each sent us (the transport's part)."""
        return self._transfer(frames, self._announce(frames))

    def _key(self, src: int, dst: int) -> str:
        return f"x/{self.calls}/{src}/{dst}"

    def _announce(self, frames: Mapping[int, Frames]) -> dict[int, tuple[int, int, int]]:
        """Tell each peer what is coming; learn what each peer sends, within the deadline."""
        for p, (n, header, payload) in frames.items():
            note = self.notes.put(self._key(self.rank, p), f"{n} {len(header)} {len(payload)}")
            self._sent(note + len(header), len(payload))
        deadline = time.monotonic() + self.timeout_s
        sizes = {}
        for p in frames:
            try:
                n, hlen, plen = self._announced(p, deadline)
            except (RuntimeError, ValueError) as err:
                self._lose(p, f"no valid announcement within {self.timeout_s:g} s ({err})")
                continue
            most = frame_limits(self.bounds, len(self.owner), self.owner.count(p))
            if not all(0 <= got <= cap for got, cap in zip((n, hlen, plen), most, strict=True)):
                # Refused unread: its bytes would stay queued on the channel, so the peer
                # cannot be resynchronized and is dropped (a counted rejection too).
                self._reject(f"rank {p}", "announcement", f"(messages, header, payload) = "
                             f"{(n, hlen, plen)} exceeds this receiver's bound {most}")
                self._lose(p, "announced an oversized frame")
                continue
            sizes[p] = (n, hlen, plen)
        return sizes

    def _announced(self, p: int, deadline: float) -> tuple[int, int, int]:
        """Rank ``p``'s announcement to us. A value that is not its (malformed, or unsigned
        with keys: someone else wrote the key) is a counted rejection; we keep waiting for
        the real one — its ``set`` replaces the forgery — until the deadline."""
        key, forged = self._key(p, self.rank), None
        while True:
            self.store.wait([key], timedelta(seconds=max(0.01, deadline - time.monotonic())))
            raw = self.store.get(key)
            try:
                n, hlen, plen = (int(v) for v in self.notes.read(key, p, raw).split())
            except ValueError as err:
                if raw != forged:
                    self._reject(f"rank {p}", "announcement", str(err))
                    forged = raw
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.005)
                continue
            self.store.delete_key(key)
            return n, hlen, plen

    def _transfer(self, frames: Mapping[int, Frames], sizes: Mapping[int, tuple[int, int, int]]
                  ) -> Received:
        """Post every receive and send at once (no ordering deadlock), then wait for each."""
        works: list[tuple[int, Any]] = []
        bufs = {}
        for p, (_, hlen, plen) in sizes.items():
            if hlen:
                bufs[p] = (torch.empty(hlen, dtype=torch.uint8),
                           torch.empty(plen, dtype=torch.uint8))
                works += [(p, dist.irecv(b, p, tag=t)) for t, b in enumerate(bufs[p]) if len(b)]
        for p, frame in frames.items():
            if p in sizes:  # a peer lost during the announcement gets nothing
                works += [(p, dist.isend(b, p, tag=t)) for t, b in enumerate(frame[1:]) if len(b)]
        for p, work in works:
            try:
                work.wait()
            except RuntimeError as err:
                self._lose(p, f"transfer failed: {str(err)[:300]}")
        return {p: (bytes(h.numpy()), pl) for p, (h, pl) in bufs.items() if p not in self.lost}


class DistributedEngine(RoundEngine):
    """The round engine over a process's own agents; its handshake forgets agents hosted by
    lost processes, so that survivors neither plan with them nor wait for their degrees."""

    transport: NetworkTransport
    cache_plans = False  # a lost peer must be forgotten by every process in the same round

    def prepare(self, r: int) -> None:
        # The transport names this round's exchanges by it (and, gRPC, takes back peers
        # admitted from this round). A peer that vanishes during this round's degree swap is
        # dropped by plan_gossip itself (its degree never arrives); here we forget those lost
        # in earlier rounds.
        self.transport.begin_round(r)
        self._forget_lost()
        super().prepare(r)

    def handshake_key(self, r: int) -> Hashable:
        """Over a transport whose peers come back (gRPC: late joiners, restarts, healed
        partitions) discovery runs every round, so that every process makes the same calls in
        every round whoever it currently reaches, and a peer taken back is discovered in the
        round it returns (its numbers do not change: discovery sends no parameters)."""
        key = super().handshake_key(r)
        return (r, *key) if self.transport.rejoins else key

    def planned(self) -> None:
        # Only planned neighbours may send parameters under these plans (gossip, and the warm
        # start that runs right after a new handshake).
        self.transport.planned = {(i, c): set(peers) for i, plan in self.plans.items()
                                  for c, peers in plan.paths.items()}

    def _forget_lost(self) -> None:
        gone = self.transport.lost_agents
        if self._known is not None and gone:
            self._known = {i: {j: v for j, v in t.items() if j not in gone}
                           for i, t in self._known.items()}

