"""The real ``parsefl`` console script, for tests of what a user types: run it, and check that
a refusal is one line, exit 2, no traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import parsefl as package


def script() -> str:
    """The installed ``parsefl`` executable of this interpreter's environment."""
    beside = Path(sys.executable).parent / "parsefl"
    found = str(beside) if beside.is_file() else shutil.which("parsefl")
    assert found, "the parsefl console script is not installed (pip install -e .)"
    return found


def env() -> dict[str, str]:
    """This environment, with the source tree of the ``parsefl`` these tests import first on
    the path: the console script then runs the code under test (a worktree's, not the
    editable install's)."""
    src = str(Path(package.__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        [src, *filter(None, [os.environ.get("PYTHONPATH")])])}


def parsefl(*args: str, cwd: Path | None = None, timeout: float = 120
            ) -> subprocess.CompletedProcess:
    return subprocess.run([script(), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env=env())


def in_process(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``parsefl ARGS`` through the console script's own ``main`` in this process (no ~2 s
    interpreter start): for the many cases of one error path whose first case goes through
    the real script. Exit code, stdout and stderr as :func:`parsefl` returns them."""
    import contextlib
    import io

    from parsefl import cli

    out, err, code = io.StringIO(), io.StringIO(), 0
    argv, here = sys.argv, os.getcwd()
    sys.argv = ["parsefl", *args]
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                cli.main()
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None
                                                                      else 1)
    finally:
        sys.argv = argv
        os.chdir(here)
    return subprocess.CompletedProcess(["parsefl", *args], code, out.getvalue(),
                                       err.getvalue())


def refused(proc: subprocess.CompletedProcess, *words: str) -> str:
    """Assert one ``error:`` line on stderr, exit code 2, no traceback, naming ``words``."""
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, (proc.returncode, proc.stderr)
    assert lines[0].startswith("error: "), lines[0]
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]
