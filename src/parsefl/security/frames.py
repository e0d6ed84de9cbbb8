"""Signed wire messages. Each message of a frame carries its sender agent, the exchange call
it belongs to, a per-sender sequence number, the fingerprint of the sender's certificate and
an ECDSA P-256 signature over the header entry and the SHA-256 of its payload bytes.

A receiver accepts a message only if the fingerprint is a trusted certificate *of the claimed
sender*, the signature verifies with that certificate's key, the call is the receiver's
current one and the sequence number is above every one seen from that sender (replay)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from parsefl.runtime.wire import WireError
from parsefl.security.keys import Identities

SIGNED = ("src", "call", "seq", "cert")  # header fields added by the signer


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
