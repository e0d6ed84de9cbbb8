"""Extending from one's own code: docs/examples/my_methods.py (a dataset and a sharing
strategy defined outside the package) used by name through the real console script and the
Python API; plugin files and entry points load once; bad plugins fail with one clear line."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from parsefl import plugins
from parsefl.errors import ConfigError
from parsefl.plugins import load_plugin, load_plugins

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "my_methods.py"
SMALL = ["method=parse_heads", "data.name=blobs2", "data.params={n_samples: 400}",
         "mix={left: 2, right: 2, left+right: 2}", "model.dim=12",
         "model.encoder.params.hidden=[16]", "device=cpu", "runtime.threads=1"]
BOUND_S = 180


def _console(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("parsefl")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=BOUND_S)


def test_the_worked_example_runs_through_the_console_script(tmp_path):
    args = [a for o in [*SMALL, "rounds=2"] for a in ("-o", o)]
    done = _console("run", "--plugin", str(EXAMPLE), *args, "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    assert (results["method"], results["dataset"], results["rounds_completed"]) == \
        ("parse_heads", "blobs2", 2)
    assert set(results["final"]["accuracy"]["groups"]) == {"left", "right", "left+right"}
    assert [a["n_train"] for a in results["agents"]] and results["communication"]["bytes_total"]
    listed = _console("list", "sharing", "--plugin", str(EXAMPLE))
    assert "parse_heads" in listed.stdout and "encoders stay private" in listed.stdout


@pytest.mark.usefixtures("registries_restored")
def test_the_example_aggregator_runs_by_name_with_hand_computed_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(plugins, "_loaded", set())  # loaded here, forgotten after the test
    load_plugin(str(EXAMPLE))
    from parsefl.aggregation import build_aggregator

    lazy = build_aggregator("lazy_mean", {"keep": 0.5})
    # MH row (own 0.4, peers 1: 0.3, 2: 0.3); peer 2's copy is missing -> own 0.7, then
    # lazy: 0.5 + 0.5 * 0.7 = 0.85 own, 0.5 * 0.3 = 0.15 for peer 1.
    assert lazy.mixing_weights(0.4, {1: 0.3, 2: 0.3}, {1}) == (0.85, {1: 0.15})
    import torch

    merged = lazy.merge({"w": torch.tensor([1.0, 2.0])}, {1: {"w": torch.tensor([3.0, 6.0])}},
                        0.4, {1: 0.3, 2: 0.3})
    assert torch.allclose(merged["w"], torch.tensor([0.85 + 0.45, 1.7 + 0.9]))
    args = [a for o in [*SMALL, "rounds=2", "method=parse", "aggregation.name=lazy_mean",
                        "aggregation.params={keep: 0.7}"] for a in ("-o", o)]
    done = _console("run", "--plugin", str(EXAMPLE), *args, "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "aggregation:\n  name: lazy_mean" in (tmp_path / "config.yaml").read_text()
    listed = _console("list", "aggregation", "--plugin", str(EXAMPLE))
    assert "lazy_mean" in listed.stdout and "mean" in listed.stdout


def test_launch_passes_the_plugin_to_every_worker(tmp_path):
    args = [a for o in [*SMALL, "rounds=1"] for a in ("-o", o)]
    done = _console("launch", "--nproc", "2", "--plugin", str(EXAMPLE), *args,
                    "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr + done.stdout
    results = json.loads((tmp_path / "results.json").read_text())
    assert (results["method"], results["distributed"]["missing_agents"]) == ("parse_heads", [])
    summary = json.loads((tmp_path / "logs" / "summary_rank_1.json").read_text())
    assert summary["agents"] == [3, 4, 5]  # rank 1 built only its own agents, by plugin names


def test_only_heads_travel_under_the_example_strategy():
    script = textwrap.dedent(f"""
        import json, parsefl
        from parsefl.experiments.run.build import build_experiment
        parsefl.load_plugins([{str(EXAMPLE)!r}])
        exp = build_experiment(parsefl.resolve_config(None, {SMALL!r}))
        exp.loop.step(0)
        print(json.dumps(sorted({{c for p in exp.loop.plans.values() for c in p.paths}})))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=BOUND_S)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == \
        ["head_r", "head_u.left", "head_u.right"]


def test_the_python_api_returns_typed_results(tmp_path):
    # A subprocess: the plugin's names must not leak into this test process's registries.
    script = textwrap.dedent(f"""
        import json, parsefl
        over = {[o for o in SMALL if not o.startswith("method=")]!r}
        run = parsefl.run(out={str(tmp_path / "run")!r}, overrides=over, rounds=1,
                          method="parse_heads", plugins=[{str(EXAMPLE)!r}])
        cmp = parsefl.compare(methods="parse_heads,local", seeds="0", out={str(tmp_path / "cmp")!r},
                              overrides=over, rounds=1)
        print(json.dumps({{"run": [type(run).__name__, run.method, run.dataset, run.rounds,
                                   run.accuracy == run.raw["final"]["accuracy"]["overall"],
                                   sorted(run.group_accuracy)],
                          "cmp": [type(cmp).__name__, sorted(cmp.methods),
                                  cmp.methods["local"].seeds, cmp.methods["local"].accuracy_std]}}))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=BOUND_S)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.splitlines()[-1])
    assert got["run"] == ["RunResult", "parse_heads", "blobs2", 1, True,
                          ["left", "left+right", "right"]]
    assert got["cmp"] == ["CompareResult", ["local", "parse_heads"], [0], 0.0]


def test_a_plugin_file_and_an_entry_point_load_once(tmp_path, monkeypatch):
    log = tmp_path / "loaded.txt"
    plugin = tmp_path / "counting.py"
    plugin.write_text(f"open({str(log)!r}, 'a').write('file\\n')\n")
    (tmp_path / "ep_plugin_mod.py").write_text(f"open({str(log)!r}, 'a').write('ep\\n')\n")
    dist = tmp_path / "ep_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[parsefl.plugins]\nmine = ep_plugin_mod\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    load_plugins([plugin])
    load_plugins([str(plugin)])
    load_plugin(plugin)
    assert log.read_text().splitlines() == ["ep", "file"]


@pytest.mark.parametrize("name, message", [
    ("missing.py", "no such file"), ("no_such_module_here", "no file or module")])
def test_a_bad_plugin_is_one_clear_config_error(tmp_path, name, message):
    target = str(tmp_path / name) if name.endswith(".py") else name
    with pytest.raises(ConfigError, match=message) as err:
        load_plugin(target)
    assert err.value.args[0].startswith("--plugin") or "--plugin" in str(err.value)


def test_the_cli_reports_a_bad_plugin_in_one_line(tmp_path):
    done = _console("run", "--plugin", str(tmp_path / "nope.py"), "-o", "rounds=1")
    assert done.returncode == 2
    assert "--plugin" in done.stderr and "no such file" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_plugin_that_fails_on_import_is_one_line_naming_its_file_and_line(tmp_path):
    from console import parsefl, refused

    plugin = tmp_path / "broken.py"
    plugin.write_text("import json\n\n\ndef read():\n    return json.loads('{nope')\n\n\n"
                      "read()\n")
    line = refused(parsefl("list", "sharing", "--plugin", str(plugin)), "--plugin")
    assert f"{plugin}:8: JSONDecodeError" in line  # the plugin's own line, then where raised
    assert "json" in line.split("raised at", 1)[1]


@pytest.mark.parametrize("source, where", [
    ("def f(:\n    pass\n", ":1: SyntaxError"),
    ("x = 1\nraise RuntimeError('no GPU here')\n", ":2: RuntimeError: no GPU here"),
])
def test_a_failing_plugin_file_or_module_names_where(tmp_path, monkeypatch, source, where):
    monkeypatch.setattr(plugins, "_loaded", set())
    (tmp_path / "failing_plugin_mod.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    for target in (str(tmp_path / "failing_plugin_mod.py"), "failing_plugin_mod"):
        with pytest.raises(ConfigError, match=re.escape(where)) as err:
            load_plugin(target)
        assert "failing_plugin_mod.py" in str(err.value) and "\n" not in str(err.value)
        sys.modules.pop("failing_plugin_mod", None)
