"""Membership over gRPC: who takes part in which round. Mixed into
:class:`~parsefl.runtime.grpc_transport.GrpcTransport`.

An exchange is named by its round and its place in the round (``call_id``), so a process that
starts late or restarts can take part from any round. Each process serves
``/parsefl.Wire/Member`` (small JSON requests under the transport's mutual TLS: the client
certificate must name an agent of the rank it claims) with three questions:

- ``query``: which round are you in, and are you running?
- ``admit``: take me back from round R. The answer is the round the server agrees to: the later
  of R and any round it proposed itself, so both ends of a pair take each other back at the
  start of the same round.
- ``rounds``: which rounds did you checkpoint (``--resume`` without a store)?

A process started with ``--join`` asks its peers for their round and proposes to be taken back
``JOIN_MARGIN`` rounds after the newest. A pair of running processes that lost each other (a
partition, a crash) is re-linked by the lower rank, which probes the other every round and
proposes a round ``PROBE_MARGIN`` rounds after the later of the two. See docs/distributed.md,
"Joining, leaving and coming back".
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import Any

import grpc

from parsefl.errors import ConfigError
from parsefl.runtime.wire import WireError, loads_bounded

log = logging.getLogger("parsefl.runtime.grpc_transport")

MEMBER = "/parsefl.Wire/Member"
MAX_MEMBER = 1 << 20  # bytes of a membership request or answer (a list of rounds at most)
JOIN_MARGIN = 2  # a joiner is taken back this many rounds after the newest round it heard
PROBE_MARGIN = 3  # a healed pair is re-linked this many rounds after the later of the two
PROBE_S = 2.0  # deadline of one probe of a lost peer


class Membership:
    """The membership half of the gRPC transport. It uses the transport's state: ``rank``,
    ``owner``, ``peers``, ``lost`` (rank -> why), ``round``, ``call_id``, ``timeout_s``,
    ``startup_s``, ``rounds_total``, ``pending`` (rank -> the round it is taken back from),
    ``readmitted``, ``checkpointed``, the stubs ``members`` and the condition ``_arrived``
    that guards them against the server's threads."""

    def begin_round(self, r: int) -> None:
        """Round ``r`` starts: peers agreed for this round are taken back, frames of rounds
        gone are dropped, lost peers of a higher rank are probed (and re-linked when they
        answer)."""
        with self._arrived:
            super().begin_round(r)
            self.running = True
            for p, at in sorted(self.pending.items()):
                if at <= r:
                    del self.pending[p]
                    if at == r:
                        self.lost.pop(p, None)
                        self.readmitted.append((p, r))
                        self._fresh.add(p)
                        log.warning("took rank %d back from round %d", p, r)
            self._frames = {k: v for k, v in self._frames.items() if k[0] >= self.call_id}
        self._probe(r)

    def _probe(self, r: int) -> None:
        """Re-link lost peers of a higher rank (one probe or proposal in flight each)."""
        for p, (stage, fut) in list(self._probes.items()):
            if not fut.done():
                continue
            del self._probes[p]
            got = _answer(fut)
            if stage == "query" and got and got.get("running") is True \
                    and type(got.get("round")) is int and p in self.lost:
                self._propose(p, max(r, got["round"]) + PROBE_MARGIN)
            elif stage == "admit" and got and got.get("ok") is True \
                    and type(got.get("at")) is int:
                with self._arrived:
                    if got["at"] > self.round and p in self.lost:
                        self.pending[p] = max(got["at"], self.pending.get(p, 0))
        for p in sorted(self.lost):
            if p > self.rank and p not in self._probes and p not in self.pending \
                    and (self.peers is None or p in self.peers):
                self._probes[p] = ("query", self._ask(p, {"op": "query"}, PROBE_S))

    def _propose(self, p: int, at: int) -> None:
        with self._arrived:
            self._proposed[p] = max(at, self._proposed.get(p, 0))
            at = self._proposed[p]
        self._probes[p] = ("admit", self._ask(p, {"op": "admit", "at": at}, PROBE_S))

    def _ask(self, p: int, body: dict[str, Any], timeout: float) -> Any:
        request = json.dumps({**body, "rank": self.rank}).encode()
        return self.members[p].future(request, timeout=timeout)

    def join(self) -> int:
        """``--join``: ask the peers for their round, propose to be taken back
        ``JOIN_MARGIN`` rounds after the newest, and return the round this process starts at
        (a peer that did not answer stays lost; a lower-ranked one probes us later)."""
        peers = sorted(self.peers if self.peers is not None else set(self.owner) - {self.rank})
        with self._arrived:
            for p in peers:
                self.lost.setdefault(p, "not taken back yet (joining)")
        rounds = self._poll(peers, {"op": "query"}, lambda got: got.get("running") is True
                            and type(got.get("round")) is int, settle=min(self.timeout_s, 5.0))
        if not rounds:
            raise ConfigError("--join", f"no peer process answered within {self.startup_s:g} s "
                              f"(ranks {peers}): is the run going on?")
        at = max(got["round"] for got in rounds.values()) + JOIN_MARGIN
        for p in rounds:
            self._propose(p, at)
        for p in rounds:
            stage, fut = self._probes.pop(p)
            got = _answer(fut, self.timeout_s)
            log.info("rank %d is in round %d; asked to take us back from %d: %s", p,
                     rounds[p]["round"], at, got)
            if got and got.get("ok") is True and type(got.get("at")) is int:
                with self._arrived:
                    self.pending[p] = max(got["at"], self.pending.get(p, 0))
        if not self.pending:
            raise ConfigError("--join", f"no peer took this process back (ranks {peers})")
        start = min(self.pending.values())
        log.warning("joining at round %d: %s", start, {p: f"from round {r}"
                                                      for p, r in sorted(self.pending.items())})
        return start

    def agree_resume(self, mine: Sequence[int]) -> int:
        """``--resume`` without a store: the newest round that every process checkpointed,
        asked of every process directly (each answers once it knows its own)."""
        self.checkpointed = sorted(mine)
        others = sorted(set(self.owner) - {self.rank})
        got = self._poll(others, {"op": "rounds"}, lambda a: isinstance(a.get("rounds"), list)
                         and len(a["rounds"]) <= self.rounds_total + 1
                         and all(type(x) is int and 0 <= x <= self.rounds_total
                                 for x in a["rounds"]))
        if set(got) != set(others):
            raise ConfigError("--resume", f"ranks {sorted(set(others) - set(got))} did not "
                              f"say their checkpointed rounds within {self.startup_s:g} s")
        common = set(mine).intersection(*(set(a["rounds"]) for a in got.values()))
        return max(common, default=0)

    def _poll(self, peers: Sequence[int], body: dict[str, Any], good: Any,
              settle: float | None = None) -> dict[int, dict]:
        """Ask each peer until it gives a ``good`` answer, up to ``startup_s`` (``settle``:
        stop that long after the first good answer)."""
        deadline, got = time.monotonic() + self.startup_s, {}
        while time.monotonic() < deadline and len(got) < len(peers):
            futs = {p: self._ask(p, body, 1.0) for p in peers if p not in got}
            for p, fut in futs.items():
                answer = _answer(fut)
                if answer is not None and good(answer):
                    got[p] = answer
            if got and settle is not None:
                deadline = min(deadline, time.monotonic() + settle)
            if len(got) < len(peers):
                time.sleep(0.2)
        return got

    def _member(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        """A peer's membership request: ``query`` (our round), ``admit`` (take it back from a
        round; we answer the round we agree to, the later of its and any we proposed) or
        ``rounds`` (what we can resume from)."""
        try:
            if len(request) > MAX_MEMBER:
                raise ValueError(f"{len(request)} bytes")
            body = loads_bounded(request, max_depth=2)
            rank, op = body.get("rank"), body.get("op")
            if type(rank) is not int or rank == self.rank or rank not in self.owner:
                raise ValueError(f"unknown sender rank {rank!r}")
            self._check_peer(rank, context)
        except (ValueError, WireError, AttributeError) as err:
            self._reject(context.peer(), "membership request", str(err))
            return b"{}"
        if op == "query":
            return json.dumps({"round": self.round, "running": self.running}).encode()
        if op == "rounds":
            return json.dumps({"rounds": self.checkpointed}).encode()
        at = body.get("at")
        if op != "admit" or type(at) is not int:
            self._reject(context.peer(), "membership request", f"unknown op {op!r}")
            return b"{}"
        with self._arrived:
            at = max(at, self._proposed.get(rank, 0), self.pending.get(rank, 0))
            if not self.round < at < self.rounds_total:
                log.warning("rank %d asks to be taken back from round %d: refused (round %d "
                            "of %d)", rank, at, self.round, self.rounds_total)
                return json.dumps({"ok": False, "round": self.round}).encode()
            if rank not in self.lost:  # it restarted before we noticed
                self._lose(rank, "came back without us losing it (restarted)")
            self.pending[rank] = at
            self._arrived.notify_all()
        log.warning("rank %d asks to be taken back: from round %d", rank, at)
        return json.dumps({"ok": True, "at": at}).encode()


def _answer(fut: Any, timeout: float | None = None) -> dict[str, Any] | None:
    """A membership answer as a dict, or None (failed, refused, malformed)."""
    try:
        raw = fut.result(timeout=timeout)
        if len(raw) > MAX_MEMBER:
            return None
        got = loads_bounded(raw, max_depth=2)
        return got if isinstance(got, dict) else None
    except (grpc.RpcError, grpc.FutureTimeoutError, WireError, ValueError):
        return None
