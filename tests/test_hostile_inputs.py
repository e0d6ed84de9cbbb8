"""Nothing on disk is trusted (issue 23): hostile config files, overrides, run folders and
data are each refused in one line naming the field or file, exit code 2, no traceback, in
bounded time and memory, before any training.

Most cases run through the CLI's ``main`` in this process (the imports are paid once); a few
through the real console script. A case that passed validation fails its test instead of
training (``build_experiment`` is wrapped to stop after building)."""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest
import yaml
from console import parsefl, refused

from parsefl import cli, config_checks
from parsefl.aggregation import build_aggregator
from parsefl.aggregation.geomed import MAX_ITERS
from parsefl.attacks.select import choose_adversaries
from parsefl.config import validate
from parsefl.config_checks import MAX_AGENTS, MAX_YAML_DEPTH, MAX_YAML_NODES, load_yaml
from parsefl.config_sections import SEED_BOUND, AdversaryConfig
from parsefl.data.synthetic import MAX_CLASSES
from parsefl.errors import ConfigError

BASE = ["-o", "data.name=synthetic_pid", "-o", "mix={m1: 2, m1+m2: 2}", "-o", "rounds=1"]

# Nine aliases of nine aliases ...: 9^9 (387 million) strings once expanded.
BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi",
                                                               strict=True))


@pytest.fixture
def cli_main(monkeypatch, capsys, tmp_path):
    """``parsefl ARGS`` through cli.main in this process: (exit code, stderr)."""
    import parsefl.experiments.run.simulate as run_module

    build = run_module.build_experiment

    def build_only(cfg, **_):  # some inputs are refused only once the data is built
        build(cfg)
        raise AssertionError(f"a hostile input was accepted: {cfg}")

    monkeypatch.setattr(run_module, "build_experiment", build_only)
    monkeypatch.chdir(tmp_path)

    def call(*args: str) -> tuple[int, str]:
        monkeypatch.setattr(sys, "argv", ["parsefl", *args])
        capsys.readouterr()
        try:
            cli.main()
            code = 0
        except SystemExit as stop:
            code = int(stop.code or 0)
        return code, capsys.readouterr().err

    return call


def one_line(result: tuple[int, str], *words: str) -> str:
    code, err = result
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (code, err)
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


# ------------------------------------------------------------ 6, 7: the config file itself
# A recursive alias was one line ("unknown key") until 6589f7c walked every value (check_raw)
# before validation and recursed forever; the loader now refuses it, whatever walks it later.

YAML_FILES = {
    "alias bomb": (BOMB, [f"more than {MAX_YAML_NODES} nodes"]),
    "recursive alias": ("a: &a [*a]\n", ["recursive alias"]),
    "recursive mapping alias": ("a: &a {b: *a}\n", ["recursive alias"]),
    "deep nesting": ("a: " + "[" * 5000 + "]" * 5000 + "\n", [f"{MAX_YAML_DEPTH} levels"]),
    "deep through an alias": ("a: &a " + "[" * 40 + "]" * 40 + "\nb: " + "[" * 40 + "*a"
                              + "]" * 40 + "\n", [f"{MAX_YAML_DEPTH} levels"]),
    "not UTF-8": (b"rounds: 2\nseed: \xff\xfe\n", ["not UTF-8"]),
    "binary": (bytes(range(256)) * 4, ["not UTF-8"]),
    "NUL byte": (b"rounds: 2\x00\n", ["not valid YAML"]),
    "too large": ("# " + "x" * (1 << 20) + "\n", ["larger than"]),
}


@pytest.mark.parametrize("case", list(YAML_FILES))
def test_hostile_config_files_are_one_line_naming_the_file(cli_main, tmp_path, case):
    text, words = YAML_FILES[case]
    path = tmp_path / "hostile.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    start = time.perf_counter()
    one_line(cli_main("run", str(path)), str(path), *words)
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("value,words", [
    ("&a [*a]", ["recursive alias"]),
    ("{a: &a [x, x, x, x, x, x, x, x, x], b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a], "
     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b], d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c], "
     "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d], f: [*e, *e, *e, *e, *e, *e, *e, *e, *e]}",
     [f"more than {MAX_YAML_NODES} nodes"]),
    ("[" * 100 + "]" * 100, [f"{MAX_YAML_DEPTH} levels"]),
])
def test_hostile_override_values_are_one_line_naming_the_key(cli_main, value, words):
    one_line(cli_main("run", "-o", f"method_params={value}"), "method_params", *words)


def test_aliases_and_merge_keys_within_the_budget_still_load(monkeypatch):
    text = "base: &b {lr: 0.1, momentum: 0.5}\ntrain:\n  <<: *b\n  lr: 0.2\nalso: [*b, *b]\n"
    assert load_yaml(text) == {"base": {"lr": 0.1, "momentum": 0.5},
                               "train": {"lr": 0.2, "momentum": 0.5},
                               "also": [{"lr": 0.1, "momentum": 0.5}] * 2}
    monkeypatch.setattr(config_checks, "MAX_YAML_NODES", 50)  # no alias: the budget still holds
    load_yaml("[" + ", ".join(["1"] * 49) + "]")
    with pytest.raises(yaml.YAMLError, match="more than 50 nodes"):
        load_yaml("[" + ", ".join(["1"] * 50) + "]")


def test_through_the_console_script(tmp_path):
    bomb, binary = tmp_path / "bomb.yaml", tmp_path / "binary.yaml"
    bomb.write_text(BOMB)
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff")
    refused(parsefl("run", str(bomb), timeout=60), str(bomb), "alias bomb")
    refused(parsefl("run", str(binary), timeout=60), str(binary), "not UTF-8")
    (tmp_path / "somefile").write_text("")
    refused(parsefl("run", *BASE, "--out", str(tmp_path / "somefile"), timeout=60), "--out")


# ------------------------------------------------------------ 8: --out that is a file

@pytest.mark.parametrize("command", [["run"], ["compare", "--methods", "parse", "--seeds", "0"],
                                     ["launch"], ["pretrain", "-o", "data.public=0.2"]])
@pytest.mark.parametrize("out", ["somefile", "somefile/run"])
def test_out_that_is_a_file_is_one_line_naming_out(cli_main, tmp_path, command, out):
    (tmp_path / "somefile").write_text("keep me\n")
    one_line(cli_main(*command, *BASE, "--out", out), "--out", "somefile", "not a folder")
    assert (tmp_path / "somefile").read_text() == "keep me\n"


# ------------------------------------------------------------ 9: seeds beyond any generator

@pytest.mark.parametrize("override,field", [
    (f"seed={10**30}", "seed"), (f"seed={2**70}", "seed"), (f"seed={SEED_BOUND}", "seed"),
    (f"dynamics.seed={2**64}", "dynamics.seed"), ("dynamics.seed=-1", "dynamics.seed"),
])
def test_seeds_beyond_the_generators_are_one_line_naming_the_seed(cli_main, override, field):
    one_line(cli_main("run", *BASE, "-o", override), f"{field}:")


def test_the_largest_seed_validates():
    validate({"seed": SEED_BOUND - 1, "dynamics": {"seed": SEED_BOUND - 1}})


# ------------------------------------------------------------ 10, 11: aggregation.params

@pytest.mark.parametrize("aggregation,field,words", [
    ("{name: geomed, params: [1, 2]}", "aggregation.params", ["valid dictionary"]),
    ("{name: geomed, params: x}", "aggregation.params", ["valid dictionary"]),
    ("{name: geomed, params: {iters: x}}", "aggregation.params.iters", ["integer"]),
    ("{name: geomed, params: {iters: true}}", "aggregation.params.iters", ["boolean"]),
    ("{name: trimmed_mean, params: {beta: [1]}}", "aggregation.params.beta", ["number"]),
    ("{name: clipped, params: {byzantine: x}}", "aggregation.params.byzantine", ["integer"]),
    ("{name: clipped, params: {bogus: 1}}", "aggregation.params.bogus", ["byzantine, tau"]),
    (f"{{name: geomed, params: {{iters: {10**9}}}}}", "aggregation.params.iters",
     [f"iters <= {MAX_ITERS}"]),
])
def test_aggregation_params_are_checked_at_config_time(cli_main, aggregation, field, words):
    one_line(cli_main("run", *BASE, "-o", f"aggregation={aggregation}"), f"{field}:", *words)


def test_aggregation_params_are_converted_where_lossless():
    cfg = validate({"aggregation": {"name": "geomed", "params": {"iters": 4.0, "nu": 1}}})
    rule = build_aggregator(cfg.aggregation.name, cfg.aggregation.params)
    assert (rule.iters, rule.nu) == (4, 1.0)


# ------------------------------------------------------------ 12: sizes that cannot be built

@pytest.mark.parametrize("overrides,field,words", [
    (["mix={n_agents: 100000, ratio: 0.5}", "data.params={n_samples: 1000000}"], "mix",
     [str(MAX_AGENTS)]),
    (["mix={m1: 100000}"], "mix", [str(MAX_AGENTS)]),
    (["model.encoder.params={hidden: [1000000000, 32]}"], "model.encoder", ["GiB"]),
    (["model.encoder.variants=[{hidden: [8]}, {hidden: [100000, 100000]}]"], "model.encoder",
     ["[100000, 100000]", "GiB"]),
    (["data.params={arity: 1000}"], "data.params.arity", [f"at most {MAX_CLASSES}"]),
])
def test_sizes_that_cannot_be_built_are_refused_before_building(
        cli_main, monkeypatch, overrides, field, words):
    monkeypatch.setattr(config_checks, "available_memory", lambda: 8 * 2**30)
    args = [a for o in overrides for a in ("-o", o)]
    start = time.perf_counter()
    one_line(cli_main("run", *BASE, *args), f"{field}:", *words)
    assert time.perf_counter() - start < 10


# ------------------------------------------------------------ 13: no honest agent left

@pytest.mark.parametrize("command", [["run"], ["launch"]])
@pytest.mark.parametrize("adversary", ["{count: 4}", "{agents: [3, 2, 1, 0]}",
                                       "{per_group: {m1: 2, m1+m2: 2}}"])
def test_an_adversary_of_every_agent_is_one_line_naming_adversary(cli_main, command, adversary):
    one_line(cli_main(*command, *BASE, "-o", f"adversary={adversary}"), "adversary:",
             "all 4 agents", "honest")


def test_choosing_every_agent_is_refused_where_the_attackers_are_resolved():
    groups = [("m1",), ("m1",), ("m1", "m2"), ("m1", "m2")]
    adversary = AdversaryConfig(per_group={"m1": 2, "m1+m2": 2})
    with pytest.raises(ConfigError, match="^adversary: all 4 agents would attack"):
        choose_adversaries(adversary, groups, seed=0)
    assert len(choose_adversaries(AdversaryConfig(count=3), groups, seed=0)) == 3


# ------------------------------------------------------------ 14: a single class

@pytest.mark.parametrize("labels", [np.zeros(60, dtype=np.int64), np.array(["cat"] * 60)])
@pytest.mark.parametrize("command", [["run", "-o", "mix={a: 2, a+b: 2}"], ["data", "describe"]])
def test_data_of_one_class_is_one_line_naming_the_file(cli_main, tmp_path, labels, command):
    path = tmp_path / "one.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x_a=rng.normal(size=(60, 4)), x_b=rng.normal(size=(60, 3)), y=labels)
    one_line(cli_main(*command, "--data", f"npz:{path}"), str(path), "only class",
             "at least 2 classes")


def test_one_class_through_the_console_script(tmp_path):
    path = tmp_path / "one.npz"
    np.savez(path, x_a=np.ones((20, 2)), y=np.zeros(20, dtype=np.int64))
    refused(parsefl("data", "describe", "--data", f"npz:{path}", timeout=60), str(path),
            "at least 2 classes")
