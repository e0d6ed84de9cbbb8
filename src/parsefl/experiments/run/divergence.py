"""A run whose training loss stops being finite is over: it is stopped and recorded as
``diverged`` in results.json (so that compare/sweep can flag it), never reported as a result."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from parsefl.errors import ParseflError


class Diverged(ParseflError):
    """Training diverged (non-finite loss). Exit code 1: the config was valid, the run failed."""

    exit_code = 1


def stop_if_diverged(cfg: Any, agents: Any, stats: Any, out_dir: Path) -> None:
    """After round ``stats.round``: if an agent that trained got a non-finite loss (or the
    round's mean is non-finite), write a ``diverged`` results.json and raise Diverged.

    Agents with no batch to train on report NaN by design; they are not divergence.
    """
    bad = [a.id for a in agents if _trained(a) and not math.isfinite(a.last_loss)]
    if not bad and (math.isfinite(stats.loss) or not any(_trained(a) for a in agents)):
        return
    from parsefl.experiments.run.checkpoint import fingerprint
    from parsefl.experiments.run.results import publish_results

    results = diverged_results(cfg, stats.round + 1, stats.loss, bad)
    publish_results(out_dir, results, fingerprint(cfg))
    raise Diverged(f"training diverged at round {stats.round + 1} (train loss {stats.loss}, "
                   f"agents {bad[:8]}); marked diverged in {out_dir / 'results.json'}; "
                   f"try a smaller train.lr (now {cfg.train.lr})")


def diverged_results(cfg: Any, round_: int, loss: float, agents: list[int]) -> dict[str, Any]:
    return {"method": cfg.method, "dataset": cfg.data.name, "seed": cfg.seed,
            "diverged": True, "stopped_by": "diverged", "complete": False,
            "diverged_round": round_, "train_loss": str(loss),
            "diverged_agents": agents, "rounds_completed": round_ - 1}


def interrupted_results(cfg: Any, rounds_completed: int) -> dict[str, Any]:
    """What results.json says of a run stopped by the user (Ctrl-C): who it was and how far it
    got, no numbers (a partial result is never presented as a whole); ``--resume`` goes on."""
    return {"method": cfg.method, "dataset": cfg.data.name, "seed": cfg.seed,
            "stopped_by": "interrupted", "complete": False,
            "rounds_completed": rounds_completed}


def is_diverged(results: Any) -> bool:
    return bool(isinstance(results, dict) and results.get("diverged"))


def is_interrupted(results: Any) -> bool:
    return bool(isinstance(results, dict) and results.get("stopped_by") == "interrupted")


def _trained(agent: Any) -> bool:
    return any(len(idx) > 1 for _, idx in getattr(agent, "views", []))
