"""Figures of a sweep or compare folder: accuracy curves (mean ± std over seeds) per group and
method, bytes per link per round, the gradient-cosine "dilemma" figure, and the ablation bars
over grid points."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from parsefl.plots.frontier import plot_frontier
from parsefl.plots.load import RunData, SweepData, cosine_per_round, nanmean_rows, order_groups
from parsefl.plots.style import (
    band,
    finish,
    grouped_bars,
    label_width,
    method_colours,
    method_style,
    new_figure,
    round_axis,
    save,
    slug,
)

NAN_STAT = (float("nan"), 0.0)
# The dilemma figure's pair: the monolithic classifier shared by all vs PARSE's partial
# alignment. Among many methods they are drawn thick and on top, the others as thin context.
FOCUS = ("dsgd_task", "parse")


def plot_sweep(sweep: SweepData, out: Path, formats: Sequence[str]) -> list[Path]:
    """Per grid point an accuracy and a gradient-cosine figure (suffixed with the point when
    there are several), then the bytes bars, the accuracy-per-byte frontier (plots/frontier.py)
    and, for a grid, the ablation bars."""
    colours = method_colours(sweep.methods)
    points = sweep.points
    paths: list[Path] = []
    for k, point in enumerate(points):
        runs = [r for r in sweep.runs if r.point == point]
        suffix = "" if len(points) == 1 else f"-{k:02d}-{slug(point)}"
        paths += plot_sweep_accuracy(runs, point, colours, out / f"accuracy{suffix}", formats)
        paths += plot_sweep_cosine(runs, sweep.summary.get(point, {}), point, colours,
                                   out / f"gradient_cosine{suffix}", formats)
    paths += plot_sweep_bytes(sweep, colours, out / "bytes", formats)
    paths += plot_frontier(sweep.runs, out, formats)  # accuracy against cumulative bytes
    if len(sweep.summary) > 1:
        paths += plot_ablation(sweep, colours, out / "ablation", formats)
    return paths


def _title(point: str, what: str) -> str:
    return what if point == "-" else f"{what}\n{point}"


def _by_method(runs: Sequence[RunData], order: Sequence[str]) -> dict[str, list[RunData]]:
    """Runs per method, methods in ``order`` (the summary's), runs by seed."""
    out: dict[str, list[RunData]] = {m: [] for m in order}
    for run in sorted(runs, key=lambda r: r.seed):
        out.setdefault(run.method, []).append(run)
    return {m: rs for m, rs in out.items() if rs}


def _stack(runs: Sequence[RunData],
           series: Callable[[RunData], tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, ...]:
    """Align each run's (rounds, values) on the union of rounds: one row per run, NaN where
    a run lacks a round (an unfinished or shorter run)."""
    pairs = [series(r) for r in runs]
    rounds = np.unique(np.concatenate([x for x, _ in pairs])) if pairs else np.array([])
    stack = np.full((len(pairs), len(rounds)), np.nan)
    for k, (x, y) in enumerate(pairs):
        stack[k, np.searchsorted(rounds, x)] = y
    return rounds, stack


def _column(name: str) -> Callable[[RunData], tuple[np.ndarray, np.ndarray]]:
    def get(run: RunData) -> tuple[np.ndarray, np.ndarray]:
        rounds = run.metrics.get("round", np.array([]))
        return rounds, run.metrics.get(name, np.full(len(rounds), np.nan))
    return get


def _mean_cosine(run: RunData) -> tuple[np.ndarray, np.ndarray]:
    rounds, comps = cosine_per_round(run)
    if not comps:
        return np.array([]), np.array([])
    return rounds, nanmean_rows(np.vstack(list(comps.values())))


def plot_sweep_accuracy(runs: Sequence[RunData], point: str, colours: Mapping[str, Any],
                        stem: Path, formats: Sequence[str]) -> list[Path]:
    """sweep_accuracy_figure, saved; nothing when no run has metrics yet."""
    fig = sweep_accuracy_figure(runs, point, list(colours))
    return [] if fig is None else save(fig, stem, formats)


def sweep_accuracy_figure(runs: Sequence[RunData], point: str,
                          order: Sequence[str]) -> Figure | None:
    """One panel per scope (overall, then each group): per method (in ``order``) the mean
    test accuracy over seeds per evaluation round, with a ± std band when there are several
    seeds."""
    runs = [r for r in runs if "round" in r.metrics]
    if not runs:
        return None
    scopes = ["overall", *order_groups(g for r in runs for g in r.groups)]
    fig, axes = new_figure(len(scopes), width=6.4, height=4.2, max_cols=2)  # page-wide panels
    for ax, scope in zip(axes, scopes, strict=True):
        for k, (method, group) in enumerate(_by_method(runs, order).items()):
            rounds, stack = _stack(group, _column(f"accuracy.{scope}"))
            if not np.all(np.isnan(stack)):
                band(ax, rounds, stack, f"{method} (n={len(group)})", method_style(method),
                     stagger=k)
        ax.set(ylabel="test accuracy", title=scope)
        round_axis(ax, [x for r in runs for x in r.metrics["round"]])
    finish(fig, axes, _title(point, "Test accuracy per evaluation round "
                                    "(mean ± std over seeds)"))
    return fig


def plot_sweep_cosine(runs: Sequence[RunData], summary: Mapping[str, Any], point: str,
                      colours: Mapping[str, Any], stem: Path,
                      formats: Sequence[str]) -> list[Path]:
    """The dilemma figure: left, per method the cosine between unimodal and multimodal
    holders' gradients (mean over shared components) per round, mean ± std over seeds;
    right, the run-long mean ± std per method. Methods that share nothing are listed."""
    by_method = _by_method(runs, list(colours))
    curves = {m: _stack(group, _mean_cosine) for m, group in by_method.items()}
    curves = {m: c for m, c in curves.items() if c[0].size and not np.all(np.isnan(c[1]))}
    if not curves:
        return []
    fig, (left, right) = new_figure(2, width=5.6, height=4.0)
    focus = [m for m in FOCUS if m in curves] if len(curves) > 3 else []
    for method in sorted(curves, key=lambda m: m in focus):  # the focus pair drawn on top
        rounds, stack = curves[method]
        band(left, rounds, stack, method, method_style(method),
             emphasis=(method in focus) if focus else None)
    left.axhline(0.0, color="grey", lw=0.8)
    round_axis(left)
    left.set(ylabel="cosine (mean over shared components)",
             title="per round", ylim=(-1.05, 1.05))
    stats = {m: (s["gradient_cosine"]["mean"], s["gradient_cosine"]["std"])
             for m, s in summary.items() if s.get("gradient_cosine")}
    if stats:
        grouped_bars(right, ["-"], {m: [v] for m, v in stats.items()}, colours)
    right.axhline(0.0, color="grey", lw=0.8)
    right.set(ylabel="cosine, mean over rounds", title="whole run (mean ± std over seeds)",
              ylim=(-1.05, 1.05))
    missing = [m for m in by_method if m not in curves]
    if missing:
        right.set_xlabel(f"not logged (nothing shared): {', '.join(missing)}", fontsize=8)
    finish(fig, [left], _title(point, "Gradient conflict: cosine between unimodal and "
                                      "multimodal holders' gradients"))
    return save(fig, stem, formats)


def plot_sweep_bytes(sweep: SweepData, colours: Mapping[str, Any], stem: Path,
                     formats: Sequence[str]) -> list[Path]:
    """Mean payload bytes per physical link per round, a bar per method (per grid point)."""
    if not sweep.summary:
        return []
    points = list(sweep.summary)
    series = {m: [(float(sweep.summary[p][m]["bytes_per_link_per_round"]), 0.0)
                  if m in sweep.summary[p] else NAN_STAT for p in points]
              for m in sweep.methods if any(m in sweep.summary[p] for p in points)}
    per_point = max(0.6 * len(series) + 0.4, label_width(points))
    fig, (ax,) = new_figure(1, width=min(16.0, max(6.0, per_point * len(points) + 1.5)),
                            height=4.2)
    grouped_bars(ax, points, series, colours, fmt="{:,.0f}")
    ax.set(ylabel="bytes per link per round (mean)")
    ax.set_ylim(bottom=0)
    finish(fig, [ax] if len(points) > 1 else [], "Communication: mean bytes per physical "
                                                 "link per round")
    return save(fig, stem, formats)


def plot_ablation(sweep: SweepData, colours: Mapping[str, Any], stem: Path,
                  formats: Sequence[str]) -> list[Path]:
    """One panel per scope: final test accuracy per grid point (x) and method (bars), with
    the std over seeds as error bars; a scope missing at a point leaves its bar out."""
    points = list(sweep.summary)
    groups = order_groups(g for ms in sweep.summary.values() for s in ms.values()
                          for g in s["accuracy"]["groups"])
    scopes = ["overall", *groups]
    width = max(4.2, len(points) * max(0.35 * len(sweep.methods) + 0.3, label_width(points)))
    fig, axes = new_figure(len(scopes), width=width, max_cols=2 if width < 7 else 1)
    for ax, scope in zip(axes, scopes, strict=True):
        series = {m: [_accuracy(sweep.summary[p].get(m), scope) for p in points]
                  for m in sweep.methods}
        grouped_bars(ax, points, series, colours)
        ax.set(ylabel="final test accuracy", title=scope)
        ax.set_ylim(0, 1.08)
    finish(fig, axes, "Ablation: final test accuracy per grid point (mean ± std over seeds)")
    return save(fig, stem, formats)


def _accuracy(stats: Mapping[str, Any] | None, scope: str) -> tuple[float, float]:
    if not stats:
        return NAN_STAT
    acc = stats["accuracy"]
    cell = acc["overall"] if scope == "overall" else acc["groups"].get(scope)
    return (float(cell["mean"]), float(cell["std"])) if cell else NAN_STAT
