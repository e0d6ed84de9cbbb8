"""Usage errors of every command, through the real console script: one line, exit 2, no
traceback, whatever typer/click version the install resolved."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from parsefl.cli_errors import usage_error


def _script() -> str:
    """The installed ``parsefl`` executable of this interpreter's environment."""
    beside = Path(sys.executable).parent / "parsefl"
    found = str(beside) if beside.is_file() else shutil.which("parsefl")
    assert found, "the parsefl console script is not installed (pip install -e .)"
    return found


def _parsefl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([_script(), *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args,expect", [
    (["run", "--bogus"], ["--bogus", "--method", "--out"]),
    (["nosuchcmd"], ["nosuchcmd", "run", "compare", "sweep", "launch"]),
    (["data", "describe"], ["dataset", "parsefl data describe"]),
    (["data", "nosub"], ["nosub", "describe"]),
    (["pid", "mfeat"], ["--modalities"]),
    (["compare", "--jobs", "x"], ["--jobs"]),
    (["compare", "--bogus"], ["--bogus", "--methods", "--seeds"]),
    (["sweep"], ["sweep_file"]),
    (["launch", "--nproc"], ["--nproc"]),
    (["plot"], ["path"]),
    (["report"], ["path"]),
    (["probe", "x"], ["--agent"]),
    (["list", "nosuch"], ["nosuch", "sharing", "topology"]),
    (["run", "-o"], ["-o"]),
    (["run", "-o", "noequals"], ["key=value"]),
    (["run", "--data", "nope"], ["data.name", "nope", "mfeat", "npz:PATH"]),
    (["compare", "--data", "csv:x.csv"], ["data.name", "npz:PATH"]),
    (["data", "describe", "--data", "npz:/no/such.npz"], ["/no/such.npz", "no such file"]),
])
def test_usage_error_is_one_line_exit_2(args, expect):
    proc = _parsefl(*args)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for word in expect:
        assert word in lines[0]


def test_data_option_selects_the_dataset():
    proc = _parsefl("data", "describe", "--data", "synthetic_pid", "-o", "mix={m1: 2, m1+m2: 2}")
    assert proc.returncode == 0, proc.stderr
    assert "1600" in proc.stdout  # synthetic_pid: 1600 training samples over the 4 agents


@pytest.mark.parametrize("args", [(), ("data",), ("keys",)])
def test_no_arguments_prints_help_once(args):
    proc = _parsefl(*args)
    assert "Traceback" not in proc.stderr
    assert (proc.stdout + proc.stderr).count("Usage:") == 1  # typer renders it when raising
    if not args:
        assert "run" in proc.stdout and "compare" in proc.stdout and "launch" in proc.stdout


def test_help_exits_0():
    proc = _parsefl("run", "--help")
    assert proc.returncode == 0 and "--method" in proc.stdout


def test_other_exceptions_are_not_usage_errors():
    assert usage_error(ValueError("x")) is None
    assert usage_error(KeyboardInterrupt()) is None
