"""`parsefl launch` keeps its store on 127.0.0.1, and rank 0 never takes a summary from the
store on trust (a process that reached the store could forge one)."""

from __future__ import annotations

import json
from pathlib import Path

import torch.distributed as dist

from parsefl.experiments.distributed.launcher import loopback_store
from parsefl.experiments.distributed.merge import RunParts, gather, write_summary


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
    store = loopback_store(5.0)
    assert _listeners(store.port) == {"0100007F"}  # 127.0.0.1, and no IPv6 "any" socket


def test_a_forged_summary_in_the_store_is_ignored(tmp_path):
    store = loopback_store(5.0)
    client = dist.TCPStore("127.0.0.1", store.port, is_master=False)
    parts = RunParts("fp", rounds=2, world=2, owner=[0, 0, 0, 1])
    forged = {"rank": 1, "agents": [3], "history": {"rounds": [], "evals": {}}, "wire": {},
              "lost": {}, "resumed_from": 0, "world_size": 2}
    client.set("summary/1", json.dumps({"v": json.dumps(forged)}))
    own = {"rank": 0, "lost": {}}
    got, refused = gather(store, own, 1.0, tmp_path, parts)  # not in the run folder, unsigned
    assert got == {0: own} and "neither in" in refused[1]
    write_summary(tmp_path, forged, parts, None)  # the real one, with its manifest
    assert gather(store, own, 1.0, tmp_path, parts) == ({0: own, 1: forged}, {})
    (tmp_path / "logs" / "summary_rank_1.json").write_text(json.dumps({**forged, "agents": [2]}))
    got, refused = gather(store, own, 1.0, tmp_path, parts)  # edited after its manifest
    assert got == {0: own} and ("SHA-256" in refused[1] or "bytes" in refused[1])


def test_a_launch_whose_every_worker_failed_says_why_in_one_line(tmp_path):
    import pytest

    from parsefl.experiments.distributed.launcher import WorkersFailed, WorkersRefused, _collect

    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "rank_0.log").write_text(
        "2026-12-07 10:00:00 rank 0 INFO parsefl.worker: rank 0 of 2\n"
        "2026-12-07 10:00:01 rank 0 ERROR parsefl.worker: keys: no private key for agent 0\n")
    with pytest.raises(WorkersFailed, match=r"exit codes \[1, 2\]\); rank 0: keys: no private "
                                            r"key for agent 0; see .*logs") as err:
        _collect(tmp_path, [1, 2], 0.0, None)
    assert err.value.exit_code == 1 and "\n" not in str(err.value)
    # every process refused its input (exit 2 each): that refusal, exit 2
    with pytest.raises(WorkersRefused, match=r"^rank 0: keys: no private key for agent 0 "
                                             r"\(every process refused it\)$") as err:
        _collect(tmp_path, [2, 2], 0.0, None)
    assert err.value.exit_code == 2
