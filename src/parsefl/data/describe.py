"""What each agent holds: modalities, sample count and class histogram, as rows, a rich
table or a stacked bar chart (the ``parsefl data describe`` command)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from parsefl.data.base import MultimodalDataset
from parsefl.data.mix import group_name, parse_mix
from parsefl.data.partition import partition_indices
from parsefl.errors import ConfigError, DataError

MAX_CLASS_COLUMNS = 16
"""Above this many classes the table shows the non-zero classes in one column instead."""

PLOT_SUFFIXES = (".png", ".svg")


def describe_partition(
    dataset: MultimodalDataset,
    groups: Sequence[Sequence[str]],
    parts: Sequence[np.ndarray],
) -> list[dict[str, Any]]:
    """One row per agent describing its share of the TRAIN split.

    Args:
        dataset: The dataset that was partitioned.
        groups: Each agent's modalities (e.g. from :func:`parse_mix`).
        parts: Each agent's train indices (e.g. from :func:`partition_indices`).

    Returns:
        Rows ``{"agent": int, "modalities": str ("fou+pix"), "n_samples": int,
        "classes": list[int] (count per class, length n_classes)}``.
    """
    if len(groups) != len(parts):
        raise DataError(f"{len(groups)} modality groups but {len(parts)} index arrays")
    rows = []
    for agent, (mods, idx) in enumerate(zip(groups, parts, strict=True)):
        labels = dataset.train.y[np.asarray(idx, dtype=np.int64)]
        rows.append({
            "agent": agent,
            "modalities": group_name(tuple(mods)),
            "n_samples": int(len(labels)),
            "classes": np.bincount(labels, minlength=dataset.n_classes).tolist(),
        })  # fmt: skip
    return rows


def split_over_agents(
    dataset: MultimodalDataset,
    mix: Mapping[str, Any],
    partition: str,
    seed: int,
    params: Mapping[str, object] | None = None,
) -> tuple[list[tuple[str, ...]], list[np.ndarray]]:
    """Expand ``mix`` and partition the train split, passing the data's natural groups.

    Returns:
        ``(groups, parts)``: each agent's modalities and train indices.
    """
    groups = parse_mix(mix, dataset.modalities)
    parts = partition_indices(
        partition, dataset.train.y, len(groups), seed, params, groups=dataset.train_agent,
        agent_groups=groups,
    )
    return groups, parts


def render_table(rows: Sequence[Mapping[str, Any]], class_names: Sequence[str]) -> Table:
    """A rich table of :func:`describe_partition` rows, with a total row.

    Up to ``MAX_CLASS_COLUMNS`` classes get one column each; with more, one column lists
    each agent's non-zero classes as ``name:count``.
    """
    wide = len(class_names) <= MAX_CLASS_COLUMNS
    table = Table(title="training samples per agent")
    table.add_column("agent", justify="right")
    table.add_column("modalities")
    table.add_column("samples", justify="right")
    for name in class_names if wide else ["classes (name:count)"]:
        table.add_column(str(name), justify="right" if wide else "left")
    totals = np.zeros(len(class_names), dtype=np.int64)
    for row in rows:
        counts = np.asarray(row["classes"], dtype=np.int64)
        totals += counts
        table.add_row(str(row["agent"]), row["modalities"], str(row["n_samples"]),
                      *_class_cells(counts, class_names, wide))
    table.add_section()
    table.add_row("total", "", str(int(totals.sum())), *_class_cells(totals, class_names, wide))
    return table


def _class_cells(counts: np.ndarray, class_names: Sequence[str], wide: bool) -> list[str]:
    if wide:
        return [str(int(c)) for c in counts]
    return [" ".join(f"{class_names[i]}:{int(counts[i])}" for i in np.flatnonzero(counts))]


def plot_partition(
    rows: Sequence[Mapping[str, Any]], class_names: Sequence[str], path: str | Path
) -> Path:
    """Save a stacked bar chart of each agent's class histogram (PNG or SVG by suffix).

    Uses matplotlib's Agg canvas directly (no pyplot state, no display needed) and writes
    atomically (temp file + rename).

    Returns:
        The written path.

    Raises:
        ConfigError: The suffix is not ``.png`` or ``.svg`` (field ``path``).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in PLOT_SUFFIXES:
        raise ConfigError("path", f"plot file must end in {' or '.join(PLOT_SUFFIXES)}, "
                          f"got {path.name!r}")
    counts = np.array([row["classes"] for row in rows], dtype=np.int64).reshape(len(rows), -1)
    fig = Figure(figsize=(max(6.0, 0.45 * len(rows) + 2.0), 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    x = np.arange(len(rows))
    bottom = np.zeros(len(rows))
    colours = _colours(len(class_names))
    for c, name in enumerate(class_names):
        ax.bar(x, counts[:, c], bottom=bottom, color=colours[c], label=str(name), width=0.8)
        bottom += counts[:, c]
    ax.set_xticks(x, [f"{r['agent']}\n{r['modalities']}" for r in rows], fontsize=7)
    ax.set_xlabel("agent")
    ax.set_ylabel("training samples")
    ax.legend(title="class", fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    _atomic_save(fig, path, suffix[1:])
    return path


def _colours(n: int) -> list[tuple[float, float, float, float]]:
    from matplotlib import colormaps

    cmap = colormaps["tab20" if n > 10 else "tab10"]
    return [cmap(i % cmap.N) for i in range(n)]


def _atomic_save(fig: Any, path: Path, fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        fig.savefig(tmp, format=fmt, metadata={"Date": None} if fmt == "svg" else None)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
