"""Identities for distributed runs: a network CA, per-agent ECDSA P-256 keys and X.509
certificates, a peers file, and signed wire frames. All cryptography is the ``cryptography``
library's; nothing here is hand-written crypto."""

from parsefl.security.frames import FrameAuth
from parsefl.security.keys import Identities, init_keys

__all__ = ["FrameAuth", "Identities", "init_keys"]
