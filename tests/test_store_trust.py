"""An outsider on the gloo rendezvous store, against real running processes.

Anyone on the host can reach the launcher's TCPStore (it has no access control) and list its
keys. With keys, every value the processes read there is signed by the writing rank, so
forged announcements and a forged summary are refused and counted, and the run finishes whole
with the numbers of an untouched run; a flood of junk keys stops the run in one line instead
of exhausting memory."""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
from pathlib import Path

import pytest
import torch.distributed as dist

from parsefl.errors import ConfigError, PartialRun
from parsefl.experiments.distributed.launcher import launch

BASE = [
    "data.name=synthetic_pid", "data.params={label: redundancy, n_samples: 600}",
    "mix={m1: 2, m2: 2, m1+m2: 2}", "partition.name=iid", "model.dim=12",
    "model.encoder.params.hidden=[16]", "device=cpu", "diagnostics.gradient_cosine=false",
    "rounds=12", "eval_every=6", "runtime.auth=true",
]
BOUND_S = 120


def _outsider(out: Path) -> tuple[dist.TCPStore, str]:
    """A client of the run's store, found as an attacker on the host would (``ss -ltnp``: the
    port the launcher, here this process, listens on), and the run's namespace, read from
    the store's own key list."""
    deadline = time.monotonic() + BOUND_S
    while time.monotonic() < deadline:
        log = out / "logs" / "rank_0.log"
        found = re.search(r"pid (\d+)", log.read_text()) if log.is_file() else None
        if found:
            port = _listening_port(os.getpid())
            store = dist.TCPStore("127.0.0.1", port, is_master=False,
                                  timeout=__import__("datetime").timedelta(seconds=10))
            token = next(k.split("/")[0] for k in store.list_keys() if "/gloo/" in k)
            return store, f"parsefl/{token}/0/"
        time.sleep(0.02)
    raise TimeoutError("the run never started")


def _listening_port(pid: int) -> int:
    """The one TCP port on 127.0.0.1 that process ``pid`` listens on (/proc/net/tcp)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, inode = fields[1], fields[3], fields[9]
        if state == "0A" and inode in inodes and local.startswith("0100007F:"):
            ports.add(int(local.split(":")[1], 16))
    assert len(ports) == 1, ports
    return ports.pop()


def _launch(out: Path, box: dict) -> threading.Thread:
    def run() -> None:
        try:
            box["r"] = launch(None, BASE, nproc=2, out_dir=out, wall_timeout_s=BOUND_S)
        except Exception as err:  # noqa: BLE001 - the test asserts on it
            box["err"] = err

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _numbers(results: dict) -> dict:
    return {k: results[k] for k in ("final", "agents", "communication", "rounds_completed")}


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    box: dict = {}
    _launch(tmp_path_factory.mktemp("clean") / "run", box).join(BOUND_S)
    return box["r"]


def test_forged_announcements_and_summary_are_refused_never_believed(tmp_path, clean):
    """Forgeries written ahead of the run's exchanges: each one read before the real value
    replaced it is a counted rejection, and the run is whole with the untouched run's
    numbers. (An outsider can also overwrite or delete a real value the moment it is written
    — the store has no access control — and then the run must end partial, naming the lost
    rank, exit non-zero: the test accepts that outcome too, never a believed forgery.)"""
    out, box = tmp_path / "run", {}
    runner = _launch(out, box)
    store, ns = _outsider(out)
    for call in range(8, 120):  # exchanges still ahead of the run, both directions
        for src, dst in ((0, 1), (1, 0)):
            store.set(f"{ns}x/{call}/{src}/{dst}", '{"v": "1 10 10"}')
    store.set(f"{ns}summary/1", '{"v": "{}"}')
    runner.join(BOUND_S)
    text = "".join(p.read_text() for p in (out / "logs").glob("rank_*.log"))
    assert "not signed by rank" in text  # forgeries were read, and refused
    if "err" in box:  # lost the race for a value: partial, said so, never a whole table
        assert isinstance(box["err"], PartialRun) and "partial" in box["err"].results
        assert json.loads((out / "results.json").read_text())["complete"] is False
        return
    got = box["r"]
    assert got["distributed"]["missing_ranks"] == [] and "partial" not in got
    assert got["distributed"]["authenticated"] is True
    assert _numbers(got) == _numbers(clean)  # not one number moved
    assert text.count("not signed by rank") == got["distributed"]["rejected_messages"]


def test_a_flood_of_junk_keys_stops_the_run_in_one_line(tmp_path):
    out, box = tmp_path / "run", {}
    runner = _launch(out, box)
    store, _ = _outsider(out)
    for k in range(2000):
        store.set(f"junk/{k}", "x")
    runner.join(BOUND_S)
    assert isinstance(box.get("err"), ConfigError)
    assert re.search(r"rendezvous store: it holds \d+ keys \(quota 320\)", str(box["err"]))
