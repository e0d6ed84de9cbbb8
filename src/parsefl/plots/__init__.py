"""Figures and a self-contained HTML report from run folders and sweep/compare folders.

Nothing here touches matplotlib's global backend: figures are drawn on Agg canvases directly.
"""

from __future__ import annotations

from parsefl.plots.figures import plot_dir
from parsefl.plots.report import write_report
from parsefl.plots.tsne import plot_slices_tsne

__all__ = ["plot_dir", "plot_slices_tsne", "write_report"]
