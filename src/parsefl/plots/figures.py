"""``plot_dir``: every figure a run folder or a sweep/compare folder supports."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from parsefl.errors import ConfigError, DataError
from parsefl.plots.load import RunData, load_any
from parsefl.plots.run_plots import plot_run
from parsefl.plots.style import check_formats, save
from parsefl.plots.sweep_plots import plot_sweep


def plot_dir(path: Path, out: Path | None = None, formats: Sequence[str] = ("png",),
             tsne_agent: int | None = None) -> list[Path]:
    """Detect a run folder or a sweep/compare folder and write its figures.

    Run folder: ``accuracy`` (accuracy and macro-F1 per evaluation round per group),
    ``bytes`` (busiest link per round, mean per link per round, cumulative bytes),
    ``gradient_cosine`` (per round, per shared component and their mean; skipped when the
    method logs none), and with ``tsne_agent`` ``tsne-agentNNNN`` (see plot_slices_tsne).
    Sweep folder: ``accuracy[-PP-point]`` and ``gradient_cosine[-PP-point]`` per grid point
    (methods overlaid, mean ± std over seeds), ``bytes`` (bars per method), ``frontier[-PP-
    setting]`` (accuracy against cumulative bytes, one curve per run label) and, for a grid of
    several points, ``ablation`` (grouped bars per grid point and method).

    Args:
        path: The run or sweep folder.
        out: Where to write; default ``path/figures``.
        formats: Any of "png", "svg"; each figure is written once per format.
        tsne_agent: Also draw this agent's t-SNE of slices (run folders only).

    Returns:
        The written files, in the order written.

    Raises:
        DataError: ``path`` is not a run or sweep folder, or holds nothing to plot yet.
        ConfigError: Unknown format (``--format``), or ``tsne_agent`` given for a sweep
            folder, out of range or for a model without slices.
    """
    fmts = check_formats(formats)
    data = load_any(path)
    out = out if out is not None else path / "figures"
    if not isinstance(data, RunData):
        if tsne_agent is not None:
            raise ConfigError("--tsne-agent", "needs a run folder; this is a sweep folder "
                              f"(pass one of {path / 'runs'}/<run>)")
        paths = plot_sweep(data, out, fmts)
    else:
        paths = plot_run(data, out, fmts)
        if tsne_agent is not None:
            paths += plot_tsne(path, tsne_agent, out, fmts)
    if not paths:
        raise DataError(f"{path}: nothing to plot yet (no metrics.csv / results.json, or no "
                        "finished run)")
    return paths


def plot_tsne(run_dir: Path, agent: int, out: Path, formats: Sequence[str]) -> list[Path]:
    """``tsne-agentNNNN`` in every format from one t-SNE computation."""
    from parsefl.plots.tsne import slices_tsne_figure

    fig = slices_tsne_figure(run_dir, agent)
    return save(fig, out / f"tsne-agent{agent:04d}", formats)
