"""Ctrl-C (SIGINT) during run, compare and launch: exit 130 and one line saying what was kept."""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from console import env, script

from parsefl.experiments.run.checkpoint import complete_rounds

SMALL = ["-o", "data.name=synthetic_pid", "-o", "mix={m1: 2, m1+m2: 2}", "-o", "eval_every=1",
         "-o", "partition.name=iid", "-o", "model.encoder.params.hidden=[16]",
         "-o", "runtime.threads=1"]


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([script(), *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env())


def _interrupt_when(proc: subprocess.Popen, ready, timeout: float = 240) -> tuple[int, str]:
    """SIGINT to ``proc`` alone as soon as ``ready()``; its exit code and stderr."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "never got ready"
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def _one_line(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_interrupted_run_exits_130_and_says_what_was_kept(tmp_path):
    out = tmp_path / "run"
    proc = _start("run", *SMALL, "-o", "rounds=500", "--out", str(out))
    code, err = _interrupt_when(proc, lambda: (out / "metrics.csv").is_file())
    line = _one_line(err)
    assert code == 130
    assert line.startswith("interrupted: kept") and "metrics.csv up to round" in line
    record = json.loads((out / "results.json").read_text())  # why it stopped, no numbers
    assert record["stopped_by"] == "interrupted" and record["complete"] is False
    assert 1 <= record["rounds_completed"] < 500 and "final" not in record


def test_interrupted_run_names_its_checkpoint_and_the_command_that_continues(tmp_path):
    out = tmp_path / "run"
    args = ["run", *SMALL, "-o", "rounds=400", "-o", "runtime.checkpoint_every=1"]
    proc = _start(*args, "--out", str(out))
    code, err = _interrupt_when(proc, lambda: complete_rounds(out, "run.json"))
    line = _one_line(err)
    assert code == 130, err
    checkpoint = line.split("latest complete checkpoint ", 1)[1].split(" ", 1)[0]
    assert Path(checkpoint).parent == out / "state" and (Path(checkpoint) / "run.json").is_file()
    done = int(Path(checkpoint).name[6:])
    assert done == max(complete_rounds(out, "run.json")) and f"(round {done})" in line
    command = shlex.split(line.split("continue with: ", 1)[1])
    assert command == ["parsefl", *args, "--resume", "--out", str(out)]
    # the very command continues the run (given one round more, so that it ends soon)
    resumed = subprocess.run([script(), *command[1:], "-o", f"rounds={done + 1}"],
                             capture_output=True, text=True, env=env(), timeout=240)
    assert resumed.returncode == 0, resumed.stderr
    record = json.loads((out / "results.json").read_text())
    assert record["rounds_completed"] == done + 1 and "final" in record


def test_interrupted_compare_counts_the_finished_runs(tmp_path):
    out = tmp_path / "cmp"
    proc = _start("compare", *SMALL, "-o", "rounds=3", "--methods", "local,parse",
                  "--seeds", "0,1,2,3,4,5", "--out", str(out))
    code, err = _interrupt_when(proc, lambda: any((out / "runs").glob("*/*/results.json")))
    line = _one_line(err)
    assert code == 130 and "finished runs" in line and "of 12" in line and "resumes" in line
    again = shlex.split(line.split("`")[1])
    assert again[:2] == ["parsefl", "compare"] and again[-2:] == ["--out", str(out)]
    assert "--methods" in again and "local,parse" in again and "0,1,2,3,4,5" in again


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_interrupted_launch_forwards_to_workers_and_waits(tmp_path):
    out = tmp_path / "launch"
    proc = _start("launch", *SMALL, "-o", "rounds=400", "-o", "runtime.checkpoint_every=1",
                  "--nproc", "2", "--out", str(out))
    code, err = _interrupt_when(proc, lambda: set(complete_rounds(out, "rank_0.json"))
                                & set(complete_rounds(out, "rank_1.json")))
    line = _one_line(err)
    assert code == 130 and "latest complete checkpoint" in line, line
    command = shlex.split(line.split("continue with: ", 1)[1])
    assert command[:2] == ["parsefl", "launch"] and command[-3:] == ["--resume", "--out", str(out)]
    assert "--nproc" in command and "rounds=400" in command
    record = json.loads((out / "results.json").read_text())
    assert record["stopped_by"] == "interrupted" and record["complete"] is False
    assert record["rounds_completed"] >= 1 and "final" not in record
    # every worker got the signal and ended before the launcher did (each logged its pid;
    # forked by the fork server, a worker's command line does not name the run)
    pids = [int(re.search(r"pid (\d+)", (out / "logs" / f"rank_{k}.log").read_text())[1])
            for k in range(2)]
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or \
            Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z", pid
