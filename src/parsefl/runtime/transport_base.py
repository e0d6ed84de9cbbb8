"""What every network transport shares, and how one is built from settings.

A network transport moves one process's messages to the processes hosting their receivers. The
base class :class:`NetworkTransport` is the ``Transport`` interface (``exchange``,
``take_link_bytes``) and everything that does not depend on how bytes travel: billing each
``params`` message to the :class:`~parsefl.runtime.meter.LinkMeter`, encoding (and signing)
one frame per live peer, and on arrival decoding, verifying signatures, the receive checks
(:class:`~parsefl.runtime.checks.ReceiveChecks`) and the planned-sender check; every refusal is
logged and counted in ``wire["rejected"]``, and a peer given up is recorded in ``lost``. With
signed frames it also gives the handshake its capability seal (``seal``): the capability
entries the handshake refuses are counted the same way (and as ``capability`` rejections).
A subclass writes ``_swap`` (send each live peer its frames, return what each sent us) and the
classmethod ``build`` (from :class:`TransportSettings` and :class:`Wiring`), and registers
itself in :data:`~parsefl.registry.TRANSPORTS`. See docs/extending.md, "Adding a transport".
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import torch

from parsefl.registry import TRANSPORTS
from parsefl.runtime.checks import DETAIL, ReceiveChecks
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
    loads_bounded,
)
from parsefl.security.frames import CapabilitySigner, FrameAuth

log = logging.getLogger(__name__)

Received = dict[int, tuple[bytes, torch.Tensor]]  # peer rank -> (header frame, payload frame)


@dataclass(frozen=True)
class TransportSettings:
    """A process's transport, as configured: filled once by the worker from its arguments."""

    kind: str = "gloo"  # a name in TRANSPORTS
    rank: int = 0
    world: int = 1  # processes in the run
    timeout_s: float = 30.0  # deadline of each exchange
    startup_s: float = 120.0  # deadline of the first exchange (processes start in any order)
    keys: Path | None = None  # keys folder (parsefl keys init): CA, certificates, peers file
    insecure: bool = False  # plaintext links, explicitly asked for
    addresses: tuple[str, ...] = ()  # HOST:PORT per rank (empty: from the keys' peers file)
    rounds: int = 1 << 30  # the run's length (a transport that takes peers back: not after it)


@dataclass(frozen=True)
class Wiring:
    """What a transport is built around in the running process (not configuration)."""

    owner: Sequence[int]  # agent id -> hosting rank
    expected: ComponentSpecs  # the local agents' components: what arriving params must match
    peers: frozenset[int] | None = None  # ranks this one may talk to (None: all)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    auth: FrameAuth | None = None  # sign what we send, accept only signed messages
    codec: Any = None  # the run's communication policy (None: plain copies)
    store: Any = None  # the rendezvous store, for a transport that ``needs_store``

    def common(self) -> dict[str, Any]:
        """The keywords every :class:`NetworkTransport` takes."""
        return {"peers": self.peers, "device": self.device, "auth": self.auth,
                "codec": self.codec}


def transport_class(kind: str, field: str = "--transport") -> type[NetworkTransport]:
    """The registered transport ``kind``; an unknown name is a ConfigError listing the choices."""
    return TRANSPORTS.get(kind, field=field)


def build_transport(settings: TransportSettings, wiring: Wiring) -> NetworkTransport:
    """The registered transport ``settings.kind``, built and ready for its first exchange."""
    return transport_class(settings.kind).build(settings, wiring)


@dataclass
class NetworkTransport(ABC):
    """The checks, signatures and accounting of every network transport; subclasses move the
    frames (``_swap``) and build themselves from settings (``build``).

    Bytes are billed by the sending process to its ``meter``, by the simulator's rule (payload
    tensor bytes on every hop of ``msg.path``); ``wire`` holds what really crossed processes.
    """

    needs_store: ClassVar[bool] = False  # True: the worker opens the rendezvous store for it
    # True: the channel itself is mutually authenticated and encrypted (TLS) unless the run
    # says --insecure; it then needs keys (a throwaway CA when none are given).
    encrypts: ClassVar[bool] = False
    # True: a lost peer can be taken back (late join, restart, healed partition); the engine
    # then runs discovery every round (DistributedEngine.handshake_key).
    rejoins: ClassVar[bool] = False

    rank: int
    owner: Sequence[int]  # agent id -> hosting rank
    expected: ComponentSpecs
    _: KW_ONLY
    peers: frozenset[int] | None = None  # ranks this one may talk to (None: all)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    meter: LinkMeter = field(default_factory=LinkMeter)
    wire: Counter = field(default_factory=Counter)
    lost: dict[int, str] = field(default_factory=dict)  # rank -> why it was given up
    # (rank, round) of each lost peer taken back (a transport that ``rejoins``; else empty)
    readmitted: list[tuple[int, int]] = field(default_factory=list)
    calls: int = 0  # exchanges so far in this process
    round: int = -1  # the round being run (begin_round); -1 before the first
    in_round: int = 0  # exchanges so far in this round
    checks: ReceiveChecks = field(default_factory=ReceiveChecks)  # runtime/checks.py
    # (receiving agent, component) -> senders in this round's plans; params from anyone else
    # are refused (None until the engine has planned: the handshake sends no params).
    planned: dict[tuple[int, str], set[int]] | None = None
    auth: FrameAuth | None = None  # sign what we send, accept only signed messages
    # The run's communication policy (parsefl.compressors.Communication; None: plain copies):
    # encoded copies are decoded before the receive checks, and bound the frame sizes.
    codec: Any = None

    @classmethod
    @abstractmethod
    def build(cls, settings: TransportSettings, wiring: Wiring) -> NetworkTransport:
        """This transport from the process's settings, ready for its first ``exchange``;
        a setting it cannot use is a ConfigError naming it."""

    @abstractmethod
    def _swap(self, frames: Mapping[int, Frames]) -> Received:
        """Send each live peer its frames (``(messages, header, payload)``, possibly empty);
        return what each peer sent us in this call. A peer that fails or misses the deadline
        is ``_lose``-t and left out."""

    def close(self) -> None:  # noqa: B027  (optional: most transports open nothing)
        """Release what ``build`` opened (sockets, servers)."""

    @property
    def bounds(self) -> ComponentSpecs:
        """What bounds a peer's frames: the expected components, plain or encoded."""
        return self.expected if self.codec is None else self.codec.bound_specs(self.expected)

    @property
    def seal(self) -> CapabilitySigner | None:
        """A new handshake's capability seal: the local agents sign their own entries, and a
        relayed entry is used only if the agent it describes signed it for this handshake."""
        return None if self.auth is None else CapabilitySigner(self.auth, self._refuse_entry)

    @property
    def call_id(self) -> int:
        """The current exchange's name on the wire and in signatures: its round and its
        place in that round, ``(round + 1) << 16 | in_round`` — the same in every process,
        whatever it did before (a process that joins or resumes mid-run counts alike)."""
        return (self.round + 1) << 16 | self.in_round

    def begin_round(self, r: int) -> None:
        """Round ``r`` starts (the engine calls this before its handshake)."""
        self.round, self.in_round = r, 0

    @property
    def lost_agents(self) -> set[int]:
        return {i for i, r in enumerate(self.owner) if r in self.lost}

    def exchange(self, messages: Iterable[Message]) -> dict[int, list[Message]]:
        """Deliver every message (local ones in memory, others to their process); return each
        local agent's accepted messages, ordered by sender."""
        self.calls += 1
        self.in_round += 1
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
        stamp = (lambda head, region: self.auth.stamp(head, region, self.call_id)) \
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

    def _sent(self, header_bytes: int, payload_bytes: int) -> None:
        """What one frame to a peer put on the wire (its header includes any framing)."""
        self.wire["header_bytes"] += header_bytes
        self.wire["payload_bytes"] += payload_bytes

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
            self.auth.check(head, bytes(region.numpy()), self.call_id)
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

    def _refuse_entry(self, origin: str, what: str, reason: str) -> None:
        self.checks.reject("capability", what)  # results.json's rejected_messages, by reason
        self._reject(origin, what, reason)

    def _reject(self, origin: str, what: str, reason: str) -> None:
        self.wire["rejected"] += 1
        log.warning("rejected %s from %s (round %d, call %d): %s", what, origin, self.round,
                    self.in_round, reason)

    def _lose(self, peer: int, reason: str) -> None:
        self.lost[peer] = reason
        agents = [i for i, r in enumerate(self.owner) if r == peer]
        log.error("lost rank %d (agents %s) in round %d, call %d: %s", peer, agents,
                  self.round, self.in_round, reason)
