"""Terminal output of runs: a progress bar over rounds and the final per-group table."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

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


@contextmanager
def sweep_progress(console: Console, total: int) -> Iterator[Callable[..., None]]:
    """A callback for ``run_sweep``: one step per finished (or already present) run."""
    columns = (TextColumn("runs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[info]}"))
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("runs", total=total, info="")

        def on_done(spec: Any, result: dict[str, Any], cached: bool) -> None:
            acc = result["final"]["accuracy"]["overall"]
            note = " (already done)" if cached else ""
            progress.update(task, advance=1,
                            info=f"{spec.method} seed {spec.seed}: acc {acc:.3f}{note}")

        yield on_done


def print_summary(console: Console, summary: dict[str, Any]) -> None:
    """Overall accuracy per method (mean ± std over seeds) for each grid point."""
    for point, methods in summary.items():
        table = Table(title=None if point == "-" else point)
        for col in ("method", "accuracy", "macro-F1", "bytes/link/round"):
            table.add_column(col, justify="left" if col == "method" else "right")
        for name, s in methods.items():
            acc, f1 = s["accuracy"]["overall"], s["macro_f1"]["overall"]
            table.add_row(name, f"{acc['mean']:.4f} ± {acc['std']:.4f}",
                          f"{f1['mean']:.4f} ± {f1['std']:.4f}",
                          f"{s['bytes_per_link_per_round']:,.0f}")
        console.print(table)
