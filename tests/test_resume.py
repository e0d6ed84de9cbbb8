"""``parsefl run --resume``: a simulator run stopped after round k and resumed equals the run
that never stopped, bit for bit (results.json but its wall time, metrics.csv), for the
reference and the vectorized backend; and the one driver's hooks run in order."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import torch

from parsefl.config import load_config
from parsefl.errors import ConfigError
from parsefl.experiments.run.driver import Checkpoint, Evaluate, RoundEnd, run_rounds
from parsefl.experiments.run.simulate import run_experiment
from parsefl.runtime import RoundStats

BASE = ["data.name=synthetic_pid", "data.params={label: mixed, n_samples: 400}",
        "mix={m1: 2, m2: 1, m1+m2: 2}", "model.dim=12", "model.encoder.params.hidden=[16]",
        "device=cpu", "rounds=7", "eval_every=3", "runtime.checkpoint_every=2",
        "runtime.threads=1"]
BACKENDS = {
    "reference": ["runtime.backend=reference"],
    # dropout draws from the global torch RNG (vmap randomness): the checkpoint restores it
    "vectorized": ["runtime.backend=vectorized", "train.local_steps=3",
                   "model.encoder.params.dropout=0.2"],
    # local epochs on unequal shards: unequal step counts, masked rows, per-agent Adam steps
    "vectorized_epochs": ["runtime.backend=vectorized", "partition.name=dirichlet",
                          "partition.alpha=0.5", "train.batch_size=16"],
}


def _run(cfg, out, *args, **kwargs) -> dict:
    # Dropout draws from torch's global RNG, which a run does not seed (a fresh process starts
    # from torch's fixed default): every run here starts from one state, as a fresh process.
    torch.manual_seed(1234)
    return run_experiment(cfg, out, *args, **kwargs)


class _Stop(Exception):
    pass


def _strip(results: dict) -> dict:
    return {k: v for k, v in results.items() if k != "wall_time_s"}


def _stop_after(k: int):
    def on_round(stats: RoundStats, ev) -> None:
        if stats.round == k:
            raise _Stop

    return on_round


@pytest.fixture(scope="module", params=sorted(BACKENDS))
def whole(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(request.param)
    overrides = [*BASE, *BACKENDS[request.param]]
    return overrides, tmp, _run(load_config(None, overrides), tmp / "whole")


def test_interrupted_then_resumed_equals_the_whole_run(whole):
    overrides, tmp, expected = whole
    cfg, out = load_config(None, overrides), tmp / "cut"
    with pytest.raises(_Stop):
        _run(cfg, out, _stop_after(4))  # rounds 0..4 done, checkpoint after 4
    assert sorted(p.name for p in (out / "state").iterdir()) == ["round_000004"]
    torch.manual_seed(99)  # whatever the process did since: the checkpoint restores the RNG
    resumed = run_experiment(cfg, out, resume=True)
    assert _strip(resumed) == _strip(expected)
    assert (out / "metrics.csv").read_text() == (tmp / "whole" / "metrics.csv").read_text()
    assert json.loads((out / "results.json").read_text()) == resumed


def test_a_shorter_run_extended_by_resume_equals_the_whole_run(whole):
    overrides, tmp, expected = whole
    out = tmp / "short"
    short = _run(load_config(None, [*overrides, "rounds=5"]), out)
    assert short["rounds_completed"] == 5  # evaluated at 3 and (final) 5
    resumed = run_experiment(load_config(None, overrides), out, resume=True)
    assert _strip(resumed) == _strip(expected)  # the round-5 row is not on the 7-round schedule
    assert (out / "metrics.csv").read_text() == (tmp / "whole" / "metrics.csv").read_text()


def test_the_run_used_the_backend_it_was_given(whole):
    """Read from what the run wrote: only the vectorized backend has state of its own (the
    stacked optimizers), saved beside the agents in every checkpoint as
    ``executor_run.safetensors``; a reference run's checkpoints have none."""
    overrides, tmp, _ = whole
    folders = sorted((tmp / "whole" / "state").glob("round_*"))
    assert folders and all((f / "run.json").is_file() for f in folders)
    stacked = "runtime.backend=vectorized" in overrides
    assert [(f / "executor_run.safetensors").is_file() for f in folders] == [stacked] * len(folders)


def test_resume_refuses_another_config(tmp_path):
    cfg = load_config(None, [*BASE, "rounds=2", "runtime.checkpoint_every=1"])
    run_experiment(cfg, tmp_path)
    other = load_config(None, [*BASE, "rounds=4", "train.lr=0.01"])
    with pytest.raises(ConfigError, match="--resume"):
        run_experiment(other, tmp_path, resume=True)
    assert "lr: 0.001" in (tmp_path / "config.yaml").read_text()  # the run's own config kept


@pytest.mark.parametrize("damage", [
    lambda meta: "{not json",
    lambda meta: "[" * 100 + "]" * 100,  # nested past the bound
    lambda meta: json.dumps([1, 2]),
    lambda meta: json.dumps({**meta, "phases": {"starts": [0, 5, 9]}}),
    lambda meta: json.dumps({**meta, "history": {"rounds": 3, "evals": {"x": []}}}),
    lambda meta: json.dumps({**meta, "validation": {"curves": "nope"}}),
])
def test_a_damaged_checkpoint_record_is_refused_in_one_line(tmp_path, damage):
    cfg = load_config(None, [*BASE, "rounds=2", "runtime.checkpoint_every=1"])
    run_experiment(cfg, tmp_path)
    marker = tmp_path / "state" / "round_000002" / "run.json"
    marker.write_text(damage(json.loads(marker.read_text())))
    more = load_config(None, [*BASE, "rounds=3", "runtime.checkpoint_every=1"])
    with pytest.raises(ConfigError, match="--resume") as err:
        run_experiment(more, tmp_path, resume=True)
    assert "\n" not in str(err.value) and "run.json" in str(err.value)


class _Loop:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def step(self, r: int) -> RoundStats:
        self.calls.append(f"step {r}")
        return RoundStats(r, 0.0, Counter())

    def sync(self) -> None:
        self.calls.append("sync")


def test_driver_runs_hooks_in_order_on_their_schedule():
    loop, seen = _Loop(), []
    hooks = [Evaluate(loop, 2, lambda: "ev"), Checkpoint(loop, 3, lambda d: seen.append(d)),
             lambda end: seen.append((end.round, end.evaluation, end.last))]
    run_rounds(loop, 5, hooks, start=1)
    assert loop.calls == ["step 1", "sync", "step 2", "sync", "step 3", "sync", "step 4",
                          "sync", "sync"]
    assert seen == [(1, "ev", False), 3, (2, None, False), (3, "ev", False), 5, (4, "ev", True)]
    assert RoundEnd(4, RoundStats(4, 0.0, Counter()), True).done == 5
