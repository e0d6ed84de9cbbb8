"""``parsefl list`` through the real console script: built-in names from the name index
without importing torch, a plugin's names from the registries, and the README naming every
kind it shows."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from console import env, parsefl

from parsefl.registry_index import NAMES

ROOT = Path(__file__).resolve().parents[1]


def test_list_imports_no_torch_and_shows_every_kind():
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "parsefl.cli", "list"],
                          capture_output=True, text=True, env=env(), timeout=120)
    assert done.returncode == 0, done.stderr
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:")]
    assert "parsefl.cli" in imported or "parsefl.cli_common" in imported  # the probe works
    assert not [m for m in imported if m.split(".")[0] == "torch"]
    for kind, names in NAMES.items():
        assert re.search(rf"^{kind}\s*$", done.stdout, re.M), kind
        for name in names:
            assert re.search(rf"^ {re.escape(name)} ", done.stdout, re.M), (kind, name)


def test_list_with_a_plugin_shows_its_names_beside_the_built_in_ones(tmp_path):
    plugin = tmp_path / "my_graphs.py"
    plugin.write_text("from parsefl.registry import TOPOLOGIES\n\n\n"
                      "@TOPOLOGIES.register('my_graph')\n"
                      "def my_graph(n, seed):\n    \"\"\"a graph of my own\"\"\"\n")
    done = parsefl("list", "topology", "--plugin", str(plugin))
    assert done.returncode == 0, done.stderr
    assert "my_graph" in done.stdout and "a graph of my own" in done.stdout
    assert "ring" in done.stdout and "chordal_ring" in done.stdout


def test_the_readme_list_line_names_every_kind():
    line = next(ln for ln in (ROOT / "README.md").read_text().splitlines()
                if ln.startswith("parsefl list"))
    named = {n.strip() for n in line.split("registered names:", 1)[1].split(",")}
    assert named == set(NAMES), line
