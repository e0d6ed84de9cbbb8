"""Every snippet in the README and docs/ runs as shown: each ```python block is executed in a
fresh interpreter (in a scratch folder holding docs/examples/), and each `parsefl ...` line of
a ```bash block parses against the real command line (command, options, arguments), without
running it. A block that is not meant to run is fenced as ```text."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from parsefl.cli import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^( *)```(\w+)\n(.*?)^\1```", re.M | re.S)


def _blocks(kind: str) -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for k, (indent, lang, body) in enumerate(FENCE.findall(doc.read_text())):
            if lang == kind:
                text = "\n".join(line[len(indent):] for line in body.splitlines())
                found.append((f"{doc.relative_to(ROOT)}#{k}", text))
    return found


PYTHON = _blocks("python")
COMMANDS = [(f"{where}:{n}", line) for where, block in _blocks("bash")
            for n, line in enumerate(" ".join(block.split("\\\n")).splitlines())
            if line.strip().startswith("parsefl ")]


def test_the_docs_have_snippets():
    assert len(PYTHON) >= 5 and len(COMMANDS) >= 30


@pytest.mark.parametrize("where,code", PYTHON, ids=[w for w, _ in PYTHON])
def test_a_python_snippet_runs_as_shown(where, code, tmp_path):
    shutil.copytree(ROOT / "docs" / "examples", tmp_path / "docs" / "examples")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, f"{where}:\n{done.stderr[-2000:]}"


def _synopsis(line: str) -> bool:
    """A usage line (``[--out DIR]``, ``NAME|npz:PATH``, ``RUN_DIR``, ``--agent K``), not a
    command to type."""
    text = line.split("#")[0]
    return "[" in text or "|" in text or " ..." in text \
        or re.search(r"(?<![\w./=-])[A-Z][A-Z_]*(?![\w./])", text) is not None


@pytest.mark.parametrize("where,line", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_a_command_line_in_the_docs_parses(where, line):
    if _synopsis(line):
        pytest.skip("a synopsis, not a command")
    for command in line.split("#")[0].split("&&"):
        for part in command.split(";"):
            args = shlex.split(part)
            assert args[0] == "parsefl", where
            _parse(args[1:], where)


def _parse(args: list[str], where: str) -> None:
    """Parse ``args`` as the console script would, down to the leaf command, without running
    it (click's make_context validates the leaf's options, their values and arguments)."""
    command, name = typer.main.get_command(app), "parsefl"
    ctx = None
    while hasattr(command, "get_command"):  # a group: its next word names a sub-command
        ctx = command.make_context(name, [], parent=ctx, resilient_parsing=True)
        assert args, f"{where}: {name} needs a sub-command"
        name, args = args[0], args[1:]
        command = command.get_command(ctx, name)
        assert command is not None, f"{where}: no command {name!r}"
    command.make_context(name, list(args), parent=ctx)


@pytest.mark.parametrize("bad", [["run", "--bogus"], ["keys", "nope"], ["launch", "--nproc", "x"],
                                 ["merge"]])
def test_the_parse_check_catches_what_a_user_would_hit(bad):
    with pytest.raises(Exception):  # noqa: B017 - click's usage errors, whatever their class
        _parse(bad, "test")
