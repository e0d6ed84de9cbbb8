"""Figure plumbing shared by every plot: Agg figures without pyplot, one look (colour, line
style, marker) per method in every figure, mean ± band curves, grouped bars, and atomic
saving in several formats.

Figures are built on ``matplotlib.figure.Figure`` with an explicit ``FigureCanvasAgg``: no
pyplot state and no global ``matplotlib.use`` call, so importing parsefl (or plotting from a
notebook with another backend) never changes the user's backend.
"""

from __future__ import annotations

import os
import re
import tempfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from parsefl.errors import ConfigError
from parsefl.plots.load import nanmean_rows

FORMATS = ("png", "svg")


def check_formats(formats: Sequence[str]) -> tuple[str, ...]:
    """Lower-cased, de-duplicated formats.

    Raises:
        ConfigError: A format other than png or svg (field ``--format``).
    """
    out = tuple(dict.fromkeys(f.strip().lower().lstrip(".") for f in formats if f.strip()))
    bad = [f for f in out if f not in FORMATS]
    if bad or not out:
        raise ConfigError("--format", f"expected png and/or svg, got {', '.join(formats) or '-'}")
    return out


def new_figure(n_panels: int, width: float = 4.2, height: float = 3.4,
               max_cols: int = 4) -> tuple[Figure, list[Axes]]:
    """A figure with ``n_panels`` axes on a grid of at most ``max_cols`` columns."""
    cols = max(1, min(max_cols, n_panels))
    rows = -(-n_panels // cols)
    fig = Figure(figsize=(width * cols, height * rows + 0.6))
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(rows, cols, k + 1) for k in range(n_panels)]
    for ax in axes:
        ax.grid(True, alpha=0.3)
    return fig, axes


@dataclass(frozen=True)
class MethodStyle:
    """How one method is drawn in every figure: colour, line style and marker."""

    colour: str
    dashes: Any  # a matplotlib linestyle: "-", "--", ... or (offset, (on, off, ...))
    marker: str


# One look per built-in method (the SHARING registry's names, in its sorted order), fixed so
# that a method looks the same in every figure whichever other methods the figure holds; the
# test over the registry checks that every registered method gets a look of its own. Methods
# with near-identical curves (parse and sliced_hybrid) differ in dashes and marker too, so
# one never hides the other under the same solid line.
METHOD_STYLES: dict[str, MethodStyle] = {
    "centralized": MethodStyle("#000000", (0, (1, 1)), "*"),
    "dsgd_full": MethodStyle("#ff7f0e", "--", "s"),
    "dsgd_hybrid": MethodStyle("#e377c2", (0, (5, 1, 1, 1)), "v"),
    "dsgd_modality": MethodStyle("#8c564b", (0, (3, 1, 1, 1, 1, 1)), "<"),
    "dsgd_task": MethodStyle("#d62728", "-.", "D"),
    "harmony": MethodStyle("#2ca02c", (0, (6, 2)), "P"),
    "local": MethodStyle("#7f7f7f", ":", "x"),
    "parse": MethodStyle("#1f77b4", "-", "o"),
    "parse_distill": MethodStyle("#17becf", (0, (4, 1, 1, 1, 1, 1)), "^"),
    "parse_proto": MethodStyle("#9467bd", (0, (2, 1)), ">"),
    "sliced_hybrid": MethodStyle("#bcbd22", (0, (8, 2, 2, 2)), "X"),
}
# Plugin methods: colours none of the built-ins use (tab20b's two darker shades of each hue),
# picked by a hash of the name that is the same in every process (crc32, not hash()).
FALLBACK_COLOURS = ("#393b79", "#5254a3", "#637939", "#8ca252", "#8c6d31", "#bd9e39",
                    "#843c39", "#ad494a", "#7b4173", "#a55194")
DASHES = ("-", "--", "-.", ":", (0, (5, 1, 1, 1)), (0, (3, 1, 1, 1, 1, 1)))
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "d")
# Run labels of one method that differ in a config field (a frontier's "parse overlay=auto"
# beside "parse") keep the method's colour and take these dashes, in turn.
VARIANT_DASHES = ((0, (1, 2)), (0, (6, 3)), (0, (2, 2, 6, 2)), (0, (10, 3)))


def method_style(method: str, variant: int = 0) -> MethodStyle:
    """The look of ``method`` in every figure: a fixed one for built-in methods, a
    deterministic one (by name) for plugin methods. ``variant`` k > 0 is the k-th run label
    of this method in one figure that differs in a config field: same colour, other dashes
    and marker."""
    base = METHOD_STYLES.get(method)
    if base is None:
        code = zlib.crc32(method.encode())
        base = MethodStyle(FALLBACK_COLOURS[code % len(FALLBACK_COLOURS)],
                           DASHES[(code >> 8) % len(DASHES)],
                           MARKERS[(code >> 16) % len(MARKERS)])
    if variant <= 0:
        return base
    marker = MARKERS[(MARKERS.index(base.marker) + variant) % len(MARKERS)] \
        if base.marker in MARKERS else MARKERS[variant % len(MARKERS)]
    return MethodStyle(base.colour, VARIANT_DASHES[(variant - 1) % len(VARIANT_DASHES)], marker)


def method_colours(methods: Sequence[str]) -> dict[str, str]:
    """Each method's colour (method_style), keyed in the order given."""
    return {m: method_style(m).colour for m in methods}


def band(ax: Axes, x: np.ndarray, stack: np.ndarray, label: str, look: MethodStyle,
         emphasis: bool | None = None, stagger: int = 0) -> None:
    """Mean line over the rows of ``stack`` (seeds), drawn in ``look``, with a ± std band
    when there are two or more finite values; NaN points are left as gaps. ``emphasis`` True
    draws a thick line on top, False a thin one without band (context for the emphasised
    methods), None the default. ``stagger`` shifts where the markers sit on a long curve, so
    that coinciding curves show both."""
    mean = nanmean_rows(stack)
    n = (~np.isnan(stack)).sum(axis=0)
    width, alpha, z = {True: (2.6, 1.0, 3), False: (1.2, 0.7, 2), None: (1.8, 1.0, 2)}[emphasis]
    every = max(1, len(x) // 8)
    ax.plot(x, mean, color=look.colour, label=label, lw=width, alpha=alpha, zorder=z,
            ls=look.dashes, marker=look.marker, ms=4, markevery=(stagger % every, every))
    if stack.shape[0] > 1 and np.any(n > 1) and emphasis is not False:
        centred = np.where(np.isnan(stack), 0.0, stack - np.nan_to_num(mean))
        std = np.sqrt((centred ** 2).sum(axis=0) / np.maximum(n - 1, 1))
        std = np.where(n > 1, std, np.nan)
        ax.fill_between(x, mean - std, mean + std, color=look.colour, alpha=0.2, lw=0,
                        zorder=1)


def grouped_bars(ax: Axes, categories: Sequence[str], series: Mapping[str, Sequence[tuple]],
                 colours: Mapping[str, Any], fmt: str = "{:.3f}") -> None:
    """Bars of (mean, std) per category and series; NaN means leave the bar out. With one
    category the series names become the tick labels (a plain per-method bar chart). Values
    are written over the bars while there are few enough to stay legible."""
    names = list(series)
    text = fmt if len(names) * len(categories) <= 16 else None
    if len(categories) == 1:
        for k, name in enumerate(names):
            _bar(ax, k, 0.7, series[name][0], colours[name], text)
        ax.set_xticks(range(len(names)), names, rotation=20, ha="right")
        ax.set_xlim(-0.5, len(names) - 0.5)
        return
    width = 0.8 / max(1, len(names))
    for j, name in enumerate(names):
        labelled = False  # label the first drawn bar: a method may lack the first category
        for k, stat in enumerate(series[name]):
            x = k - 0.4 + width * (j + 0.5)
            drawn = _bar(ax, x, width, stat, colours[name], text,
                         label=None if labelled else name)
            labelled = labelled or drawn
    ax.set_xticks(range(len(categories)), [wrap(c) for c in categories], fontsize=8)
    ax.set_xlim(-0.5, len(categories) - 0.5)  # keep every category even if its bars are absent


def _bar(ax: Axes, x: float, width: float, stat: tuple, colour: Any, fmt: str | None,
         label: str | None = None) -> bool:
    """One bar with its error bar (and value, if ``fmt``); False if the mean is NaN."""
    mean, std = (float(v) for v in stat)
    if np.isnan(mean):
        return False
    err = std if std > 0 else None
    ax.bar(x, mean, width, yerr=err, color=colour, label=label, capsize=3,
           edgecolor="black", linewidth=0.4)
    if fmt is not None:
        # The value sits beyond the error bar's end, where the bar cap cannot cover it.
        tip = mean + (std if mean >= 0 else -std)
        ax.annotate(fmt.format(mean), (x, tip), xytext=(0, 2 if mean >= 0 else -2),
                    textcoords="offset points", ha="center",
                    va="bottom" if mean >= 0 else "top", fontsize=7)
    return True


def round_axis(ax: Axes, rounds: Sequence[float] = ()) -> None:
    """Label the x axis as rounds: a tick at each evaluated round when there are few (every
    ``eval_every`` rounds), integer ticks otherwise."""
    ax.set_xlabel("round")
    ticks = sorted({float(r) for r in rounds if np.isfinite(r)})
    if 0 < len(ticks) <= 10:
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def legend_below(fig: Figure, axes: Sequence[Axes]) -> int:
    """One legend for the whole figure (panels share their methods), under the panels;
    returns its number of rows (0: nothing to show)."""
    handles, labels = {}, []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in handles:
                handles[lab] = h
                labels.append(lab)
    if labels:
        fig.legend([handles[lab] for lab in labels], labels, loc="lower center",
                   ncol=min(len(labels), 6), frameon=False)
    return -(-len(labels) // 6)


def finish(fig: Figure, axes: Sequence[Axes], title: str) -> None:
    """Suptitle, one shared legend under the panels, and a layout that leaves room for both."""
    rows = legend_below(fig, axes)
    bottom = 0.2 + 0.25 * rows if rows else 0.0
    height = fig.get_figheight()
    fig.suptitle(title, fontsize=11)
    lines = title.count("\n") + 1
    fig.tight_layout(rect=(0, bottom / height, 1, 1 - 0.25 * lines / height))


def split_label(text: str) -> list[str]:
    """A grid point label ("k1=v1, k2={a: 1, b: 2}") split at its top-level ", " only, so a
    mapping or list value stays whole."""
    parts, depth, start = [], 0, 0
    for k, ch in enumerate(text):
        depth += (ch in "[{(") - (ch in "]})")
        if depth == 0 and text.startswith(", ", k):
            parts.append(text[start:k])
            start = k + 2
    return [*parts, text[start:]]


def wrap(text: str) -> str:
    """A grid point label as a tick label: one line per grid key."""
    return "\n".join(split_label(text))


def label_width(labels: Sequence[str]) -> float:
    """Inches that the widest line of these tick labels needs at font size 8."""
    return 0.2 + 0.09 * max((len(line) for t in labels for line in split_label(t)), default=0)


def slug(label: str) -> str:
    """A file-name part for a grid point label: its values only ("k1=v1, k2=v2" -> v1-v2),
    which say more than the keys in a short name."""
    values = [part.split("=", 1)[-1] for part in split_label(label)]
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", "-".join(values)).strip("_")[:60] or "all"


def save(fig: Figure, stem: Path, formats: Sequence[str]) -> list[Path]:
    """Write ``stem.<fmt>`` for each format, each atomically (temp file + rename)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = stem.with_name(f"{stem.name}.{fmt}")
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            # A fixed hash salt and no date make the SVG byte-identical between runs.
            with matplotlib.rc_context({"svg.hashsalt": "parsefl"}):
                fig.savefig(tmp, format=fmt, dpi=110,
                            metadata={"Date": None} if fmt == "svg" else None)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        paths.append(path)
    return paths
