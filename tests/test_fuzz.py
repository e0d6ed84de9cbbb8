"""Fuzz: generated malformed configs and .npz files, each through the CLI's ``main``, must end
in one line, exit code 2, no traceback, and no allocation beyond a cap.

In-process (fast: the imports are paid once); a handful also through the console script.
The machine's free memory is pretended to be FREE so that "too big for this machine" is
decided the same way everywhere, and no run is ever started (a config that passes
validation fails the test instead of training).
"""

from __future__ import annotations

import io
import itertools
import random
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from parsefl import cli

FREE = 256 * 2**20  # pretended free memory: npz archives may unpack to a quarter of it
CAP = 48 * 2**20  # no case may allocate more (Python + numpy allocations, tracemalloc)
BASE = ["-o", "data.name=synthetic_pid", "-o", "mix={m1: 2, m1+m2: 2}"]

NUMERIC = ["rounds", "eval_every", "seed", "train.lr", "train.batch_size", "train.momentum",
           "model.dim", "loss.temperature", "train.local_epochs", "imperfect.missing_labels",
           "runtime.threads", "overlay.hops", "train.weight_decay", "model.pid_floor"]
BAD_VALUES = ["true", "false", ".inf", "-.inf", ".nan", "abc", "[1, 2]", "{a: 1}", "-1",
              "1.0e30", "''", "null"]
OTHER_BAD = [
    "colour=red", "train.lrate=0.1", "method=fedavg", "topology.name=moebius",
    "data.name=imagenet", "data.name=csv:x.csv", "data.name='npz:'", "device=tpu",
    "model.fusion=magic", "mix={fou: 2}", "mix={m1: 2, m1: 3}", "mix={}", "mix={m1: true}",
    "mix={n_agents: 200000, ratio: 0.5}", "model.dim=100000000", "model.split=[1, .inf, 1]",
    "model.split=[1, 1]", "data.params={n_samples: 1000000000}", "data.params={dim: .nan}",
    "imperfect.missing_labels=1.0", "imperfect.label_noise=2", "train.optimizer=lbfgs",
    "loss.align_kind=dot", "runtime.backend=gpu", "model.encoder.variants=[{hidden: .inf}]",
    "noequals", "=3", "rounds=[", "train={lr: 1, lr: 2}",
]


def _configs() -> list[list[str]]:
    rng = random.Random(11)
    pairs = list(itertools.product(NUMERIC, BAD_VALUES))
    rng.shuffle(pairs)
    picked = [[f"{key}={value}"] for key, value in pairs[:45]]
    picked += [[item] for item in OTHER_BAD]
    # two bad keys at once: one line still, naming one of them
    rest = pairs[45:]
    picked += [[f"{a}={va}", f"{b}={vb}"] for (a, va), (b, vb) in zip(
        rest[0::2], rest[1::2], strict=False) if a != b][:10]
    return picked


CONFIGS = _configs()


@pytest.fixture
def in_process(monkeypatch, capsys):
    """Run ``parsefl ARGS`` through cli.main in this process: (exit code, stderr, peak bytes)."""
    import parsefl.config_checks as checks
    import parsefl.experiments.run.simulate as run_module

    build = run_module.build_experiment

    def build_or_fail(cfg, **_):  # some inputs are only refused when the data is known
        build(cfg)
        raise AssertionError(f"a malformed input was accepted: {cfg}")

    monkeypatch.setattr(run_module, "build_experiment", build_or_fail)
    monkeypatch.setattr(checks, "available_memory", lambda: FREE)

    def call(*args: str) -> tuple[int, str, int]:
        monkeypatch.setattr(sys, "argv", ["parsefl", *args])
        capsys.readouterr()
        tracemalloc.start()
        try:
            cli.main()
            code = 0
        except SystemExit as stop:
            code = int(stop.code or 0)
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        return code, capsys.readouterr().err, peak

    import sklearn.metrics  # noqa: F401  (imported lazily by the code under test)
    import sklearn.model_selection  # noqa: F401

    call("list", "nosuch")  # pay the imports before measuring
    call("run", *BASE, "-o", "rounds=0")
    return call


def _assert_refused(result: tuple[int, str, int], label: str) -> None:
    code, err, peak = result
    assert "Traceback" not in err, (label, err)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (label, code, err)
    assert peak < CAP, (label, peak)


def test_at_least_50_malformed_configs_are_refused(in_process, tmp_path):
    assert len(CONFIGS) >= 50
    for overrides in CONFIGS:
        args = [a for o in overrides for a in ("-o", o)]
        _assert_refused(in_process("run", *BASE, *args, "--out", str(tmp_path / "r")),
                        str(overrides))


def test_malformed_yaml_files_are_refused(in_process, tmp_path):
    texts = ["rounds: 2\nrounds: 3\n", "train:\n  lr: 1\n  lr: 2\n", "- a\n- b\n", "a: [\n",
             "rounds: !!python/object:os.system ls\n", "train: 3\n", "seed: .inf\n"]
    for k, text in enumerate(texts):
        path = tmp_path / f"c{k}.yaml"
        path.write_text(text)
        _assert_refused(in_process("run", str(path)), text)


# ---------------------------------------------------------------- malformed .npz files

N = 30


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _valid() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"x_a": rng.normal(size=(N, 4)), "x_b": rng.normal(size=(N, 2, 3)),
            "y": np.arange(N) % 3}


def _header(shape: tuple, dtype: str = "<f8") -> bytes:
    """A .npy header that declares ``shape`` (the data after it is short)."""
    text = f"{{'descr': '{dtype}', 'fortran_order': False, 'shape': {shape}, }}"
    text += " " * (118 - len(text)) + "\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode()


def _array_cases() -> list[tuple[str, dict]]:
    v = _valid()
    return [
        ("label 1e9", {**v, "y": np.r_[np.arange(N - 1) % 3, 10**9]}),
        ("negative label", {**v, "y": np.r_[np.arange(N - 1) % 3, -1]}),
        ("float labels", {**v, "y": np.arange(N) / 2}),
        ("2-D labels", {**v, "y": np.zeros((N, 2), int)}),
        ("empty labels", {**v, "y": np.zeros(0, int)}),
        ("no labels", {"x_a": v["x_a"]}),
        ("no modality", {"y": v["y"]}),
        ("rows mismatch", {**v, "x_a": v["x_a"][:-1]}),
        ("nan feature", {**v, "x_a": np.full((N, 4), np.nan)}),
        ("inf feature", {**v, "x_b": np.full((N, 2, 3), np.inf)}),
        ("float32 overflow", {**v, "x_a": np.full((N, 4), 1e300)}),
        ("string features", {**v, "x_a": np.array([["a"] * 4] * N)}),
        ("complex features", {**v, "x_a": np.zeros((N, 4), complex)}),
        ("unknown array", {**v, "z": np.zeros(N)}),
        ("bad modality name", {**v, "x_a+b": np.zeros(N)}),
        ("reserved name", {**v, "x_ratio": np.zeros(N)}),
        ("confusable names", {**v, "x_A": np.zeros(N)}),
        ("class gap", {**v, "y": np.arange(N) % 3 * 2}),
        ("split values", {**v, "split": np.array(["train", "dev"] * (N // 2))}),
        ("split all train", {**v, "split": np.array(["train"] * N)}),
        ("negative agent", {**v, "agent": -np.ones(N, int)}),
        ("scalar feature", {**v, "x_a": np.float64(3)}),
        ("one sample per class", {**v, "y": np.arange(N)}),
    ]


def _raw_cases() -> list[tuple[str, dict[str, bytes] | bytes]]:
    v = {k: _npy(a) for k, a in _valid().items()}
    return [
        ("not a zip", b"hello, I am not an archive"),
        ("empty file", b""),
        ("truncated zip", "TRUNCATE"),
        ("declared shape 1e12", {**v, "x_a.npy": _header((10**12,)) + b"\0" * 64}),
        ("declared shape 2-D huge", {**v, "x_a.npy": _header((N, 10**9)) + b"\0" * 64}),
        ("garbage header", {**v, "x_a.npy": b"\x93NUMPY garbage"}),
        ("bad npy version", {**v, "x_a.npy": b"\x93NUMPY\x09\x00" + b"\0" * 20}),
        ("object dtype", {**v, "x_a.npy": _header((N,), "|O") + b"\0" * 64}),
        ("text member", {**v, "notes.txt": b"hi"}),
        ("deflate bomb", "BOMB"),
    ]


def _write(tmp_path: Path, name: str, spec) -> Path:
    path = tmp_path / f"{abs(hash(name))}.npz"
    if isinstance(spec, dict) and all(isinstance(a, np.ndarray | np.generic) for a in
                                      spec.values()):
        np.savez(path, **spec)
    elif isinstance(spec, dict):
        with zipfile.ZipFile(path, "w") as archive:
            for member, data in spec.items():
                archive.writestr(member, data)
    elif spec == "TRUNCATE":
        np.savez(path, **_valid())
        path.write_bytes(path.read_bytes()[:-30])
    elif spec == "BOMB":  # 100 MiB of zeros in ~100 KiB: more than FREE / 4 unpacked
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("y.npy", _npy(np.arange(N) % 3))
            with archive.open("x_a.npy", "w", force_zip64=True) as member:
                member.write(_header((N, 100 * 2**20 // 8 // N)))
                chunk = bytes(2**20)
                for _ in range(100):
                    member.write(chunk)
    else:
        path.write_bytes(spec)
    return path


NPZ_CASES = _array_cases() + _raw_cases()


def test_at_least_30_malformed_npz_files_are_refused(in_process, tmp_path):
    assert len(NPZ_CASES) >= 30
    for name, spec in NPZ_CASES:
        path = _write(tmp_path, name, spec)
        _assert_refused(in_process("data", "describe", "--data", f"npz:{path}"), name)


def test_unreadable_npz_says_permission_denied(in_process, tmp_path, monkeypatch):
    import parsefl.data.npz as npz

    path = _write(tmp_path, "ok", _valid())

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(npz, "open", denied, raising=False)
    code, err, _ = in_process("data", "describe", "--data", f"npz:{path}")
    assert code == 2 and "permission denied" in err and "zip" not in err


def test_a_few_through_the_console_script(tmp_path):
    script = Path(sys.executable).parent / "parsefl"
    bomb = _write(tmp_path, "shape", dict(_raw_cases())["declared shape 1e12"])
    for args in (["run", "-o", "rounds=true"], ["data", "describe", "--data", f"npz:{bomb}"]):
        proc = subprocess.run([str(script), *args], capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
