"""The accuracy-per-byte frontier of a sweep or compare folder: test accuracy against the
cumulative bytes sent, at every evaluation round, one curve per distinct run label.

A run's label is its method plus the config fields that tell it apart from the folder's other
runs, are not part of the setting and differ from their defaults (an overlay, a compression
operator, a period, ...: ``parse overlay=auto hops=6``, ``parse compressor=int8``); the
setting (dataset, agent mix, partition, topology) splits the figures, and seeds are averaged:
x is the mean over seeds of the cumulative bytes at an evaluation round, y the mean accuracy,
with a ± std band. The bytes axis is logarithmic, so "the same accuracy at a tenth of the
bytes" is a horizontal gap of one decade.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from parsefl.plots.load import RunData, _schema_flat, nanmean_rows, order_groups
from parsefl.plots.style import MethodStyle, band, method_style, new_figure, save, slug

# Config fields that make a different setting (a separate figure), not a different method.
SETTING = ("data.", "mix", "partition.", "topology.")
# Fields that never tell runs apart in a figure (averaged over, or only change the speed).
IGNORED = ("method", "seed", "device", "runtime.", "out_dir")


@dataclass
class Curve:
    """One run label's points: ``bytes`` (mean over seeds) and per scope a (seeds, rounds)
    stack of accuracies, at the evaluation ``rounds``; ``method`` is the label's method."""

    label: str
    method: str
    rounds: np.ndarray
    bytes: np.ndarray
    accuracy: dict[str, np.ndarray] = field(default_factory=dict)
    seeds: int = 0


def frontier_curves(runs: Sequence[RunData]) -> dict[str, list[Curve]]:
    """Setting label ("-" when all runs share one; sorted) -> one curve per run label, in
    the order the labels first appear in the runs sorted by method, then seed."""
    runs = sorted((r for r in runs if "round" in r.metrics and "bytes_cumulative" in r.metrics),
                  key=lambda r: (r.method, r.seed))
    flats = [_schema_flat(r.config) for r in runs]
    keys = dict.fromkeys(k for flat in flats for k in flat)
    varying = [k for k in keys if not k.startswith(IGNORED)
               and len({json.dumps(f.get(k), sort_keys=True, default=str) for f in flats}) > 1]
    setting = [k for k in varying if k.startswith(SETTING)]
    design = [k for k in varying if k not in setting]
    defaults = _schema_flat({})
    groups: dict[str, dict[str, list[RunData]]] = {}
    for run, flat in zip(runs, flats, strict=True):
        where = _label([(k, flat.get(k)) for k in setting]) or "-"
        # Only what this run changed from the defaults: "parse overlay=auto hops=6".
        what = " ".join([run.method, *[f"{_short(k)}={_value(flat.get(k))}" for k in design
                                       if flat.get(k) != defaults.get(k)]])
        groups.setdefault(where, {}).setdefault(what, []).append(run)
    return {where: [_curve(label, runs) for label, runs in groups[where].items()]
            for where in sorted(groups)}


def _curve(label: str, runs: list[RunData]) -> Curve:
    runs = sorted(runs, key=lambda r: r.seed)
    rounds = np.unique(np.concatenate([r.metrics["round"] for r in runs]))
    scopes = ["overall", *order_groups(g for r in runs for g in r.groups)]

    def stack(column: str) -> np.ndarray:
        out = np.full((len(runs), len(rounds)), np.nan)
        for k, run in enumerate(runs):
            values = run.metrics.get(column, np.full(len(run.metrics["round"]), np.nan))
            out[k, np.searchsorted(rounds, run.metrics["round"])] = values
        return out

    return Curve(label, runs[0].method, rounds, nanmean_rows(stack("bytes_cumulative")),
                 {s: stack(f"accuracy.{s}") for s in scopes}, len(runs))


def frontier_figure(curves: Sequence[Curve], title: str) -> Figure:
    """One panel per scope (overall, then each group): accuracy against cumulative bytes.
    A curve that sent no bytes has no place on the log axis: a note under the legend names
    it."""
    scopes = list(dict.fromkeys(s for c in curves for s in c.accuracy))
    looks = curve_styles(curves)
    fig, axes = new_figure(len(scopes), width=6.4, height=4.2, max_cols=2)
    for ax, scope in zip(axes, scopes, strict=True):
        for k, curve in enumerate(curves):
            keep = curve.bytes > 0  # 0 bytes (a round that sent nothing) cannot sit on a log axis
            if scope in curve.accuracy and keep.any():
                band(ax, curve.bytes[keep], curve.accuracy[scope][:, keep],
                     f"{curve.label} (n={curve.seeds})", looks[curve.label], stagger=k)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # labelled minor ticks collide
        ax.set(xlabel="cumulative bytes sent (all links, log scale)", ylabel="test accuracy",
               title=scope)
    silent = [f"{c.label} (n={c.seeds})" for c in curves if not (c.bytes > 0).any()]
    note = (f"Not drawn: {', '.join(silent)} sent no bytes (0 has no place on the log bytes "
            "axis)." if silent else "")
    _finish(fig, axes, title, note)
    return fig


def curve_styles(curves: Sequence[Curve]) -> dict[str, MethodStyle]:
    """Each curve's look: its method's (style.method_style). Further run labels of a method
    in this figure (``parse overlay=auto`` beside ``parse``) keep its colour with other
    dashes; the bare method name is served first, so it looks as in every other figure."""
    looks: dict[str, MethodStyle] = {}
    taken: dict[str, int] = {}
    for curve in sorted(curves, key=lambda c: c.label != c.method):  # stable sort
        variant = taken.get(curve.method, 0)
        taken[curve.method] = variant + 1
        looks[curve.label] = method_style(curve.method, variant)
    return looks


def _finish(fig: Figure, axes: Sequence, title: str, note: str = "") -> None:
    """style.finish with as many legend columns as the (long) run labels fit in the width,
    and ``note`` in a line of its own under the legend."""
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[1:]:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    widest = max((len(lab) for lab in labels), default=1)
    ncol = max(1, min(len(labels), int(fig.get_figwidth() * 72 / (5.5 * widest + 45))))
    rows = -(-len(labels) // ncol)
    height = fig.get_figheight()
    below = 0.3 if note else 0.0  # inches under the legend for the note
    if note:
        fig.text(0.5, 0.08 / height, note, ha="center", va="bottom", fontsize=8,
                 color="#444444", wrap=True)
    if labels:
        fig.legend(handles, labels, loc="lower center", ncol=ncol, frameon=False,
                   bbox_to_anchor=(0.5, below / height))
    fig.suptitle(title, fontsize=11)
    bottom = below + (0.25 + 0.25 * rows if rows else 0.0)
    top = 0.25 * (title.count("\n") + 1)
    fig.tight_layout(rect=(0, bottom / height, 1, 1 - top / height))


def plot_frontier(runs: Sequence[RunData], out: Path, formats: Sequence[str]) -> list[Path]:
    """``frontier`` (one setting) or ``frontier-PP-<setting>`` per setting."""
    settings = frontier_curves(runs)
    paths: list[Path] = []
    for k, (where, curves) in enumerate(settings.items()):
        if not any((c.bytes > 0).any() for c in curves):
            continue
        suffix = "" if len(settings) == 1 else f"-{k:02d}-{slug(where)}"
        title = "Accuracy per byte: test accuracy against cumulative bytes at each " \
                "evaluation round (mean ± std over seeds)" + ("" if where == "-" else
                                                              f"\n{where}")
        paths += save(frontier_figure(curves, title), out / f"frontier{suffix}", formats)
    return paths


def _short(key: str) -> str:
    """``overlay.name`` -> ``overlay``, ``communication.compressor`` -> ``compressor``."""
    parts = key.split(".")
    return parts[-2] if parts[-1] == "name" and len(parts) > 1 else parts[-1]


def _label(items: Sequence[tuple[str, object]]) -> str:
    return ", ".join(f"{k}={_value(v)}" for k, v in items)


def _value(value: object) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True).replace('"', "")
    return str(value)
