"""One run lifecycle for every runtime: :class:`RunSession` records what each round produced,
checkpoints it with the agents, restores it, and hands over the record at the end. The
simulator is one session over every agent; each distributed worker is one over its rank's
agents. Both write the same record (:meth:`RunSession.record`), which
:func:`parsefl.experiments.distributed.merge.merged_results` turns into ``results.json`` and
``metrics.csv`` — from one record (the simulator) or one per rank (``parsefl launch``,
``parsefl merge``).

The record: ``history`` (per round: the round, the bytes per physical link, gradient cosines;
per evaluated round also each agent that trained's loss and each agent's evaluation row), the
validation curves, the phase starts, and whether the plateau rule ended the run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from parsefl.config import RunConfig
from parsefl.errors import ConfigError
from parsefl.experiments.run.build import Experiment
from parsefl.experiments.run.checkpoint import (
    fingerprint,
    load_state,
    round_folder,
    save_state,
    verify_state,
)
from parsefl.experiments.run.convergence import PlateauStop, Validate
from parsefl.experiments.run.driver import Checkpoint, Evaluate, Hook, RoundEnd
from parsefl.experiments.run.network_stop import NetworkStop, StopRule
from parsefl.experiments.run.record_schema import check_record
from parsefl.overlays.summary import plan_links
from parsefl.runtime import Agent, Evaluation
from parsefl.runtime.wire import WireError, loads_bounded
from parsefl.security.manifest import Signer

log = logging.getLogger(__name__)


def convergence_stop(cfg: RunConfig, loop: Any,
                     validate: Validate) -> list[PlateauStop | NetworkStop]:
    """The ``rounds: auto`` hook of ``train.stop_rule`` (none for a fixed number of rounds)."""
    if cfg.train.stop != "plateau":
        return []
    if validate.source != "validation":
        raise ConfigError("train.val_fraction", "train.stop: plateau needs a validation split "
                          "(train.val_fraction > 0) and a non-pooled method")
    # At least ten evaluations of a phase before it may end (two windows of the agents' rule).
    least = 10 * cfg.eval_every
    if cfg.train.stop_rule == "agents":
        return [PlateauStop(loop, validate, cfg.eval_every, min_rounds=least)]
    return [NetworkStop(loop, validate, StopRule.of(cfg.train), cfg.eval_every, least)]


class RunSession:
    """The lifecycle of one process's part of a run (see the module docstring).

    ``marker``: the checkpoint part this session writes (``run.json`` for the simulator,
    ``rank_K.json`` for rank K); ``meta``: what else its checkpoints hold and a restore must
    find equal (a worker's placement), read back by :meth:`restore` as ``self.restored``;
    ``signer``: with keys, who signs this part's checkpoint manifests (and a restore then
    accepts only a manifest signed by one of this part's agents)."""

    def __init__(self, cfg: RunConfig, exp: Experiment, loop: Any, agents: Sequence[Agent],
                 out: Path, marker: str,
                 meta: Callable[[], Mapping[str, Any]] = dict,
                 signer: Signer | None = None) -> None:
        self.cfg, self.loop, self.agents = cfg, loop, list(agents)
        self.out, self.marker, self.meta, self.signer = out, marker, meta, signer
        self.n_agents = len(exp.n_train)
        self.threads = exp.threads  # runtime.threads: auto, re-checked after rounds
        self.privacy = exp.privacy  # every agent's DP plan (privacy.stop_at_budget)
        self.validate = Validate(loop, self.agents, exp.val, cfg.eval_every)
        self.stop = convergence_stop(cfg, loop, self.validate)
        self.history: dict[str, Any] = {"rounds": [], "evals": {}}
        self.wall_s = 0.0  # spent in earlier, interrupted parts of the run
        self.started = time.perf_counter()
        self.restored: dict[str, Any] = {}

    def hooks(self, evaluate: Callable[[], Evaluation], checkpoint_every: int,
              on_checkpoint: Callable[[int], None] | None = None) -> list[Hook]:
        """Evaluation, validation (and the ``rounds: auto`` stop), the record, checkpoints."""
        def save(done: int) -> None:
            self.checkpoint(done)
            if on_checkpoint is not None:
                on_checkpoint(done)

        threads = [self.threads] if self.threads is not None else []
        return [*self.budget_stop(), Evaluate(self.loop, self.cfg.eval_every, evaluate),
                self.validate, *self.stop, self.record,
                Checkpoint(self.loop, checkpoint_every, save), *threads]

    def budget_stop(self) -> list[Hook]:
        """``privacy.stop_at_budget``: end the run after the last round every agent's budget
        covers (the plan is every agent's, so every process stops at the same round)."""
        plan = self.privacy
        if plan is None or plan.rounds >= plan.configured_rounds:
            return []

        def stop(end: RoundEnd) -> None:
            if end.done >= plan.rounds:
                end.last = True

        return [stop]

    @property
    def plateau(self) -> bool:
        """Whether the ``rounds: auto`` rule ended the run."""
        return any(s.stopped for s in self.stop)

    def wall(self) -> float:
        return self.wall_s + time.perf_counter() - self.started

    def record(self, end: RoundEnd) -> None:
        online = self.loop.online
        evaluated = end.evaluation is not None
        self.history["rounds"].append({
            "round": end.round,
            # per agent only where metrics.csv has a row (O(evaluations x agents), not rounds)
            "losses": {str(a.id): a.last_loss for a in self.agents if a.id in online}
            if evaluated else {},
            "links": [[u, v, b] for (u, v), b in sorted(end.stats.link_bytes.items())],
            "cosine": end.stats.gradient_cosine,
        })
        if evaluated:
            self.history["evals"][str(end.round)] = end.evaluation.agents

    def summary(self) -> dict[str, Any]:
        """This session's record (a worker adds its transport's view before publishing)."""
        return {"history": self.history, "validation": self.validate.to_json(),
                "phases": self.loop.strategy.phases.state(), "plateau": self.plateau,
                "rejected": self.loop.checks.counts,
                "overlay_links": plan_links(self.loop.plans), "wall_s": self.wall(),
                **({"privacy_steps": {str(a.id): a.privacy.steps for a in self.agents
                                      if a.privacy is not None}}
                   if self.privacy is not None else {}),
                # a screening aggregator's counts over this session's receivers
                **({"screened": self.loop.aggregator.report()}
                   if hasattr(self.loop.aggregator, "report") else {})}

    def checkpoint(self, done: int) -> None:
        """This session's part of ``state/round_<done>/`` (its marker written last)."""
        save_state(round_folder(self.out, done), self.agents, self.loop.executor, self.marker,
                   {"rounds_done": done, "fingerprint": fingerprint(self.cfg),
                    "history": self.history, "validation": self.validate.to_json(),
                    "phases": self.loop.strategy.phases.state(), "wall_s": self.wall(),
                    "aggregator": self.loop.aggregator.state(),
                    **self.meta()}, self.loop.checks, self.signer)

    def restore(self, done: int) -> int:
        """Continue after the checkpoint of round ``done`` (0: start afresh): the agents, the
        executor's state and the record as they were, and the schedules replayed; the
        config and this session's ``meta`` must be those it was written with."""
        if not done:
            unsealed = sorted((self.out / "state").glob(f"round_*/{self.marker}"))
            if unsealed:  # a record without its manifest: never silently run over
                raise ConfigError("--resume", f"{unsealed[-1]} has no manifest beside it (an "
                                  "interrupted or tampered checkpoint): nothing to resume "
                                  "from; run without --resume to start afresh")
            log.warning("no complete checkpoint in %s: starting from round 0", self.out)
            return 0
        folder = round_folder(self.out, done)
        ids = [a.id for a in self.agents]
        # Nothing of the part is read before its manifest (and signature) checked out.
        sealed = verify_state(folder, self.marker, fingerprint(self.cfg), done, ids,
                     self.signer.ids if self.signer is not None else None)
        meta = self._meta(folder)
        if not {"validation", "phases"} <= set(meta) or "evals" not in meta.get("history", {}):
            raise ConfigError("--resume", f"{folder} was written by an older parsefl (another "
                              "checkpoint schema); start the run afresh")
        check_record(meta, str(folder / self.marker), "--resume", agents=ids,
                     n_agents=self.n_agents, rounds=done, done=done)
        changed = [k for k, v in self.meta().items() if k in meta and meta[k] != v
                   and k != "wire"]
        if meta["fingerprint"] != fingerprint(self.cfg) or changed:
            raise ConfigError("--resume", f"{folder} was written with another config"
                              f"{' or ' + ', '.join(changed) if changed else ''}; only rounds, "
                              "eval_every, device and runtime may change")
        if done > self.cfg.rounds:
            raise ConfigError("rounds", f"the checkpoint in {folder} is past round "
                              f"{self.cfg.rounds}")
        self.loop.replay_schedules(done)  # what the agents held when saved (stacked groups)
        load_state(folder, self.agents, self.loop.executor, self.marker, sealed.files,
                   self.loop.checks, meta.get("rejected", {}))
        every = self.cfg.eval_every
        on_schedule = lambda r: r % every == 0 or r == self.cfg.rounds  # noqa: E731
        try:
            self.history = {"rounds": list(meta["history"]["rounds"]),
                            "evals": {r: rows for r, rows in meta["history"]["evals"].items()
                                      if on_schedule(int(r) + 1)}}
            self.validate.load(meta["validation"], on_schedule)
            self.loop.strategy.phases.load(meta["phases"])
            self.loop.aggregator.load(meta.get("aggregator", {}))  # trust (aggregation.robust)
            self.wall_s = float(meta.get("wall_s", 0.0))
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ConfigError("--resume", f"{folder / self.marker} is not a record this run "
                              f"can continue ({type(err).__name__}: {err})") from None
        self.restored = meta
        log.info("resumed from %s", folder)
        return done

    def _meta(self, folder: Path) -> dict[str, Any]:
        """This session's checkpoint record in ``folder`` (JSON, bounded in size and depth)."""
        try:
            meta = loads_bounded((folder / self.marker).read_bytes())
        except (OSError, WireError) as err:
            raise ConfigError("--resume", f"{folder / self.marker} cannot be read as a "
                              f"checkpoint record ({err})") from None
        if not isinstance(meta, dict) or "fingerprint" not in meta:
            raise ConfigError("--resume", f"{folder / self.marker} is not a checkpoint record")
        return meta
