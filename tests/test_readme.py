"""The README's two set-up commands are what CI runs and what a newcomer types."""

import re
from pathlib import Path

from parsefl.config import PRESETS, load_config

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("```bash", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.strip().splitlines()]


def test_ci_runs_the_readme_test_command():
    install_run, install_test = _readme_commands()
    assert install_run == "pip install -e . -c constraints.txt && parsefl run"
    assert install_test == 'pip install -e ".[dev]" -c constraints.txt && pytest'
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert install_test in ci


def test_constraints_pin_every_dependency():
    pinned = {line.split("==")[0].lower() for line in (ROOT / "constraints.txt").read_text()
              .splitlines() if "==" in line and not line.startswith("#")}
    for name in ("torch", "typer", "rich", "pydantic", "numpy", "pytest", "ruff", "matplotlib"):
        assert name in pinned


def test_quickstart_preset_is_shipped_and_linked():
    """The README links the quickstart preset, the link resolves, and it is the very file that
    ``parsefl run`` with no config reads (configs/ links to the package's presets)."""
    targets = re.findall(r"\]\(([^)#]*quickstart\.yaml)\)", (ROOT / "README.md").read_text())
    assert targets, "the README does not link the quickstart preset"
    for target in targets:
        linked = ROOT / target
        assert linked.is_file(), f"README link {target} resolves to no file"
        assert linked.resolve() == (PRESETS / "quickstart.yaml").resolve()
        assert load_config(linked) == load_config(None)


def test_what_commands_write_by_default_is_ignored_by_git():
    """Run folders (runs/) and key folders (keys/: private keys) are never committed by
    accident; the package's own keys.py is not caught by the rule."""
    import shutil
    import subprocess

    import pytest

    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    paths = ["runs/parse-mfeat-s0/results.json", "keys/private/agent_0000.key", "keys/ca.key",
             "sub/keys/ca.key", "src/parsefl/security/keys.py"]
    done = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    assert done.stdout.split() == paths[:-1], done.stdout + done.stderr
