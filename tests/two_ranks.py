"""Two real processes on 127.0.0.1 for the wire tests: a test module runs itself as rank 0
and rank 1 (its ``__main__`` calls ``join`` and then plays its part), and rank 0 writes what
it saw to ``rank0.json`` in the test's folder."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

BOUND_S = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_pair(script: str, out: Path) -> dict:
    """Start ``script`` as ranks 0 and 1, wait (bounded), check both exited 0, and return what
    rank 0 recorded."""
    port = free_port()
    procs = [subprocess.Popen([sys.executable, script, str(rank), str(port), str(out)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for rank in (0, 1)]
    outs = [p.communicate(timeout=BOUND_S)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    return json.loads((out / "rank0.json").read_text())


def join(rank: int, port: int, out: Path):
    """In a rank process: log to ``out/rank<rank>.log`` and join the 2-process group."""
    from parsefl.experiments.distributed.merge import connect

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    logging.basicConfig(filename=out / f"rank{rank}.log", level=logging.INFO)
    return connect(rank, 2, 20.0)
