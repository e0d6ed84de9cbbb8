"""How a worker talks: signed frames from a keys folder, and the transport (gloo over the
store, or gRPC with mutual TLS from the peers file; plaintext only with ``--insecure``)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import torch

from parsefl.config import RunConfig
from parsefl.errors import ConfigError
from parsefl.experiments.distributed.merge import STARTUP_S
from parsefl.runtime.distributed import DistributedTransport
from parsefl.security import FrameAuth, Identities

log = logging.getLogger("parsefl.worker")


def make_auth(cfg: RunConfig, keys: str | None, local: list[int]) -> FrameAuth | None:
    """Signed frames when a keys folder is given; ``runtime.auth`` without one is an error
    (never a silent fallback to unsigned frames)."""
    if keys is None:
        if cfg.runtime.auth:
            raise ConfigError("runtime.auth", "true needs a keys folder: --keys DIR "
                              "(create one with `parsefl keys init DIR --agents N`)")
        return None
    return FrameAuth(Identities(keys, local))


def make_transport(args: argparse.Namespace, rank: int, owner: list[int], specs: Any,
               store: Any, timeout_s: float, peers: Any, device: torch.device,
               auth: FrameAuth | None, codec: Any = None) -> DistributedTransport:
    """gloo, or gRPC with mutual TLS from the keys folder (plaintext only with --insecure)."""
    if args.transport == "gloo":
        return DistributedTransport(rank, owner, specs, store, timeout_s, peers, device,
                                    auth=auth, codec=codec)
    from parsefl.runtime.grpc_transport import GrpcTransport, Tls

    if args.keys is None and not args.insecure:
        raise ConfigError("--transport grpc", "needs --keys DIR (mutual TLS); plaintext only "
                          "with an explicit --insecure")
    if args.insecure:
        log.warning("INSECURE: gRPC links are plaintext and unauthenticated (--insecure)")
    world = max(owner) + 1
    if args.addresses:
        addresses = dict(enumerate(args.addresses.split(",")))
    else:
        table = {a["id"]: a["address"] for a in
                 json.loads((Path(args.keys) / "peers.json").read_text())["agents"]}
        addresses = {r: table[owner.index(r)] for r in range(world)}
    if sorted(addresses) != list(range(world)):
        raise ConfigError("--addresses", f"need one HOST:PORT per rank ({world})")
    tls = None
    if not args.insecure:
        first, keys = owner.index(rank), Path(args.keys)
        tls = Tls((keys / "ca.pem").read_bytes(),
                  (keys / "private" / f"agent_{first:04d}.key").read_bytes(),
                  (keys / "certs" / f"agent_{first:04d}.pem").read_bytes())
    transport = GrpcTransport(rank, owner, specs, None, timeout_s, peers, device, auth=auth,
                              addresses=addresses, tls=tls, startup_s=STARTUP_S, codec=codec)
    transport.start()
    return transport
