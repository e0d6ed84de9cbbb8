"""``parsefl compare`` and ``parsefl sweep``: run, then write the summary files."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from parsefl.config import PRESETS, apply_overrides, read_yaml
from parsefl.experiments.run.convergence import warn_unconverged
from parsefl.experiments.run.rundir import atomic_write, write_csv, write_json
from parsefl.experiments.sweeps.summary import diverged_note, markdown_report, summarize, tidy_rows
from parsefl.experiments.sweeps.sweep import RunSpec, Sweep, load_sweep, run_sweep

OnDone = Callable[[RunSpec, dict[str, Any], bool], None]


def compare_sweep(
    config: Path | None, methods: list[str], seeds: list[int], overrides: Iterable[str]
) -> Sweep:
    base = apply_overrides(read_yaml(config or PRESETS / "quickstart.yaml"), overrides)
    return Sweep(base, {}, methods, seeds)


def write_outputs(sweep: Sweep, results: dict[RunSpec, dict], out: Path) -> dict[str, Any]:
    """summary.json, summary.md and results.csv (tidy) in ``out``; returns the summary."""
    ordered = {s: results[s] for s in sweep.specs()}
    summary = summarize(ordered)
    command = "parsefl " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    if list(summary) == ["-"]:  # a compare: method -> summary, as documented
        write_json(out / "summary.json", summary["-"])
    else:
        write_json(out / "summary.json", summary)
    note = diverged_note(ordered)
    atomic_write(out / "summary.md", markdown_report(summary, command, resolved_header(sweep))
                 + (f"\n**{note}**\n" if note else ""))
    write_csv(out / "results.csv", tidy_rows(ordered))
    if note := warn_unconverged(ordered):  # a comparison of unconverged runs says so
        print(note, file=sys.stderr)
    return summary


def resolved_header(sweep: Sweep) -> str:
    """The resolved config of the first run, as summary.md states it: every run shares it but
    for its method, seed and grid keys."""
    from parsefl.config import to_yaml, validate
    from parsefl.experiments.sweeps.sweep import fingerprint

    cfg = validate(sweep.raw_config(sweep.specs()[0]))
    varied = ", ".join(["method", "seed", *sweep.grid])
    return (f"Resolved config of the first run (fingerprint "
            f"`{fingerprint(cfg.model_dump(mode='json'))}`); the runs differ only in {varied}:"
            f"\n\n```yaml\n{to_yaml(cfg)}```\n")


def run_and_summarize(sweep: Sweep, out: Path, jobs: int, on_done: OnDone | None = None,
                      overwrite: bool = False):
    # no mkdir: each run makes its folder once it can start, the outputs theirs (a refused
    # sweep leaves no empty folder)
    results = run_sweep(sweep, out, jobs, on_done, overwrite=overwrite)
    return write_outputs(sweep, results, out)


__all__ = ["compare_sweep", "load_sweep", "run_and_summarize"]
