"""What an interrupted command leaves behind, said in one line (the CLI exits 130 with it)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from parsefl.errors import Interrupted


def run_interrupted(out_dir: Path) -> Interrupted:
    """A simulator run stopped early: its config and the metrics of the evaluated rounds stay;
    checkpoints are written only at the end."""
    rounds = _last_evaluated_round(out_dir / "metrics.csv")
    kept = (f"metrics.csv up to round {rounds}" if rounds else "no evaluated round yet")
    return Interrupted(f"interrupted: kept {out_dir} (config.yaml, {kept}; results.json says "
                       "stopped_by: interrupted; the checkpoints in state/, if any, continue "
                       "with --resume)")


def sweep_interrupted(out: Path, run_ids: Sequence[str]) -> Interrupted:
    """A compare/sweep stopped early: finished runs stay and are reused by the same command."""
    done = sum(_finished(out / "runs" / rid / "results.json") for rid in run_ids)
    return Interrupted(f"interrupted: kept {done} of {len(run_ids)} finished runs in "
                       f"{out / 'runs'}; the same command resumes (finished runs are reused)")


def launch_interrupted(out: Path) -> Interrupted:
    """A launch stopped early: the workers' last complete checkpoint is what --resume uses."""
    rounds = sorted(p.name for p in (out / "state").glob("round_*")) if out.is_dir() else []
    if not rounds:
        return Interrupted(f"interrupted: no checkpoint was written yet in {out / 'state'}")
    return Interrupted(f"interrupted: kept the last checkpoint {out / 'state' / rounds[-1]}; "
                       f"continue with --resume --out {out}")


def _last_evaluated_round(path: Path) -> int | None:
    if not path.is_file():
        return None
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return int(rows[-1]["round"]) if rows else None


def _finished(path: Path) -> bool:
    import json

    from parsefl.experiments.run.divergence import is_interrupted

    return path.is_file() and not is_interrupted(json.loads(path.read_text()))
