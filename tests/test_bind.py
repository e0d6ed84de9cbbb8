"""`parsefl launch` keeps its store on 127.0.0.1, and rank 0 never takes a summary from the
store on trust (a process that reached the store could forge one)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch.distributed as dist

from parsefl.experiments.distributed.launcher import _loopback_store
from parsefl.experiments.distributed.merge import gather


def _listeners(port: int) -> set[str]:
    """Local addresses (hex, as /proc/net/tcp{,6} write them) listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.split(":")[1], 16) == port:
                found.add(local.split(":")[0])
    return found


def test_launch_store_listens_on_loopback_only():
    store = _loopback_store(5.0)
    assert _listeners(store.port) == {"0100007F"}  # 127.0.0.1, and no IPv6 "any" socket


def test_a_forged_summary_in_the_store_is_ignored(tmp_path):
    store = _loopback_store(5.0)
    client = dist.TCPStore("127.0.0.1", store.port, is_master=False)
    forged = {"rank": 1, "agents": [3], "history": {}, "wire": {}, "lost": {}}
    client.set("summary/1", json.dumps(forged))
    own = {"rank": 0, "lost": {}}
    start = time.monotonic()
    assert gather(store, 2, own, 1.0, tmp_path) == {0: own}  # unsigned, not in the run folder
    assert time.monotonic() - start < 0.5  # refused at once, not waited for
    real = {**forged, "agents": [1]}
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "summary_rank_1.json").write_text(json.dumps(real))
    assert gather(store, 2, own, 1.0, tmp_path) == {0: own, 1: real}
