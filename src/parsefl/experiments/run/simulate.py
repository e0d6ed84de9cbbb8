"""Run one experiment from a config: build, drive the rounds (evaluation, metrics, checkpoints
and progress as hooks), write the run folder; or resume one from its last checkpoint."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from parsefl.config import RunConfig, to_yaml
from parsefl.experiments.run.build import Experiment, Subsample, build_experiment
from parsefl.experiments.run.checkpoint import complete_rounds, fingerprint, round_folder
from parsefl.experiments.run.divergence import interrupted_results, stop_if_diverged
from parsefl.experiments.run.driver import RoundEnd, progress, run_rounds
from parsefl.experiments.run.results import (
    merged_results,
    metrics_row,
    metrics_rows,
    publish_results,
    round_loss,
    save_checkpoints,
)
from parsefl.experiments.run.rundir import atomic_write, write_csv
from parsefl.experiments.run.session import RunSession
from parsefl.model import SlicedModel
from parsefl.runtime import Evaluation, RoundStats, evaluate

ProgressFn = Callable[[RoundStats, Evaluation | None], None]
MARKER = "run.json"  # the simulator's checkpoint marker (distributed ranks write rank_K.json)


def run_experiment(
    cfg: RunConfig, out_dir: Path, on_round: ProgressFn | None = None, resume: bool = False,
    shadow: Subsample | None = None,
) -> dict[str, Any]:
    """Run ``cfg`` to completion, writing config.yaml, metrics.csv, results.json, the final
    per-agent checkpoints and, every ``runtime.checkpoint_every`` rounds, the resume state into
    ``out_dir``; returns the results dict. With ``resume``, continue from the latest complete
    checkpoint in ``out_dir`` (from round 0 when there is none): the results equal those of a
    run that was never interrupted (``rounds`` may be raised; the rest of the config may not
    change). The lifecycle is the one every runtime uses (:class:`RunSession`). ``shadow``: a
    shadow run of the membership audit (:class:`Subsample`)."""
    exp = build_experiment(cfg, shadow=shadow)
    loop = exp.loop
    # A resume must find the noise it was calibrated with (for the rounds it was planned for).
    noise = {} if exp.privacy is None else {"privacy_noise": [
        exp.privacy.agents[i].noise for i in sorted(exp.privacy.agents)]}
    session = RunSession(cfg, exp, loop, exp.agents, out_dir, MARKER, meta=lambda: noise)
    first = session.restore(max(complete_rounds(out_dir, MARKER), default=0)) if resume else 0
    out_dir.mkdir(parents=True, exist_ok=True)  # once it can start: a refusal leaves no folder
    atomic_write(out_dir / "config.yaml", to_yaml(cfg))  # after restore: it may refuse cfg

    def diverged(end: RoundEnd) -> None:  # first: a diverged round is never recorded
        trained = [a for a in exp.agents if a.id in loop.online]  # offline: did not train
        stop_if_diverged(cfg, trained, end.stats, out_dir)

    # metrics.csv grows with every evaluation (an interrupted run keeps it), row by row as
    # merged_results writes it whole at the end (each row once: no rebuild per evaluation)
    rows, _, _ = metrics_rows(cfg.model_copy(update={"rounds": first}), [session.history])
    cum = [sum(b for rec in session.history["rounds"] for _, _, b in rec["links"])]

    def evaluated(end: RoundEnd) -> None:
        cum[0] += sum(end.stats.link_bytes.values())
        if end.evaluation is not None:
            losses = {int(i): v for i, v in session.history["rounds"][-1]["losses"].items()}
            rows.append(metrics_row(replace(end.stats, loss=round_loss(losses)),
                                    end.evaluation, cum[0]))
            write_csv(out_dir / "metrics.csv", rows)

    def latest_only(done: int) -> None:  # only the latest checkpoint is ever resumed from
        for old in complete_rounds(out_dir, MARKER):
            if old != done:
                shutil.rmtree(round_folder(out_dir, old), ignore_errors=True)

    hooks = [diverged, *session.hooks(lambda: _evaluate(exp), cfg.runtime.checkpoint_every,
                                      latest_only), evaluated]
    try:
        run_rounds(loop, cfg.rounds, [*hooks, *([progress(on_round)] if on_round else [])],
                   first)
    except KeyboardInterrupt:  # results.json says so (the metrics so far stay in metrics.csv)
        publish_results(out_dir, interrupted_results(cfg, len(session.history["rounds"])),
                        fingerprint(cfg))
        raise
    save_checkpoints(exp.agents, out_dir / "checkpoints")
    results = merged_results(cfg, exp, {0: session.summary()}, out_dir, session.wall())
    results["ablations"] = {"slice_drop": slice_drop(exp)}
    publish_results(out_dir, results, fingerprint(cfg))
    return results


def _evaluate(exp: Experiment) -> Evaluation:
    return evaluate(exp.slots, exp.test_x, exp.test_y, exp.dataset.n_classes)


def slice_drop(exp: Experiment) -> dict[str, Any] | None:
    """Accuracy when one slice kind's logits are removed from the sum at inference (sliced
    models only): how much each of r, u and s carries, per group."""
    if not all(isinstance(slot.agent.blueprint.model, SlicedModel) for slot in exp.slots):
        return None
    out: dict[str, Any] = {}
    for kind in ("r", "u", "s"):
        ev = evaluate(exp.slots, exp.test_x, exp.test_y, exp.dataset.n_classes, drop=(kind,))
        out[kind] = {"accuracy": {"overall": ev.overall["accuracy"],
                                  "groups": {g: v["accuracy"] for g, v in ev.groups.items()}}}
    return out
