"""t-SNE of one agent's redundant, unique and synergistic slices on the test set.

An agent holding several modalities has one r, u (and s) vector per modality. Each panel
embeds one slice kind with the agent's modalities **concatenated** (in the agent's modality
order): that is what its heads see together — the fusion operator takes all s_m at once, the
unique heads cover every u_m, and the r_m are aligned to agree — and it keeps the figure at
one panel per slice whatever the number of modalities.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from parsefl.errors import ConfigError, DataError
from parsefl.plots.style import new_figure, save

NAMES = {"r": "redundant", "u": "unique", "s": "synergistic"}


def plot_slices_tsne(run_dir: Path, agent: int, out: Path, max_points: int = 600,
                     seed: int = 0) -> Path:
    """Rebuild the run's experiment, load ``agent``'s checkpoint, and draw a t-SNE panel per
    slice (r, u, and s when the agent has one) of the test set, coloured by class.

    Args:
        run_dir: A run folder (config.yaml and checkpoints/).
        agent: The agent id (the NNNN of ``checkpoints/agent_NNNN.safetensors``).
        out: The image file; its suffix (.png or .svg) picks the format.
        max_points: At most this many test samples (a seeded random subset).
        seed: Seed of the subset and of t-SNE.

    Returns:
        The written path.

    Raises:
        DataError: The run folder has no config.yaml or no checkpoints, or too few test
            samples.
        ConfigError: ``agent`` is out of range (field ``agent``), the method's model has no
            slices (field ``method``), or ``out`` is not .png/.svg (field ``out``).
    """
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in ("png", "svg"):
        raise ConfigError("out", f"t-SNE figure must end in .png or .svg, got {out.name!r}")
    fig = slices_tsne_figure(run_dir, agent, max_points, seed)
    return save(fig, out.with_suffix(""), (fmt,))[0]


def slices_tsne_figure(run_dir: Path, agent: int, max_points: int = 600,
                       seed: int = 0) -> Figure:
    """The figure of ``plot_slices_tsne``, unsaved (so that it can be saved in several
    formats without running t-SNE again)."""
    from parsefl.experiments.run.saved_agent import agent_slices, load_agent

    model, x, y, class_names, title = load_agent(run_dir, agent)
    rng = np.random.default_rng(seed)
    n = int(y.shape[0])
    keep = np.sort(rng.choice(n, size=min(n, max_points), replace=False))
    if len(keep) < 5:
        raise DataError(f"{run_dir}: only {len(keep)} test samples; t-SNE needs at least 5")
    slices = agent_slices(model, {m: v[keep] for m, v in x.items()})
    labels = y[keep]
    fig, axes = new_figure(len(slices), width=4.4, height=4.2)
    for ax, (name, feats) in zip(axes, slices.items(), strict=True):
        _scatter(ax, embed(feats, seed), labels, class_names)
        ax.set_title(f"{name} ({NAMES[name]}), {feats.shape[1]} dims", fontsize=10)
    handles, texts = axes[0].get_legend_handles_labels()
    fig.legend(handles, texts, title="class", loc="center right", fontsize=8, frameon=False,
               markerscale=2)
    fig.suptitle(f"{title}: t-SNE of test-set slices ({len(keep)} samples)", fontsize=11)
    fig.tight_layout(rect=(0, 0, 0.88, 0.94))
    return fig


def embed(features: np.ndarray, seed: int) -> np.ndarray:
    """2-D t-SNE (PCA init, fixed random_state: the same input gives the same picture)."""
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    n = features.shape[0]
    perplexity = float(min(30.0, max(2.0, (n - 1) / 3)))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto",
                random_state=seed)
    # One thread: after a torch forward pass, torch's OpenMP workers and scikit-learn's own
    # libgomp fight over the cores and t-SNE runs 20-100x slower (measured on 2 cores).
    with threadpool_limits(limits=1):
        return tsne.fit_transform(features)


def _scatter(ax, points: np.ndarray, labels: np.ndarray, class_names) -> None:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(class_names) <= 10 else "tab20"]
    for c in np.unique(labels):
        mask = labels == c
        ax.scatter(points[mask, 0], points[mask, 1], s=9, color=cmap(int(c) % cmap.N),
                   label=str(class_names[int(c)]), alpha=0.8, linewidths=0)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
