"""What an interrupted command leaves behind, said in one line (the CLI exits 130 with it):
what was kept, the latest complete checkpoint, and the exact command that continues."""

from __future__ import annotations

import csv
import shlex
from collections.abc import Sequence
from pathlib import Path

from parsefl.errors import Interrupted
from parsefl.experiments.run.checkpoint import complete_rounds, round_folder


def resume_command(argv: Sequence[str], out: Path) -> str:
    """``argv`` (the command and the options that rebuild its config: a resume must be given
    the same config) with ``--resume --out OUT``, quoted for a POSIX shell."""
    return shlex.join([*argv, "--resume", "--out", str(out)])


def latest_checkpoint(out: Path, markers: Sequence[str]) -> Path | None:
    """The latest ``state/round_N/`` that every part (``markers``) completed, which is the one
    ``--resume`` continues from; None when there is none."""
    if not (out / "state").is_dir():
        return None
    done = set.intersection(*(set(complete_rounds(out, m)) for m in markers))
    return round_folder(out, max(done)) if done else None


def run_interrupted(out_dir: Path, argv: Sequence[str] = ("parsefl", "run"),
                    marker: str = "run.json") -> Interrupted:
    """A simulator run stopped early: its config, the metrics of the evaluated rounds and its
    latest complete checkpoint stay."""
    if not out_dir.is_dir():
        return Interrupted("interrupted before the run started: nothing was kept")
    rounds = _last_evaluated_round(out_dir / "metrics.csv")
    kept = f"metrics.csv up to round {rounds}" if rounds else "no evaluated round yet"
    return Interrupted(f"interrupted: kept {out_dir} (config.yaml, {kept}; results.json says "
                       f"stopped_by: interrupted); {_continue(out_dir, [marker], argv)}")


def launch_interrupted(out: Path, world: int, argv: Sequence[str] = ("parsefl", "launch")
                       ) -> Interrupted:
    """A launch stopped early: the last checkpoint every worker completed is what --resume
    uses (with the same number of processes)."""
    markers = [f"rank_{k}.json" for k in range(world)]
    return Interrupted(f"interrupted: kept {out}; {_continue(out, markers, argv)}")


def sweep_interrupted(out: Path, run_ids: Sequence[str], argv: Sequence[str] | None = None
                      ) -> Interrupted:
    """A compare/sweep stopped early: finished runs stay and are reused by the same command."""
    done = sum(_finished(out / "runs" / rid / "results.json") for rid in run_ids)
    again = f"`{shlex.join(argv)}`" if argv else "the same command"
    return Interrupted(f"interrupted: kept {done} of {len(run_ids)} finished runs in "
                       f"{out / 'runs'}; {again} resumes (finished runs are reused)")


def _continue(out: Path, markers: Sequence[str], argv: Sequence[str]) -> str:
    """Where a resume starts and the command that does it, or why there is none."""
    folder = latest_checkpoint(out, markers)
    if folder is None:
        return ("no complete checkpoint yet (one is written every runtime.checkpoint_every "
                "rounds): nothing to resume from")
    return (f"latest complete checkpoint {folder} (round {int(folder.name[6:])}); continue "
            f"with: {resume_command(argv, out)}")


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
