"""The parsefl side of the peers benchmark's overhead regime runs without the Flower/p2pfl
venvs: fixed local steps on the vectorized backend, the compute floor and CPU seconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PEERS = Path(__file__).resolve().parents[1] / "benchmarks" / "peers"


def test_bench_parsefl_overhead_regime_reports_the_floor_and_cpu(tmp_path: Path):
    env = dict(os.environ, PEERS_BENCH_REGIME="overhead", OMP_NUM_THREADS="1",
               PYTHONPATH=str(PEERS))
    data = tmp_path / "d.npz"
    subprocess.run([sys.executable, "-c", "import sys, _common; "
                    f"_common.generate(__import__('pathlib').Path({str(data)!r}), 800)"],
                   env=env, check=True, timeout=60)
    out = tmp_path / "r.json"
    subprocess.run([sys.executable, str(PEERS / "bench_parsefl.py"), "--data", str(data),
                    "--peers", "8", "--rounds", "2", "--steps", "4", "--out", str(out)],
                   env=env, check=True, timeout=300, capture_output=True,
                   start_new_session=True)  # its own process group, as run.py starts it:
    # group_cpu_s sums the group, and the test runner's group loses processes meanwhile
    res = json.loads(out.read_text())
    assert res["backend"] == "VectorizedExecutor" and res["peers"] == 8
    assert len(res["round_times"]) == 2 and len(res["floor_s"]) == 2
    assert len(res["cpu_s"]) == 2 and all(c >= 0 for c in res["cpu_s"])
    assert "4 fixed local steps, vectorized backend" in res["note"]
