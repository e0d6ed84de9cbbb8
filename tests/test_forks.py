"""The fork server that starts ``parsefl launch`` workers: exit codes as ``subprocess.Popen``
gives them (a refusal, a kill), the worker's stdout and stderr on its log, its own
environment, and a launching script without a main guard that runs once, not once per
worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from console import env

from parsefl.experiments.distributed.forks import ForkServer

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


def test_a_refusing_worker_reports_its_code_and_writes_its_log(tmp_path):
    log = tmp_path / "rank_0.out"
    environment = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    worker = ForkServer.get().spawn(["--out", str(tmp_path)], environment, log)
    assert worker.wait(60) == 2 == worker.returncode == worker.poll()
    assert "RANK/WORLD_SIZE are not set" in log.read_text()  # its stderr, on its log


def test_a_worker_starts_in_the_launchers_current_folder(tmp_path, monkeypatch):
    """The server was started elsewhere (by an earlier launch): a relative --out still means
    the launcher's folder."""
    ForkServer.get()
    monkeypatch.chdir(tmp_path)
    environment = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    worker = ForkServer.get().spawn(["--out", "here"], environment, Path("rank_0.out"))
    assert worker.wait(60) == 2
    assert "RANK/WORLD_SIZE are not set" in (tmp_path / "rank_0.out").read_text()


def test_a_killed_worker_ends_with_the_signal_and_had_its_own_environment(tmp_path):
    log = tmp_path / "rank_1.out"
    environment = {**os.environ, "RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
                   "MASTER_PORT": "1"}  # no store there: it waits for one
    worker = ForkServer.get().spawn(["--out", str(tmp_path)], environment, log)
    deadline = time.monotonic() + 60
    while not (tmp_path / "logs" / "rank_1.log").is_file():  # named by the RANK it was given
        assert worker.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    with pytest.raises(subprocess.TimeoutExpired):
        worker.wait(0.1)
    worker.kill()
    assert worker.wait(30) == -signal.SIGKILL


def test_a_script_without_a_main_guard_runs_once(tmp_path):
    """multiprocessing's own fork server re-imports ``__main__`` in every worker: a script
    that calls ``launch`` at top level would launch again from each of them."""
    script = tmp_path / "go.py"
    script.write_text(textwrap.dedent(f"""
        from parsefl.experiments.distributed.launcher import launch
        with open({str(tmp_path / "ran")!r}, "a") as f:
            f.write("ran\\n")
        launch(None, ["data.name=synthetic_pid", "mix={{m1: 2, m1+m2: 2}}", "rounds=2",
                      "eval_every=2", "partition.name=iid", "model.encoder.params.hidden=[8]"],
               nproc=2, out_dir={str(tmp_path / "run")!r})
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env=env(), cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "ran").read_text() == "ran\n"
    assert (tmp_path / "run" / "results.json").is_file()
