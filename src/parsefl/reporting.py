"""Terminal output of runs: a progress bar over rounds and the final per-group table."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from parsefl.overlays.summary import overlay_line
from parsefl.runtime import Evaluation, RoundStats


@contextmanager
def progress_callback(
    console: Console, rounds: int
) -> Iterator[Callable[[RoundStats, Evaluation | None], None]]:
    """A callback for ``run_experiment`` that advances a progress bar and shows the latest
    loss and accuracy."""
    columns = (TextColumn("round"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[info]}"))
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("rounds", total=rounds, info="")
        state = {"acc": float("nan")}

        def on_round(stats: RoundStats, ev: Evaluation | None) -> None:
            if ev is not None:
                state["acc"] = ev.overall["accuracy"]
            # completed, not advance: a resumed run starts past round 0
            progress.update(task, completed=stats.round + 1,
                            info=f"loss {stats.loss:.3f}  acc {state['acc']:.3f}")

        yield on_round


class LaunchProgress:
    """``parsefl launch`` on the terminal: the run folder once the launcher has chosen it, then
    a bar over the rounds rank 0 reports (:func:`parsefl.experiments.distributed.launcher.
    launch`'s ``on_start`` and ``on_round``)."""

    def __init__(self, console: Console, progress: Progress, nproc: int) -> None:
        self.console, self.progress, self.nproc = console, progress, nproc
        self.out: Path | None = None
        self.task: Any = None

    def start(self, out: Path, cfg: Any) -> None:
        self.out = out
        self.console.print(f"[bold]{cfg.method}[/] on [bold]{cfg.data.name}[/], "
                           f"{cfg.topology.name} graph, {cfg.rounds} rounds, {self.nproc} "
                           f"processes -> {out}", soft_wrap=True)  # one line to copy
        self.task = self.progress.add_task("rounds", total=cfg.rounds)
        self.progress.start()

    def round(self, done: int) -> None:
        if self.task is not None:
            self.progress.update(self.task, completed=done)


@contextmanager
def launch_progress(console: Console, nproc: int) -> Iterator[LaunchProgress]:
    """A :class:`LaunchProgress` whose bar starts with the launch and stops after it."""
    columns = (TextColumn("round"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    progress = Progress(*columns, console=console)
    try:
        yield LaunchProgress(console, progress, nproc)
    finally:
        progress.stop()


def print_results(console: Console, results: dict[str, Any]) -> None:
    """The final table: accuracy and macro-F1 per group and overall, and the bytes sent."""
    table = Table(title=f"{results['method']} on {results['dataset']} "
                        f"(seed {results['seed']}, {results['rounds_completed']} rounds)")
    for col in ("group", "agents", "accuracy", "macro-F1"):
        table.add_column(col, justify="left" if col == "group" else "right")
    acc, f1 = results["final"]["accuracy"], results["final"]["macro_f1"]
    counts: dict[str, int] = {}
    for agent in results["agents"]:
        counts["+".join(agent["modalities"])] = counts.get("+".join(agent["modalities"]), 0) + 1
    for g in acc["groups"]:
        table.add_row(g, str(counts.get(g, "")), f"{acc['groups'][g]:.4f}",
                      f"{f1['groups'][g]:.4f}")
    table.add_row("[bold]overall[/]", str(len(results["agents"])),
                  f"[bold]{acc['overall']:.4f}[/]", f"[bold]{f1['overall']:.4f}[/]")
    console.print(table)
    comm = results["communication"]
    console.print(f"bytes sent: {comm['bytes_total']:,} in all; at most "
                  f"{comm['bytes_per_link_per_round_max']:,} on one link in one round; "
                  f"wall time {results['wall_time_s']:.1f} s")
    if overlay := results.get("diagnostics", {}).get("overlay"):
        console.print(overlay_line(overlay))


@contextmanager
def _steps(console: Console, label: str, total: int) -> Iterator[Callable[[str], None]]:
    """A progress bar of ``total`` steps; yields ``advance(info)``: one step done, ``info``
    shown beside the bar."""
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[info]}"))
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(label, total=total, info="")
        yield lambda info: progress.update(task, advance=1, info=info)


@contextmanager
def sweep_progress(console: Console, total: int) -> Iterator[Callable[..., None]]:
    """A callback for ``run_sweep``: one step per finished (or already present) run."""
    with _steps(console, "runs", total) as advance:

        def on_done(spec: Any, result: dict[str, Any], cached: bool) -> None:
            note = " (already done)" if cached else ""
            what = ("diverged" if result.get("diverged") else
                    f"acc {result['final']['accuracy']['overall']:.3f}")
            advance(f"{spec.method} seed {spec.seed}: {what}{note}")

        yield on_done


@contextmanager
def shadow_progress(console: Console, total: int) -> Iterator[Callable[[int, bool], None]]:
    """A callback for the audit's shadow runs (``parsefl audit --shadows``): one step each."""
    with _steps(console, "shadow runs", total) as advance:
        yield lambda k, reused: advance(f"shadow {k}" + (" (already done)" if reused else ""))


def print_summary(console: Console, summary: dict[str, Any]) -> None:
    """Per grid point, accuracy per group and overall per method (mean ± std over seeds; the
    mean alone for one seed), macro-F1 overall and bytes; the best non-ceiling value of each
    accuracy column in bold."""
    from parsefl.experiments.sweeps.summary import CEILING, best_methods, fmt_stat, group_columns

    for point, methods in summary.items():
        groups = group_columns(methods, "accuracy")
        best = best_methods(methods, "accuracy")
        table = Table(title="accuracy" + ("" if point == "-" else f" ({point})"))
        for col in ("method", *groups, "overall", "macro-F1", "bytes/link/round"):
            table.add_column(col, justify="left" if col == "method" else "right")
        for name, s in methods.items():
            acc = [*(s["accuracy"]["groups"].get(g) for g in groups), s["accuracy"]["overall"]]
            cells = [f"[bold]{fmt_stat(v, 4)}[/]" if best.get(col) == name and v else
                     fmt_stat(v, 4) for col, v in zip([*groups, "overall"], acc, strict=True)]
            label = f"{name} (ceiling)" if name in CEILING else name
            table.add_row(label, *cells, fmt_stat(s["macro_f1"]["overall"], 4),
                          f"{s['bytes_per_link_per_round']:,.0f}")
        console.print(table)
