"""Figures of one run folder: accuracy and macro-F1 per evaluation round and group, bytes per
round, and the gradient cosine per round and shared component."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from parsefl.plots.load import RunData, cosine_per_round, nanmean_rows
from parsefl.plots.style import new_figure, round_axis, save


def plot_run(run: RunData, out: Path, formats: Sequence[str]) -> list[Path]:
    """Every figure a single run supports; those without data (no gradient cosine for
    ``local``, no metrics yet) are skipped."""
    paths: list[Path] = []
    if "round" in run.metrics:
        paths += plot_run_accuracy(run, out, formats)
        paths += plot_run_bytes(run, out, formats)
    paths += plot_run_cosine(run, out, formats)
    return paths


def run_title(run: RunData) -> str:
    dataset = run.results.get("dataset") or run.config.get("data", {}).get("name", "?")
    return f"{run.method} on {dataset} (seed {run.seed})"


def plot_run_accuracy(run: RunData, out: Path, formats: Sequence[str]) -> list[Path]:
    """Accuracy and macro-F1 per evaluation round: a line per group, overall in black."""
    fig, axes = new_figure(2, width=5.0)
    rounds = run.metrics["round"]
    for ax, metric, name in zip(axes, ("accuracy", "macro_f1"), ("accuracy", "macro-F1"),
                                strict=True):
        for group in run.groups:
            ax.plot(rounds, run.metrics[f"{metric}.{group}"], marker="o", ms=3, label=group)
        if f"{metric}.overall" in run.metrics:
            ax.plot(rounds, run.metrics[f"{metric}.overall"], color="black", lw=2.2,
                    label="overall (mean over agents)")
        ax.set(ylabel=f"test {name}", title=f"{name} per group")
        round_axis(ax, rounds)
        ax.legend(fontsize=8)
    fig.suptitle(f"{run_title(run)}: test accuracy and macro-F1 per evaluation round")
    fig.tight_layout()
    return save(fig, out / "accuracy", formats)


def plot_run_bytes(run: RunData, out: Path, formats: Sequence[str]) -> list[Path]:
    """Bytes on the busiest link per evaluated round with the run's mean per link per round,
    and the cumulative bytes over all links."""
    fig, (left, right) = new_figure(2, width=5.0)
    rounds = run.metrics["round"]
    if "bytes_max_link" in run.metrics:
        left.plot(rounds, run.metrics["bytes_max_link"], marker="o", ms=3,
                  label="busiest link (evaluated rounds)")
    mean = run.results.get("communication", {}).get("bytes_per_link_per_round_mean")
    if mean is not None:
        left.axhline(mean, color="tab:red", ls="--",
                     label=f"mean per link per round: {mean:,.0f} B")
    left.set(ylabel="bytes", title="bytes per link per round")
    round_axis(left, rounds)
    left.set_ylim(bottom=0)
    left.legend(fontsize=8)
    if "bytes_cumulative" in run.metrics:
        right.plot(rounds, run.metrics["bytes_cumulative"], marker="o", ms=3, color="tab:green")
    right.set(ylabel="bytes", title="cumulative bytes, all links")
    round_axis(right, rounds)
    right.set_ylim(bottom=0)
    fig.suptitle(f"{run_title(run)}: communication")
    fig.tight_layout()
    return save(fig, out / "bytes", formats)


def plot_run_cosine(run: RunData, out: Path, formats: Sequence[str]) -> list[Path]:
    """Cosine between the unimodal and multimodal holders' mean gradients, per round: a thin
    line per shared component and their mean in black. Skipped when nothing was logged."""
    rounds, comps = cosine_per_round(run)
    if not comps or all(np.all(np.isnan(v)) for v in comps.values()):
        return []
    fig, (ax,) = new_figure(1, width=7.5, height=4.2)
    for name, values in comps.items():
        ax.plot(rounds, values, lw=1, alpha=0.8, label=name)
    ax.plot(rounds, nanmean_rows(np.vstack(list(comps.values()))), color="black", lw=2.4,
            label="mean over components")
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_ylim(-1.05, 1.05)
    round_axis(ax, rounds)
    ax.set(ylabel="cosine(unimodal grad, multimodal grad)",
           title=f"{run_title(run)}: gradient conflict on shared components")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return save(fig, out / "gradient_cosine", formats)
