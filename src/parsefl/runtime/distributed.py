"""A transport over ``torch.distributed`` (gloo) with the simulator's semantics: every process
runs the round engine over the agents it hosts and calls ``exchange`` in lockstep with the others.

Per call: (1) *announce*: a TCPStore key per peer process ("messages, header bytes, payload
bytes"), then wait for the peers' keys up to ``timeout_s`` — the key is also the liveness check,
because a gloo receive that times out closes every pair of the process group (torch 2.13:
"Application timeout caused pair closure"), so a receive is posted only once announced;
(2) *transfer*: point-to-point frames, one UTF-8 JSON header and one raw payload per peer, no
pickle; (3) *check*: each message against the receiver's own component, bad ones logged and left
out. A peer that misses the deadline or whose connection breaks is lost for the rest of the run.
Protocol and limits: docs/distributed.md.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import networkx as nx
import torch
import torch.distributed as dist

from parsefl.runtime.checks import DETAIL, ReceiveChecks
from parsefl.runtime.engine import RoundEngine
from parsefl.runtime.meter import LinkMeter
from parsefl.runtime.transport import Message
from parsefl.runtime.wire import (
    WIRE_VERSION,
    ComponentSpecs,
    Frames,
    WireError,
    check_control,
    decode_one,
    encode,
    frame_limits,
    loads_bounded,
)
from parsefl.security.frames import FrameAuth

log = logging.getLogger(__name__)


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


@dataclass
class DistributedTransport:
    """The ``Transport`` interface over an initialized gloo process group.

    Bytes are billed by the sending process to its ``meter``, by the simulator's rule (payload
    tensor bytes on every hop of ``msg.path``); ``wire`` holds what really crossed processes.
    """

    rank: int
    owner: Sequence[int]  # agent id -> hosting rank
    expected: ComponentSpecs
    store: dist.Store
    timeout_s: float = 30.0
    peers: frozenset[int] | None = None  # ranks this one may talk to (None: all)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    meter: LinkMeter = field(default_factory=LinkMeter)
    wire: Counter = field(default_factory=Counter)
    lost: dict[int, str] = field(default_factory=dict)  # rank -> why it was given up
    calls: int = 0
    checks: ReceiveChecks = field(default_factory=ReceiveChecks)  # runtime/checks.py
    # (receiving agent, component) -> senders in this round's plans; params from anyone else
    # are refused (None until the engine has planned: the handshake sends no params).
    planned: dict[tuple[int, str], set[int]] | None = None
    auth: FrameAuth | None = None  # sign what we send, accept only signed messages
    # The run's communication policy (parsefl.compressors.Communication; None: plain copies):
    # encoded copies are decoded before the receive checks, and bound the frame sizes.
    codec: Any = None

    @property
    def bounds(self) -> ComponentSpecs:
        """What bounds a peer's frames: the expected components, plain or encoded."""
        return self.expected if self.codec is None else self.codec.bound_specs(self.expected)

    @property
    def lost_agents(self) -> set[int]:
        return {i for i, r in enumerate(self.owner) if r in self.lost}

    def exchange(self, messages: Iterable[Message]) -> dict[int, list[Message]]:
        """Deliver every message (local ones in memory, others P2P); return each local
        agent's accepted messages, ordered by sender."""
        self.calls += 1
        inbox: dict[int, list[Message]] = defaultdict(list)
        outgoing: dict[int, list[Message]] = defaultdict(list)
        for msg in messages:
            rank = self.owner[msg.dst]
            if rank in self.lost:
                continue
            if msg.kind == "params":
                self._count(msg, remote=rank != self.rank)
            if rank == self.rank:
                self._accept(msg, inbox, "local")
            elif self.peers is not None and rank not in self.peers:
                raise RuntimeError(f"message {msg.src}->{msg.dst}: rank {rank} is not a peer")
            else:
                outgoing[rank].append(msg)
        stamp = (lambda head, region: self.auth.stamp(head, region, self.calls)) \
            if self.auth is not None else None
        frames = {p: (len(outgoing[p]), *(encode(outgoing[p], stamp) if stamp else
                                          encode(outgoing[p])))
                  for p in self._live_peers()}
        for peer, (header, payload) in sorted(self._swap(frames).items()):
            self._receive(peer, header, payload, inbox)
        return {i: sorted(msgs, key=lambda m: m.src) for i, msgs in inbox.items()}

    def take_link_bytes(self) -> Counter:
        """The bytes per link counted since the last call (then reset)."""
        return self.meter.take()

    def _live_peers(self) -> list[int]:
        ranks = self.peers if self.peers is not None else range(max(self.owner) + 1)
        return sorted(p for p in ranks if p != self.rank and p not in self.lost)

    def _count(self, msg: Message, remote: bool) -> None:
        size = self.meter.record_message(msg)  # a relayed message costs every hop, as simulated
        self.wire["params_bytes"] += size if remote else 0

    def _swap(self, frames: Mapping[int, Frames]) -> dict[int, tuple[bytes, torch.Tensor]]:
        """Send each live peer its frames, return what each sent us (the transport's part)."""
        return self._transfer(frames, self._announce(frames))

    def _key(self, src: int, dst: int) -> str:
        return f"x/{self.calls}/{src}/{dst}"

    def _announce(self, frames: Mapping[int, Frames]) -> dict[int, tuple[int, int, int]]:
        """Tell each peer what is coming; learn what each peer sends, within the deadline."""
        for p, (n, header, payload) in frames.items():
            note = f"{n} {len(header)} {len(payload)}"
            self.store.set(self._key(self.rank, p), note)
            self.wire["header_bytes"] += len(note) + len(header)
            self.wire["payload_bytes"] += len(payload)
        deadline = time.monotonic() + self.timeout_s
        sizes = {}
        for p in frames:
            key = self._key(p, self.rank)
            try:
                self.store.wait([key], timedelta(seconds=max(0.01, deadline - time.monotonic())))
                n, hlen, plen = (int(v) for v in self.store.get(key).decode().split())
                self.store.delete_key(key)
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

    def _transfer(self, frames: Mapping[int, Frames], sizes: Mapping[int, tuple[int, int, int]]
                  ) -> dict[int, tuple[bytes, torch.Tensor]]:
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

    def _receive(self, peer: int, header: bytes, payload: torch.Tensor,
                 inbox: dict[int, list[Message]]) -> None:
        if not header and not len(payload):  # the peer had nothing for us in this call
            return
        try:
            frame = loads_bounded(header)
            heads = frame["messages"] if isinstance(frame, dict) else None
            if frame.get("v") != WIRE_VERSION or not isinstance(heads, list):
                raise WireError(f"wire version {frame.get('v')!r} or no message list")
        except (WireError, KeyError, TypeError, AttributeError) as err:
            self._reject(f"rank {peer}", "header frame", f"malformed: {err}")
            return
        for head in heads:
            try:
                msg = self._decode(peer, head, payload)
            except WireError as err:
                self._reject(f"rank {peer}", "message", str(err))
                continue
            except Exception as err:  # noqa: BLE001  (untrusted bytes: never stop the process)
                self._reject(f"rank {peer}", "message", f"undecodable ({type(err).__name__}: "
                             f"{str(err)[:200]})")
                continue
            self._accept(msg, inbox, f"rank {peer}")

    def _decode(self, peer: int, head: Any, payload: torch.Tensor) -> Message:
        """One header entry from ``peer`` as a checked message (raises :class:`WireError`)."""
        msg, n = decode_one(head, payload, self.device), len(self.owner)
        if not all(0 <= i < n for i in msg.path) or len(set(msg.path)) != len(msg.path) \
                or self.owner[msg.src] != peer or self.owner[msg.dst] != self.rank:
            raise WireError(f"rank {peer} may not send {msg.src}->{msg.dst} via {msg.path}")
        if self.auth is not None:  # decode_one has checked the byte range
            region = payload[head["offset"]:head["offset"] + head["length"]]
            self.auth.check(head, bytes(region.numpy()), self.calls)
        if msg.kind != "params":
            check_control(msg, self.expected, len(self.owner))
        return msg

    def _accept(self, msg: Message, inbox: dict[int, list[Message]], origin: str) -> None:
        if msg.kind == "params" and self.codec is not None:  # the checks see decoded tensors
            try:
                msg = replace(msg, body=self.codec.decode_wire(msg, self.expected))
            except ValueError as err:
                self.checks.reject("names", f"{msg.component} {msg.src}->{msg.dst}")
                self._reject(origin, f"{msg.component} {msg.src}->{msg.dst}", str(err))
                return
        if msg.kind == "params":
            reason = self.checks.check_message(msg, self.expected)  # names/shape/dtype/values
            if reason:
                self._reject(origin, f"{msg.component} {msg.src}->{msg.dst}", DETAIL[reason])
                return
            if self.planned is not None and \
                    msg.src not in self.planned.get((msg.dst, msg.component), ()):
                self._reject(origin, f"{msg.component} {msg.src}->{msg.dst}",
                             f"{msg.src} is not a planned peer of {msg.dst} for "
                             f"{msg.component!r}")
                return
        inbox[msg.dst].append(msg)

    def _reject(self, origin: str, what: str, reason: str) -> None:
        self.wire["rejected"] += 1
        log.warning("rejected %s from %s (call %d): %s", what, origin, self.calls, reason)

    def _lose(self, peer: int, reason: str) -> None:
        self.lost[peer] = reason
        agents = [i for i, r in enumerate(self.owner) if r == peer]
        log.error("lost rank %d (agents %s) at call %d: %s", peer, agents, self.calls, reason)


class DistributedEngine(RoundEngine):
    """The round engine over a process's own agents; its handshake forgets agents hosted by
    lost processes, so that survivors neither plan with them nor wait for their degrees."""

    transport: DistributedTransport
    cache_plans = False  # a lost peer must be forgotten by every process in the same round

    def prepare(self, r: int) -> None:
        # A peer that vanishes during this round's degree swap is dropped by plan_gossip
        # itself (its degree never arrives); here we forget those lost in earlier rounds.
        self._forget_lost()
        super().prepare(r)

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

