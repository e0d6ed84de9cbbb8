"""How a worker talks: signed frames from a keys folder, and the settings of its transport (a
name in ``TRANSPORTS``: gloo over the store, or gRPC with mutual TLS from the peers file;
plaintext only with ``--insecure``), which ``build_transport`` turns into the transport."""

from __future__ import annotations

import argparse
from pathlib import Path

from parsefl.config import RunConfig
from parsefl.errors import ConfigError
from parsefl.experiments.distributed.merge import STARTUP_S
from parsefl.runtime.transport_base import TransportSettings, transport_class
from parsefl.security import FrameAuth, Identities


def make_auth(cfg: RunConfig, keys: str | None, local: list[int]) -> FrameAuth | None:
    """Signed frames when a keys folder is given; ``runtime.auth`` without one is an error
    (never a silent fallback to unsigned frames)."""
    if keys is None:
        if cfg.runtime.auth:
            raise ConfigError("runtime.auth", "true needs a keys folder: --keys DIR "
                              "(create one with `parsefl keys init DIR --agents N`)")
        return None
    return FrameAuth(Identities(keys, local))


def transport_settings(args: argparse.Namespace, rank: int, world: int,
                       timeout_s: float, rounds: int = 1 << 30) -> TransportSettings:
    """The worker's arguments as transport settings, read once; an unknown ``--transport`` is
    a ConfigError listing the registered ones."""
    transport_class(args.transport)
    return TransportSettings(
        kind=args.transport, rank=rank, world=world, timeout_s=timeout_s,
        startup_s=STARTUP_S if getattr(args, "startup_s", None) is None else args.startup_s,
        keys=Path(args.keys) if args.keys is not None else None, insecure=args.insecure,
        addresses=tuple(args.addresses.split(",")) if args.addresses else (), rounds=rounds)
