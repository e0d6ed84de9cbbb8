"""Run one experiment from a config: build, drive the rounds (evaluation, metrics, checkpoints
and progress as hooks), write the run folder; or resume one from its last checkpoint."""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from parsefl.config import RunConfig, to_yaml
from parsefl.errors import ConfigError
from parsefl.experiments.build import Experiment, build_experiment
from parsefl.experiments.checkpoint import (
    complete_rounds,
    fingerprint,
    load_state,
    round_folder,
    save_state,
)
from parsefl.experiments.convergence import (
    PlateauStop,
    Validate,
    final_phase_start,
    stop_record,
)
from parsefl.experiments.divergence import stop_if_diverged
from parsefl.experiments.driver import Checkpoint, Evaluate, RoundEnd, progress, run_rounds
from parsefl.experiments.dynamics import dynamics_record
from parsefl.experiments.results import (
    metrics_row,
    results_dict,
    save_checkpoints,
    summarize_cosine,
)
from parsefl.experiments.rundir import atomic_write, write_csv, write_json
from parsefl.model import SlicedModel
from parsefl.overlays.summary import overlay_summary, plan_links
from parsefl.runtime import Evaluation, RoundStats, evaluate

ProgressFn = Callable[[RoundStats, Evaluation | None], None]
MARKER = "run.json"  # the simulator's checkpoint marker (distributed ranks write rank_K.json)
log = logging.getLogger(__name__)


class History:
    """What metrics.csv and results.json need from every round (bytes per link, gradient
    cosines, evaluation rows); a driver hook, saved with each checkpoint."""

    def __init__(self, out_dir: Path, validate: Validate | None = None) -> None:
        self.out_dir = out_dir
        self.validate = validate  # its curves are saved and restored with the history
        self.rows: list[dict[str, Any]] = []
        self.bytes_rounds: list[Counter] = []
        self.cosines: list[dict[str, float]] = []
        self.last: list[dict] | None = None  # the latest evaluation's per-agent rows
        self.wall_s = 0.0  # spent in earlier, interrupted parts of the run

    def __call__(self, end: RoundEnd) -> None:
        self.bytes_rounds.append(end.stats.link_bytes)
        self.cosines.append(end.stats.gradient_cosine)
        if end.evaluation is not None:
            self.last = end.evaluation.agents
            cum = sum(sum(c.values()) for c in self.bytes_rounds)
            self.rows.append(metrics_row(end.stats, end.evaluation, cum))
            write_csv(self.out_dir / "metrics.csv", self.rows)

    def to_json(self, wall_s: float) -> dict[str, Any]:
        return {"rows": self.rows, "cosines": self.cosines, "last": self.last,
                "links": [[[u, v, b] for (u, v), b in sorted(c.items())]
                          for c in self.bytes_rounds], "wall_s": wall_s,
                **({"validation": self.validate.to_json()} if self.validate else {})}

    def restore(self, data: dict[str, Any], cfg: RunConfig) -> None:
        """``data`` from :meth:`to_json`, minus a final-round evaluation row of a shorter run
        that the current schedule does not have."""
        self.rows = [row for row in data["rows"]
                     if row["round"] % cfg.eval_every == 0 or row["round"] == cfg.rounds]
        self.cosines, self.last, self.wall_s = data["cosines"], data["last"], data["wall_s"]
        self.bytes_rounds = [Counter({(u, v): b for u, v, b in links})
                             for links in data["links"]]
        write_csv(self.out_dir / "metrics.csv", self.rows)
        if self.validate and "validation" in data:
            self.validate.load(data["validation"],
                               lambda r: r % cfg.eval_every == 0 or r == cfg.rounds)


def run_experiment(
    cfg: RunConfig, out_dir: Path, on_round: ProgressFn | None = None, resume: bool = False
) -> dict[str, Any]:
    """Run ``cfg`` to completion, writing config.yaml, metrics.csv, results.json, the final
    per-agent checkpoints and, every ``runtime.checkpoint_every`` rounds, the resume state into
    ``out_dir``; returns the results dict. With ``resume``, continue from the latest complete
    checkpoint in ``out_dir`` (from round 0 when there is none): the results equal those of a
    run that was never interrupted (``rounds`` may be raised; the rest of the config may not
    change)."""
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    exp = build_experiment(cfg)
    validate = Validate(exp.loop, exp.agents, exp.val, cfg.eval_every)
    history = History(out_dir, validate)
    first = restore(out_dir, cfg, exp, history) if resume else 0
    atomic_write(out_dir / "config.yaml", to_yaml(cfg))  # after restore: it may refuse cfg
    loop = exp.loop

    def save(done: int) -> None:
        save_state(round_folder(out_dir, done), exp.agents, getattr(loop, "executor", None),
                   MARKER, {"rounds_done": done, "fingerprint": fingerprint(cfg),
                            "history": history.to_json(wall()),
                            "phases": loop.strategy.phases.state()},
                   getattr(loop, "checks", None))
        for old in complete_rounds(out_dir, MARKER):  # only the latest is ever resumed from
            if old != done:
                shutil.rmtree(round_folder(out_dir, old), ignore_errors=True)

    def wall() -> float:
        return history.wall_s + time.perf_counter() - started

    def diverged(end: RoundEnd) -> None:  # first: a diverged round is never recorded
        online = getattr(loop, "online", None)  # offline agents did not train this round
        trained = [a for a in exp.agents if online is None or a.id in online]
        stop_if_diverged(cfg, trained, end.stats, out_dir)

    stop = convergence_stop(cfg, loop, validate)
    hooks = [diverged, Evaluate(loop, cfg.eval_every, lambda: _evaluate(exp)), validate,
             *stop, history,
             Checkpoint(loop, cfg.runtime.checkpoint_every, save)]
    run_rounds(loop, cfg.rounds, [*hooks, *([progress(on_round)] if on_round else [])], first)
    if history.last is None:  # resumed at the final round: nothing ran
        loop.sync()
        history.last = _evaluate(exp).agents
    save_checkpoints(exp.agents, out_dir / "checkpoints")
    results = results_dict(cfg, exp, history.last, history.bytes_rounds, wall())
    results["diagnostics"] = {"gradient_cosine": summarize_cosine(history.cosines),
                              "overlay": overlay_summary(plan_links(getattr(loop, "plans", {})))}
    ran, phases = len(history.bytes_rounds), loop.strategy.phases
    results["convergence"] = validate.summary(ran, final_phase_start(phases, ran))
    results.update(stop_record(phases, ran, any(s.stopped for s in stop)))
    results["ablations"] = {"slice_drop": slice_drop(exp)}
    if (record := dynamics_record(cfg, exp.loop, len(exp.n_train))) is not None:
        results["dynamics"] = record
    write_json(out_dir / "results.json", results)
    return results


def convergence_stop(cfg: RunConfig, loop: Any, validate: Validate) -> list[PlateauStop]:
    """The ``rounds: auto`` hook (none for a fixed number of rounds)."""
    if cfg.train.stop != "plateau":
        return []
    if validate.source != "validation":
        raise ConfigError("train.val_fraction", "train.stop: plateau needs a validation split "
                          "(train.val_fraction > 0) and a non-pooled method")
    # At least two windows of evaluations before anything may stop.
    return [PlateauStop(loop, validate, cfg.eval_every, min_rounds=10 * cfg.eval_every)]


def restore(out_dir: Path, cfg: RunConfig, exp: Experiment, history: History) -> int:
    """Load the latest complete checkpoint of ``out_dir``; the round to continue from."""
    done = max(complete_rounds(out_dir, MARKER), default=0)
    if not done:
        log.warning("no checkpoint in %s: starting from round 0", out_dir)
        return 0
    folder = round_folder(out_dir, done)
    meta = json.loads((folder / MARKER).read_text())
    if meta["fingerprint"] != fingerprint(cfg):
        raise ConfigError("--resume", f"{folder} was written with another config; only "
                          "rounds, eval_every, device and runtime may change")
    if done > cfg.rounds:
        raise ConfigError("rounds", f"the checkpoint in {folder} is past round {cfg.rounds}")
    exp.loop.replay_schedules(done)  # what the agents held when saved (stacked groups)
    load_state(folder, exp.agents, getattr(exp.loop, "executor", None), MARKER,
               getattr(exp.loop, "checks", None))
    history.restore(meta["history"], cfg)
    if "phases" in meta:  # where rounds: auto ended a phase early
        exp.loop.strategy.phases.load(meta["phases"])
    if done < cfg.rounds:
        history.last = None  # the final evaluation is still to come
    return done


def _evaluate(exp: Experiment) -> Evaluation:
    return evaluate(exp.slots, exp.test_x, exp.test_y, exp.dataset.n_classes)


def slice_drop(exp: Experiment) -> dict[str, Any] | None:
    """Accuracy when one slice kind's logits are removed from the sum at inference (sliced
    models only): how much each of r, u and s carries, per group."""
    if not all(isinstance(slot.agent.model, SlicedModel) for slot in exp.slots):
        return None
    out: dict[str, Any] = {}
    for kind in ("r", "u", "s"):
        ev = evaluate(exp.slots, exp.test_x, exp.test_y, exp.dataset.n_classes, drop=(kind,))
        out[kind] = {"accuracy": {"overall": ev.overall["accuracy"],
                                  "groups": {g: v["accuracy"] for g, v in ev.groups.items()}}}
    return out
