"""Signed wire messages. Each message of a frame carries its sender agent, the exchange call
it belongs to, a per-sender sequence number, the fingerprint of the sender's certificate and
an ECDSA P-256 signature over the header entry and the SHA-256 of its payload bytes.

A receiver accepts a message only if the fingerprint is a trusted certificate *of the claimed
sender*, the signature verifies with that certificate's key, the call is the receiver's
current one and the sequence number is above every one seen from that sender (replay).

A message's signature is its sender's, but the capability entries a handshake message relays
describe other agents: each entry is also signed by the agent it describes, for the handshake
epoch (the round) it was made for (:class:`CapabilitySigner`), so that a relay can neither
alter nor replay one. Signed bytes never collide across uses: a frame's and a summary's start
with ``{``, a capability entry's with :data:`CAPABILITY`."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from parsefl.runtime.transport import SEAL
from parsefl.runtime.wire import WireError
from parsefl.security.keys import Identities

SIGNED = ("src", "call", "seq", "cert")  # header fields added by the signer
CAPABILITY = b"parsefl capability entry\0"  # prefix of a capability entry's signed bytes


def _signed_bytes(head: Mapping[str, Any], region: bytes) -> bytes:
    fields = {k: v for k, v in head.items() if k != "sig"}
    text = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    return text + b"\0" + hashlib.sha256(region).digest()


class FrameAuth:
    """One process's signer (for its own agents) and verifier (for everyone's certificates)."""

    def __init__(self, identities: Identities) -> None:
        self.ids = identities
        self.sent: dict[int, int] = {}  # local agent -> last sequence number used
        self.seen: dict[int, int] = {}  # remote agent -> last sequence number accepted

    def stamp(self, head: dict[str, Any], region: bytes, call: int) -> dict[str, Any]:
        """``head`` with call, sequence number, certificate fingerprint and signature."""
        src = head["src"]
        self.sent[src] = seq = self.sent.get(src, 0) + 1
        head = {**head, "call": call, "seq": seq, "cert": self.ids.fingerprints[src]}
        return {**head, "sig": self.ids.sign(src, _signed_bytes(head, region)).hex()}

    def check(self, head: Mapping[str, Any], region: bytes, call: int) -> None:
        """Raise :class:`WireError` unless ``head`` is a fresh message signed by its sender."""
        src, fp, sig, seq = (head.get(k) for k in ("src", "cert", "sig", "seq"))
        if not (isinstance(fp, str) and isinstance(sig, str) and type(seq) is int):
            raise WireError("unsigned message (no certificate, signature or sequence number)")
        owner = self.ids.by_fingerprint.get(fp)
        if owner is None:
            raise WireError(f"unknown certificate {fp[:16]}")
        if owner != src:
            raise WireError(f"certificate of agent {owner} used to claim agent {src}")
        try:
            good = self.ids.verify(owner, bytes.fromhex(sig), _signed_bytes(head, region))
        except ValueError:
            good = False
        if not good:
            raise WireError(f"bad signature from agent {src}")
        if head.get("call") != call or seq <= self.seen.get(src, 0):
            raise WireError(f"replayed message from agent {src} (call {head.get('call')}, "
                            f"sequence {seq}; expected call {call}, sequence > "
                            f"{self.seen.get(src, 0)})")
        self.seen[src] = seq

    def sign_blob(self, agent: int, data: bytes) -> str:
        """A local agent's signature of ``data`` (hex), e.g. a process's results summary."""
        return self.ids.sign(agent, data).hex()

    def verify_blob(self, agent: int, data: bytes, sig: str) -> bool:
        try:
            return agent in self.ids.public and self.ids.verify(agent, bytes.fromhex(sig), data)
        except (ValueError, TypeError):
            return False


def capability_bytes(entry: Mapping[str, Any], epoch: int) -> bytes:
    """What the agent a capability entry describes signs: the entry without its seal, bound
    to the handshake ``epoch`` it is made for."""
    fields = {k: v for k, v in entry.items() if k not in SEAL}
    return CAPABILITY + json.dumps([epoch, fields], sort_keys=True,
                                   separators=(",", ":")).encode()


class CapabilitySigner:
    """One handshake's capability entries: the local agents' signed by each agent itself,
    everyone's verified against the certificate of the agent the entry describes.
    ``refuse(origin, what, reason)`` counts and logs a refused entry (the transport's)."""

    def __init__(self, auth: FrameAuth, refuse: Callable[[str, str, str], None]) -> None:
        self.auth = auth
        self.refuse = refuse
        self._verified: dict[tuple[str, bytes], bool] = {}  # an entry relayed many times

    def sign(self, entry: Mapping[str, Any], epoch: int) -> dict[str, Any]:
        """A local agent's own ``entry`` with its seal (``epoch``, ``sig``)."""
        data = capability_bytes(entry, epoch)
        sig = self.auth.sign_blob(entry["agent"], data)
        self._verified[sig, data] = True
        return {**entry, "epoch": epoch, "sig": sig}

    def admits(self, entry: Mapping[str, Any], epoch: int, origin: str) -> bool:
        """Whether ``entry`` (relayed by ``origin``) is sealed by the agent it describes for
        ``epoch``; a refused entry is counted through ``refuse``."""
        why = self.problem(entry, epoch)
        if why is not None:
            self.refuse(origin, f"capability entry of agent {entry.get('agent')}", why)
        return why is None

    def problem(self, entry: Mapping[str, Any], epoch: int) -> str | None:
        """Why ``entry`` is refused (None: it is its agent's, made for ``epoch``)."""
        agent, made, sig = (entry.get(k) for k in ("agent", "epoch", "sig"))
        if not isinstance(sig, str) or type(made) is not int:
            return "unsigned capability entry (no epoch or signature)"
        if made != epoch:  # checked before the signature: a replay costs no verification
            return f"stale capability entry (made for epoch {made}, this handshake's is {epoch})"
        data = capability_bytes(entry, epoch)
        if (sig, data) not in self._verified:
            self._verified[sig, data] = type(agent) is int and \
                self.auth.verify_blob(agent, data, sig)
        return None if self._verified[sig, data] else \
            f"capability entry not signed by agent {agent}"
