"""A peer-to-peer transport over gRPC with mutual TLS, beside gloo: no rendezvous store and no
process that everyone needs. Every process serves one method (``/parsefl.Wire/Deliver``) on its
address from the peers file and dials the processes hosting its agents' neighbours.

Per ``exchange`` call each process sends every live peer one request: a fixed prefix (call,
sender rank, header and payload lengths), the header frame and the payload frame of
:mod:`parsefl.runtime.wire`, and waits up to ``timeout_s`` for each peer's request of the same
call (the first call waits ``startup_s``: processes may start in any order; gRPC retries the
connection until then). A peer whose request fails or never comes is lost for the run.

With TLS, both ends present certificates of the network CA (the process's first agent's); the
server checks that the client certificate names an agent hosted by the rank the request claims,
and the client checks that the server's names that rank's first agent. Every call has a
timeout and a maximum message size (the receiver's bound for its largest peer).

An exchange is named by its round and its place in the round (``call_id``); who takes part in
which round (late joiners, restarts, healed partitions, ``--resume`` without a store) is the
second method, ``/parsefl.Wire/Member``: :mod:`parsefl.runtime.grpc_membership`.
"""

from __future__ import annotations

import json
import logging
import struct
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any, ClassVar

import grpc
import torch

from parsefl.errors import ConfigError
from parsefl.registry import TRANSPORTS
from parsefl.runtime.grpc_membership import MEMBER, Membership
from parsefl.runtime.transport_base import (
    NetworkTransport,
    Received,
    TransportSettings,
    Wiring,
)
from parsefl.runtime.wire import Frames, frame_limits
from parsefl.security.keys import agent_name, read_private

log = logging.getLogger(__name__)

METHOD = "/parsefl.Wire/Deliver"
PREFIX = struct.Struct(">qqqq")  # call, sender rank, header bytes, payload bytes
AHEAD = 4  # frames of rounds up to this far ahead are kept (a peer that started a round early)
BUFFERED = 64  # frames kept per peer at most (calls not yet reached)
# Reconnect quickly to a peer that restarts (gRPC's default backoff grows to 120 s).
BACKOFF = [("grpc.initial_reconnect_backoff_ms", 200), ("grpc.min_reconnect_backoff_ms", 200),
           ("grpc.max_reconnect_backoff_ms", 2000)]


@dataclass(frozen=True)
class Tls:
    """PEM bytes: the CA certificate, this process's key and certificate."""

    ca: bytes
    key: bytes
    cert: bytes


@TRANSPORTS.register("grpc", "peer to peer over gRPC with mutual TLS (plaintext only with "
                     "--insecure); no store, no process that everyone needs")
@dataclass
class GrpcTransport(Membership, NetworkTransport):
    """The shared checks and accounting (:class:`NetworkTransport`) over gRPC."""

    encrypts: ClassVar[bool] = True
    rejoins: ClassVar[bool] = True

    timeout_s: float = 30.0
    addresses: dict[int, str] = field(default_factory=dict)  # rank -> host:port
    tls: Tls | None = None  # None: plaintext (only with an explicit --insecure)
    startup_s: float = 120.0
    rounds_total: int = 1 << 30  # the run's length: nobody is taken back after its end
    # rank -> the round from which a lost peer is taken back (both ends agreed on it)
    pending: dict[int, int] = field(default_factory=dict)
    checkpointed: list[int] | None = None  # rounds this process can resume from (--resume)

    @classmethod
    def build(cls, settings: TransportSettings, wiring: Wiring) -> GrpcTransport:
        """Mutual TLS from the keys folder (plaintext only with ``insecure``), addresses from
        the settings or the keys' peers file; serving once built."""
        if settings.keys is None and not settings.insecure:
            raise ConfigError("--transport grpc", "needs --keys DIR (mutual TLS); plaintext "
                              "only with an explicit --insecure")
        if settings.insecure:
            log.warning("INSECURE: gRPC links are plaintext and unauthenticated (--insecure)")
        addresses, tls = _addresses(settings, wiring.owner), None
        if settings.keys is not None and not settings.insecure:
            first, keys = wiring.owner.index(settings.rank), settings.keys
            tls = Tls((keys / "ca.pem").read_bytes(),
                      read_private(keys / "private" / f"agent_{first:04d}.key"),
                      (keys / "certs" / f"agent_{first:04d}.pem").read_bytes())
        transport = cls(settings.rank, wiring.owner, wiring.expected, settings.timeout_s,
                        **wiring.common(), addresses=addresses,
                        tls=tls, startup_s=settings.startup_s, rounds_total=settings.rounds)
        transport.start()
        return transport

    def start(self) -> None:
        """Serve this rank's address; open a channel to each peer (connects lazily)."""
        limit = max([PREFIX.size + sum(frame_limits(self.bounds, len(self.owner),
                                                    self.owner.count(p))[1:])
                     for p in set(self.owner) - {self.rank}], default=PREFIX.size)
        self.limit = limit
        opts = [("grpc.max_receive_message_length", min(limit, 2**31 - 1)),
                ("grpc.max_send_message_length", min(limit, 2**31 - 1))]
        self._frames: dict[tuple[int, int], tuple[bytes, torch.Tensor]] = {}
        self._arrived = threading.Condition()
        self._proposed: dict[int, int] = {}  # rank -> the round we proposed to take it back
        self._probes: dict[int, Any] = {}  # rank -> the probe or proposal in flight
        self._fresh: set[int] = set()  # peers taken back that have not delivered since
        self.running = False  # between the first round and close(): answers "running"
        self.server = grpc.server(futures.ThreadPoolExecutor(4), options=opts)
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            "parsefl.Wire", {"Deliver": grpc.unary_unary_rpc_method_handler(self._deliver),
                             "Member": grpc.unary_unary_rpc_method_handler(self._member)}),))
        where = self.addresses[self.rank]
        if self.tls is None:
            bound = self.server.add_insecure_port(where)
        else:
            creds = grpc.ssl_server_credentials([(self.tls.key, self.tls.cert)],
                                                root_certificates=self.tls.ca,
                                                require_client_auth=True)
            bound = self.server.add_secure_port(where, creds)
        if not bound:
            raise OSError(f"cannot listen on {where}")
        self.server.start()
        self.stubs, self.members = {}, {}
        for p in set(self.owner) - {self.rank}:
            channel = self._channel(p, [*opts, *BACKOFF])
            self.stubs[p], self.members[p] = channel.unary_unary(METHOD), \
                channel.unary_unary(MEMBER)

    def close(self) -> None:
        self.running = False
        self.server.stop(grace=1.0)

    def _channel(self, peer: int, opts: list) -> Any:
        if self.tls is None:
            return grpc.insecure_channel(self.addresses[peer], options=opts)
        first = self.owner.index(peer)  # its certificate names its first agent
        return grpc.secure_channel(
            self.addresses[peer],
            grpc.ssl_channel_credentials(self.tls.ca, self.tls.key, self.tls.cert),
            options=[*opts, ("grpc.ssl_target_name_override", agent_name(first))])

    def _check_peer(self, rank: int, context: grpc.ServicerContext) -> None:
        """With TLS: the client certificate names an agent hosted by ``rank``."""
        if self.tls is not None:
            names = context.auth_context().get("x509_common_name", [])
            agents = {f"agent-{i}".encode() for i, r in enumerate(self.owner) if r == rank}
            if not names or names[0] not in agents:
                raise ValueError(f"certificate {names} is not one of rank {rank}'s agents")

    def _deliver(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        """A peer's frames for one call; refused (and counted) unless well-framed, within the
        bound for that peer, from a certificate of an agent that peer hosts, and of a call
        that is not past (nor too far ahead) from a peer that is live or being taken back."""
        try:
            call, rank, hlen, plen = PREFIX.unpack_from(request)
            most = frame_limits(self.bounds, len(self.owner), self.owner.count(rank))
            if not (rank != self.rank and rank in self.owner):
                raise ValueError(f"unknown sender rank {rank}")
            if not (0 <= hlen <= most[1] and 0 <= plen <= most[2]
                    and len(request) == PREFIX.size + hlen + plen):
                raise ValueError(f"frame sizes {(hlen, plen)} outside {most[1:]} or truncated")
            self._check_peer(rank, context)
        except (struct.error, ValueError) as err:
            self._reject(context.peer(), "request", str(err))
            return b"refused"
        body = request[PREFIX.size:]
        payload = torch.frombuffer(bytearray(body[hlen:]), dtype=torch.uint8) if plen else \
            torch.empty(0, dtype=torch.uint8)
        with self._arrived:  # what the main thread and the other server threads change
            answer, why = self._unwanted(call, rank)
            if not why:
                self._frames[call, rank] = (body[:hlen], payload)
                self._arrived.notify_all()
        if why:
            self._reject(context.peer(), "request", why)
        return answer

    def _unwanted(self, call: int, rank: int) -> tuple[bytes, str]:
        """(answer, why not) for a well-framed request of ``call`` from ``rank``: ``lost``
        from a peer we lost (until the round it is taken back from), ``refused`` for a past
        call, one too far ahead, or more frames than we keep for a peer; ``ok``, ""."""
        back, at = self.pending.get(rank), (call >> 16) - 1
        if rank in self.lost and (back is None or at < back):
            return b"lost", f"lost sender rank {rank}"
        # Before its first round a process does not know where it starts (a resume, a join):
        # any round is kept then, as many frames per peer as BUFFERED.
        ahead = max(self.round, back if back is not None else -1) + AHEAD
        if not self.call_id <= call or (self.running and at > ahead) or \
                sum(k[1] == rank for k in self._frames) >= BUFFERED:
            return b"refused", (f"frame of round {at} (call {call & 0xFFFF}) in round "
                                f"{self.round} (call {self.in_round}), or too many ahead")
        return b"ok", ""

    def _swap(self, frames: Mapping[int, Frames]) -> Received:
        # The first exchange of a process that started with the others waits for them all;
        # the first with a peer taken back waits as long (the two may be rounds apart).
        first = self.calls == 1 and not self.readmitted
        wait = {p: self.startup_s if first or p in self._fresh else self.timeout_s
                for p in frames}
        pending, call = {}, self.call_id
        for p, (_, header, payload) in frames.items():
            request = PREFIX.pack(call, self.rank, len(header), len(payload)) + \
                bytes(header.numpy()) + bytes(payload.numpy())
            self._sent(PREFIX.size + len(header), len(payload))
            pending[p] = self.stubs[p].future(request, timeout=wait[p], wait_for_ready=True)
        for p, fut in pending.items():
            try:
                if fut.result() == b"lost":  # (another refusal: its deadline decides)
                    raise _Refused
            except grpc.RpcError as err:
                self._lose(p, f"delivery failed: {err.code()} {str(err.details())[:200]}")
            except _Refused:
                self._lose(p, "it refused our frames (it lost us)")
        start, got = time.monotonic(), {}
        with self._arrived:
            for p in frames:
                while (call, p) not in self._frames and p not in self.lost:
                    left = start + wait[p] - time.monotonic()
                    if left <= 0:
                        self._lose(p, f"no frames within {wait[p]:g} s")
                        break
                    self._arrived.wait(left)
                if (call, p) in self._frames:
                    got[p] = self._frames.pop((call, p))
                    self._fresh.discard(p)
        return {p: f for p, f in got.items() if p not in self.lost}


class _Refused(Exception):
    """The peer answered our frames with a refusal."""


def _addresses(settings: TransportSettings, owner: Sequence[int]) -> dict[int, str]:
    """Rank -> HOST:PORT: the settings' list, else each rank's first agent's in the peers file."""
    world = settings.world
    if settings.addresses:
        addresses = dict(enumerate(settings.addresses))
    elif settings.keys is None:
        raise ConfigError("--addresses", f"need one HOST:PORT per rank ({world}), or --keys "
                          "DIR with a peers file")
    else:
        table = {a["id"]: a["address"] for a in
                 json.loads((settings.keys / "peers.json").read_text())["agents"]}
        addresses = {r: table[owner.index(r)] for r in range(world)}
    if sorted(addresses) != list(range(world)):
        raise ConfigError("--addresses", f"need one HOST:PORT per rank ({world})")
    return addresses
