"""The transport seam: every registered transport is a described ``NetworkTransport`` that
builds from ``TransportSettings``; an unknown name stops ``parsefl launch`` and the worker in
one line listing the choices; and a new transport is one class — the in-process one below
writes only ``build`` and ``_swap`` and gets the checks, counts and billing from the base.
(That gloo and gRPC give the simulator's numbers in 2-rank runs: tests/test_distributed.py,
tests/test_grpc.py, and every registered transport in tests/test_contract.py.)"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass

import pytest
import torch
from test_cli_usage import _parsefl

from parsefl.errors import ConfigError
from parsefl.registry import TRANSPORTS
from parsefl.runtime.transport import Message
from parsefl.runtime.transport_base import (
    NetworkTransport,
    Received,
    TransportSettings,
    Wiring,
    build_transport,
    transport_class,
)
from parsefl.runtime.wire import Frames


@pytest.mark.parametrize("name", TRANSPORTS.names())
def test_every_transport_is_a_described_network_transport(name):
    cls = TRANSPORTS.get(name)
    assert issubclass(cls, NetworkTransport) and not inspect.isabstract(cls)
    assert TRANSPORTS.describe()[name].strip()
    assert cls.build.__qualname__ == f"{cls.__name__}.build"  # its own, from settings
    assert transport_class(name) is cls


def test_gloo_and_grpc_are_registered_and_neither_subclasses_the_other():
    gloo, grpc = TRANSPORTS.get("gloo"), TRANSPORTS.get("grpc")
    assert not issubclass(gloo, grpc) and not issubclass(grpc, gloo)
    assert gloo.needs_store and not grpc.needs_store


def test_an_unknown_transport_is_a_config_error_listing_the_choices():
    with pytest.raises(ConfigError) as err:
        build_transport(TransportSettings(kind="nope"), Wiring([0, 1], {}))
    assert str(err.value) == ("--transport: unknown transport 'nope'; choose one of: "
                              f"{', '.join(TRANSPORTS.names())}")


def test_parsefl_launch_refuses_an_unknown_transport_in_one_line():
    proc = _parsefl("launch", "--transport", "nope", "--nproc", "2")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert lines == ["error: --transport: unknown transport 'nope'; choose one of: gloo, grpc"]


def test_the_worker_refuses_an_unknown_transport_before_the_rendezvous(tmp_path):
    env = {**os.environ, "RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": "1"}  # nothing listens there: reaching the rendezvous would hang
    proc = subprocess.run([sys.executable, "-m", "parsefl.experiments.distributed.worker", "--out",
                           str(tmp_path), "--transport", "nope"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    log = (tmp_path / "logs" / "rank_0.log").read_text()
    assert "unknown transport 'nope'; choose one of: gloo, grpc" in log
    assert "Traceback" not in log


class _Mailbox:
    """Frames in flight between the in-process transports: (call, src, dst) -> frames."""

    def __init__(self) -> None:
        self.frames: dict[tuple[int, int, int], tuple[bytes, torch.Tensor]] = {}
        self.arrived = threading.Condition()


@dataclass
class Pipes(NetworkTransport):
    """Ranks as threads of one process (the whole of a new transport: build and _swap)."""

    box: _Mailbox | None = None
    timeout_s: float = 10.0

    @classmethod
    def build(cls, settings: TransportSettings, wiring: Wiring) -> Pipes:
        return cls(settings.rank, wiring.owner, wiring.expected, BOX, settings.timeout_s,
                   **wiring.common())

    def _swap(self, frames: Mapping[int, Frames]) -> Received:
        with self.box.arrived:
            for p, (_, header, payload) in frames.items():
                self._sent(len(header), len(payload))
                self.box.frames[self.calls, self.rank, p] = (bytes(header.numpy()), payload)
            self.box.arrived.notify_all()
            keys = {p: (self.calls, p, self.rank) for p in frames}
            self.box.arrived.wait_for(lambda: all(k in self.box.frames for k in keys.values()),
                                      self.timeout_s)
            for p in (p for p, k in keys.items() if k not in self.box.frames):
                self._lose(p, f"no frames within {self.timeout_s:g} s")
            return {p: self.box.frames.pop(k) for p, k in keys.items() if p not in self.lost}


BOX = _Mailbox()


def test_a_new_transport_is_one_class_and_the_base_checks_counts_and_bills():
    owner, good = [0, 1, 1], torch.ones(2, 3)
    specs = {r: {(i, "c"): {"w": ("float32", (2, 3))} for i in range(3) if owner[i] == r}
             for r in (0, 1)}
    sent = {0: [], 1: [Message(1, 0, "params", {"w": good}, (1, 0), "c"),
                       Message(2, 0, "params", {"w": good * float("nan")}, (2, 1, 0), "c"),
                       Message(2, 1, "params", {"w": good}, (2, 1), "c")]}
    got: dict[int, dict] = {}
    with TRANSPORTS.registered("pipes", Pipes, "ranks as threads of one process"):
        transports = {r: build_transport(TransportSettings(kind="pipes", rank=r, world=2),
                                         Wiring(owner, specs[r])) for r in (0, 1)}
        threads = [threading.Thread(target=lambda r=r: got.update(
            {r: transports[r].exchange(sent[r])})) for r in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    receiver, sender = transports[0], transports[1]
    assert [(m.src, m.body["w"].tolist()) for m in got[0][0]] == [(1, good.tolist())]
    assert [m.src for m in got[1][1]] == [2]  # local delivery, checked the same way
    assert receiver.wire["rejected"] == 1 and receiver.checks.counts == {"non_finite": 1}
    assert sender.wire["params_bytes"] == 2 * 24  # two remote copies; the local one is free
    # billed by the sender on every hop of each path (2 -> 1 -> 0 crosses two links)
    assert sender.meter.take() == {(0, 1): 48, (1, 2): 48} and not receiver.lost
