"""Hostile artifacts: every file a run leaves on disk is tampered with the ways a local actor
would (truncate, delete, append, flip, swap, scale, rename, forge, oversize), generated per
file like test_fuzz.py, and each must be refused in one line naming the file — or change no
number. Nothing the refused command would write is overwritten.

Two runs feed the cases: a simulator run with a checkpoint (``--resume``), and a signed
two-process launch (checkpoint parts, rank summaries, results.json; ``parsefl merge``)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from parsefl.config import load_config
from parsefl.errors import ConfigError
from parsefl.experiments.distributed.launcher import launch
from parsefl.experiments.distributed.merge import merge_run
from parsefl.experiments.run.checkpoint import fingerprint, verify_state
from parsefl.experiments.run.results import read_results
from parsefl.experiments.run.simulate import run_experiment
from parsefl.security import Identities
from parsefl.security.manifest import seal

BASE = ["data.name=synthetic_pid", "data.params={label: mixed, n_samples: 300}",
        "mix={m1: 2, m2: 1, m1+m2: 2}", "model.dim=12", "model.encoder.params.hidden=[16]",
        "device=cpu", "eval_every=1", "runtime.checkpoint_every=1", "runtime.threads=1",
        "diagnostics.gradient_cosine=false"]
ROUND = "state/round_000002"
Tamper = Callable[[Path], None]  # gets the run folder


# ---- generic tampering -------------------------------------------------------------------

def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _append(path: Path) -> None:
    with path.open("ab") as fh:
        fh.write(b"\0junk")


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) * 2 // 3] ^= 0x55
    path.write_bytes(bytes(data))


def _delete(path: Path) -> None:
    path.unlink()


EDITS = {"truncate": _truncate, "append": _append, "flip": _flip, "delete": _delete}


def _reseal(folder: Path, manifest: str, keep_signature: bool = False) -> None:
    """Rewrite ``manifest`` over the files as they are now: what someone who can write the
    folder but holds no key can do (``keep_signature``: copy the old signature over)."""
    old = json.loads((folder / manifest).read_text())
    seal(folder, manifest, [f for f in old["files"] if (folder / f).is_file()], old["meta"])
    if keep_signature and "sig" in old:
        new = json.loads((folder / manifest).read_text())
        new.update({k: old[k] for k in ("signer", "cert", "sig")})
        (folder / manifest).write_text(json.dumps(new))


def _edit_json(path: Path, change: Callable[[dict], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _edit_tensor(path: Path, change: Callable[[dict], None]) -> None:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as fh:
        meta = fh.metadata()
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path), metadata=meta)


def _first_param(tensors: dict) -> str:
    return next(k for k in sorted(tensors) if k.startswith("model.") and "weight" in k)


def _digests(run: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in (run / "results.json", run / "metrics.csv", run / "config.yaml")
            if p.is_file()}


# ---- the simulator's checkpoint: --resume ---------------------------------------------------

def _state_cases() -> dict[str, Tamper]:
    files = ["agent_0000.safetensors", "agent_0003.safetensors", "rng_run.safetensors",
             "run.json", "manifest_run.json"]
    cases: dict[str, Tamper] = {
        f"{how} {name}": (lambda run, e=edit, n=name: e(run / ROUND / n))
        for name in files for how, edit in EDITS.items()}

    def swap(run: Path) -> None:
        a, b = run / ROUND / "agent_0000.safetensors", run / ROUND / "agent_0001.safetensors"
        a.rename(run / "tmp")
        b.rename(a)
        (run / "tmp").rename(b)

    def scale(run: Path) -> None:
        def times(t: dict) -> None:
            t[_first_param(t)] *= 1e6
        _edit_tensor(run / ROUND / "agent_0002.safetensors", times)

    def earlier(run: Path) -> None:  # the round folder renamed: 1 round would be run twice
        (run / ROUND).rename(run / "state" / "round_000001")

    def history_bytes(t: dict) -> None:
        t["history"]["rounds"][0]["links"][0][2] = 1e30

    cases |= {
        "swap two agents' files": swap,
        "scale a tensor by 1e6": scale,
        "rename the round folder to an earlier round": earlier,
        "bytes of 1e30 in the history": lambda run: _edit_json(run / ROUND / "run.json",
                                                               history_bytes),
        "manifest of another round": lambda run: _edit_json(
            run / ROUND / "manifest_run.json", lambda m: m["meta"].update(round=1)),
        "manifest listing no files": lambda run: _edit_json(
            run / ROUND / "manifest_run.json", lambda m: m.update(files={})),
        "manifest a symlink": lambda run: (
            (run / ROUND / "manifest_run.json").rename(run / "m.json"),
            (run / ROUND / "manifest_run.json").symlink_to(run / "m.json")),
        "manifest of 20 MB": lambda run: (run / ROUND / "manifest_run.json").write_bytes(
            b" " * (20 << 20)),
        "manifest nested 10,000 deep": lambda run: (run / ROUND / "manifest_run.json")
        .write_text("[" * 10_000 + "]" * 10_000),
        "file entry with a path": lambda run: _edit_json(
            run / ROUND / "manifest_run.json",
            lambda m: m["files"].update({"../config.yaml": m["files"]["run.json"]})),
    }
    # Forged: tampered and the manifest rewritten (no keys on a simulator run): the bounded
    # readers are what is left, and each of these is out of bounds.
    forged: dict[str, Tamper] = {
        "a NaN tensor": lambda run: _edit_tensor(
            run / ROUND / "agent_0001.safetensors",
            lambda t: t[_first_param(t)].fill_(float("nan"))),
        "a tensor of another shape": lambda run: _edit_tensor(
            run / ROUND / "agent_0001.safetensors",
            lambda t: t.update({_first_param(t): torch.zeros(3, 3)})),
        "a tensor of 1e8 elements claimed": lambda run: _edit_tensor(
            run / ROUND / "agent_0001.safetensors",
            lambda t: t.update({_first_param(t): torch.zeros(10_000, 10_000,
                                                                dtype=torch.uint8)})),
        "a sample order that is no permutation": lambda run: _edit_tensor(
            run / ROUND / "agent_0001.safetensors",
            lambda t: t["stream.perm"].fill_(10**9) if len(t["stream.perm"]) else
            t.update({"stream.perm": torch.full((5,), 10**9)})),
        "an unknown optimizer slot": lambda run: _edit_tensor(
            run / ROUND / "agent_0001.safetensors",
            lambda t: t.update({"optim.999.exp_avg": torch.zeros(2)})),
        "bytes of 1e30": lambda run: _edit_json(run / ROUND / "run.json", history_bytes),
        "a round index of 1e12": lambda run: _edit_json(
            run / ROUND / "run.json",
            lambda m: m["history"]["rounds"][1].update(round=10**12)),
        "an accuracy of 5": lambda run: _edit_json(
            run / ROUND / "run.json",
            lambda m: next(iter(m["history"]["evals"].values()))[0].update(accuracy=5.0)),
        "an agent that does not exist": lambda run: _edit_json(
            run / ROUND / "run.json",
            lambda m: next(iter(m["history"]["evals"].values()))[0].update(id=4242)),
        "a link to agent 1e6": lambda run: _edit_json(
            run / ROUND / "run.json",
            lambda m: m["history"]["rounds"][0]["links"].append([0, 10**6, 5])),
    }
    for name, change in forged.items():
        def both(run: Path, c: Tamper = change) -> None:
            c(run)
            _reseal(run / ROUND, "manifest_run.json")
        cases[f"forged: {name}"] = both
    return cases


STATE_CASES = _state_cases()


@pytest.fixture(scope="module")
def checkpointed(tmp_path_factory):
    run = tmp_path_factory.mktemp("sim") / "run"
    run_experiment(load_config(None, [*BASE, "rounds=2"]), run)
    more = load_config(None, [*BASE, "rounds=3"])
    whole = run_experiment(more, run.parent / "whole")
    return run, more, whole


@pytest.mark.parametrize("case", sorted(STATE_CASES))
def test_a_tampered_checkpoint_is_refused_in_one_line(checkpointed, tmp_path, case):
    src, more, _ = checkpointed
    run = tmp_path / "run"
    shutil.copytree(src, run, symlinks=True)
    STATE_CASES[case](run)
    before = _digests(run)
    with pytest.raises(ConfigError) as err:
        run_experiment(more, run, resume=True)
    text = str(err.value)
    assert text.startswith("--resume: ") and "\n" not in text and "state/round_00000" in text
    assert _digests(run) == before  # nothing overwritten


def test_an_untampered_checkpoint_with_a_stray_file_resumes_to_the_same_numbers(
        checkpointed, tmp_path):
    src, more, whole = checkpointed
    run = tmp_path / "run"
    shutil.copytree(src, run)
    (run / ROUND / "notes.txt").write_text("a file the manifest does not list is never read")
    resumed = run_experiment(more, run, resume=True)
    assert {k: v for k, v in resumed.items() if k != "wall_time_s"} == \
        {k: v for k, v in whole.items() if k != "wall_time_s"}


def test_a_planted_file_the_manifest_does_not_list_is_never_read(tmp_path):
    """A reference-backend checkpoint has no executor state: a file planted under that name
    (garbage here) must not be loaded; the resume equals the run that never stopped."""
    ref = [*BASE, "runtime.backend=reference"]
    run = tmp_path / "run"
    run_experiment(load_config(None, [*ref, "rounds=2"]), run)
    (run / ROUND / "executor_run.safetensors").write_bytes(b"\xff" * 64)
    more = load_config(None, [*ref, "rounds=3"])
    resumed = run_experiment(more, run, resume=True)
    whole = run_experiment(more, tmp_path / "whole")
    assert {k: v for k, v in resumed.items() if k != "wall_time_s"} == \
        {k: v for k, v in whole.items() if k != "wall_time_s"}


def test_the_case_count():  # the tally the closing note reports
    assert len(STATE_CASES) == 40


# ---- a signed launch: summaries, checkpoint parts, results.json ----------------------------

@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    run = tmp_path_factory.mktemp("launch") / "run"
    results = launch(None, [*BASE, "rounds=2", "runtime.auth=true"], nproc=2, out_dir=run,
                     wall_timeout_s=120)
    assert results["distributed"]["authenticated"] is True
    return run, results


SUMMARY = "logs/summary_rank_1.json"
SEALS = "logs/manifest_summary_rank_1.json"


def _summary_cases() -> dict[str, tuple[Tamper, str]]:
    def lift(s: dict) -> None:  # a better number for every agent of rank 1
        for rows in s["history"]["evals"].values():
            for row in rows:
                row["accuracy"] = 0.99

    def extra(run: Path) -> None:  # a third rank, copied from rank 1: agents that never were
        for name in ("summary_rank_1.json", "manifest_summary_rank_1.json"):
            shutil.copy(run / "logs" / name, run / "logs" / name.replace("1", "2"))

    def edit(change: Callable[[dict], None], how: str = "") -> Tamper:
        def tamper(run: Path) -> None:
            _edit_json(run / SUMMARY, change)
            if how:
                _reseal(run / "logs", "manifest_summary_rank_1.json", how == "keep")
        return tamper

    return {
        "accuracies lifted": (edit(lift), "SHA-256 differs|bytes"),
        "accuracies lifted, manifest rewritten": (edit(lift, "new"), "not signed"),
        "accuracies lifted, old signature kept": (edit(lift, "keep"), "does not verify"),
        "a summary for a rank that never ran": (extra, "not one of the run's 2 ranks"),
        "summary deleted, manifest kept": (lambda run: (run / SUMMARY).unlink(),
                                           "missing or not a regular file"),
        "manifest deleted": (lambda run: (run / SEALS).unlink(), "missing or not a regular"),
        "manifest of another rank": (lambda run: shutil.copy(
            run / "logs/manifest_summary_rank_0.json", run / SEALS), "written for rank 0"),
    }


SUMMARY_CASES = _summary_cases()


@pytest.mark.parametrize("case", sorted(SUMMARY_CASES))
def test_a_tampered_summary_is_refused_by_merge(signed, tmp_path, case):
    src, _ = signed
    run = tmp_path / "run"
    shutil.copytree(src, run)
    tamper, expect = SUMMARY_CASES[case]
    tamper(run)
    before = _digests(run)
    with pytest.raises(ConfigError, match=f"RUN_DIR: .*({expect})") as err:
        merge_run(run)
    assert "\n" not in str(err.value)
    assert _digests(run) == before


def _unsigned_cases() -> dict[str, Callable[[dict], None]]:
    def evals(s: dict) -> list:
        return next(iter(s["history"]["evals"].values()))

    return {
        "accuracy 5": lambda s: evals(s)[0].update(accuracy=5.0),
        "accuracy NaN": lambda s: evals(s)[0].update(accuracy=float("nan")),
        "a round index of 1e9": lambda s: s["history"]["rounds"][0].update(round=10**9),
        "a world size of 1e9": lambda s: s.update(world_size=10**9),
        "agents that never existed": lambda s: s.update(agents=[*s["agents"], 77]),
        "history not a record": lambda s: s.update(history=[1, 2, 3]),
        "a lost list of a million entries": lambda s: s.update(
            lost={str(k): "x" for k in range(10**6)}),
        "wire bytes as text": lambda s: s["wire"].update(payload_bytes="lots"),
        "a 3 MB group name": lambda s: evals(s)[0].update(group="g" * (3 << 20)),
        "rounds twice": lambda s: s["history"]["rounds"].append(s["history"]["rounds"][0]),
    }


UNSIGNED_CASES = _unsigned_cases()


@pytest.mark.parametrize("case", sorted(UNSIGNED_CASES))
def test_an_out_of_bounds_summary_is_refused_even_with_its_manifest_rewritten(
        signed, tmp_path, case):
    src, _ = signed
    run = tmp_path / "run"
    shutil.copytree(src, run)
    shutil.rmtree(run / "keys")  # merged without keys: hashes and bounds are what is left
    _edit_json(run / SUMMARY, UNSIGNED_CASES[case])
    _reseal(run / "logs", "manifest_summary_rank_1.json")
    with pytest.raises(ConfigError, match=r"RUN_DIR: .*summary_rank_1\.json") as err:
        merge_run(run)
    assert "\n" not in str(err.value)


def test_merge_without_keys_is_not_authenticated_and_with_them_is(signed, tmp_path):
    src, results = signed
    run = tmp_path / "run"
    shutil.copytree(src, run)
    keys = run.parent / "keys"
    (run / "keys").rename(keys)
    merged = merge_run(run)
    assert merged["distributed"]["authenticated"] is False  # nothing verified a signature
    assert merged["final"] == results["final"]
    merged = merge_run(run, keys)
    assert merged["distributed"]["authenticated"] is True
    assert merged["distributed"]["verified_with"] == keys.as_posix()


def test_a_signed_checkpoint_part_resealed_without_the_key_is_refused(signed, tmp_path):
    src, _ = signed
    run = tmp_path / "run"
    shutil.copytree(src, run)
    cfg = load_config(run / "config.yaml")
    folder = run / ROUND
    ids = Identities(run / "keys")
    signed_text = (folder / "manifest_rank_0.json").read_text()
    agents = json.loads(signed_text)["meta"]["agents"]
    verify_state(folder, "rank_0.json", fingerprint(cfg), 2, agents, ids)  # as written: fine
    _edit_tensor(folder / f"agent_{agents[0]:04d}.safetensors",
                 lambda t: t[_first_param(t)].mul_(1e6))
    for keep, expect in ((False, "not signed"), (True, "does not verify")):
        (folder / "manifest_rank_0.json").write_text(signed_text)
        _reseal(folder, "manifest_rank_0.json", keep)
        with pytest.raises(ConfigError, match=f"--resume: .*manifest_rank_0.json.*{expect}"):
            verify_state(folder, "rank_0.json", fingerprint(cfg), 2, agents, ids)


def test_edited_results_are_refused_by_readers_and_merge_rebuilds_them(signed, tmp_path):
    src, results = signed
    run = tmp_path / "run"
    shutil.copytree(src, run)
    _edit_json(run / "results.json", lambda r: r["final"]["accuracy"].update(overall=0.99))
    with pytest.raises(ConfigError, match="manifest_results.json: results.json"):
        read_results(run, "RUN_DIR")
    assert merge_run(run)["final"] == results["final"]  # rebuilt from the verified summaries
    assert read_results(run, "RUN_DIR")["final"] == results["final"]


def test_merge_through_the_console_script_refuses_in_one_line(signed, tmp_path):
    src, _ = signed
    run = tmp_path / "run"
    shutil.copytree(src, run)
    SUMMARY_CASES["accuracies lifted, manifest rewritten"][0](run)
    script = Path(sys.executable).parent / "parsefl"
    done = subprocess.run([str(script) if script.is_file() else "parsefl", "merge", str(run)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "not signed" in done.stderr
