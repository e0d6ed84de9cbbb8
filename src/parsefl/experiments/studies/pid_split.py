"""``model.split: pid`` — PID-guided slice sizes, agreed without a global table.

Each multimodal agent estimates the partial information decomposition of its own training
data (its first two modalities; with more, the mean over every pair), turns it into r:u:s
weights (``parsefl.pid.pid_split``, with a floor per slice), and the estimates flood over the
physical graph, one neighbour hop per step, as in the capability handshake. Every agent then
takes the element-wise median of the estimates it heard: on a connected graph everyone hears
the same set and agrees, so the slices (and the components built on them) match. Unimodal
agents estimate nothing; they learn the ratio from their neighbours.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence

import networkx as nx
import numpy as np

from parsefl.data import MultimodalDataset

Weights = tuple[float, float, float]


def local_estimate(
    ds: MultimodalDataset, modalities: Sequence[str], idx: np.ndarray, floor: float, seed: int
) -> Weights:
    """One multimodal agent's r:u:s weights from the PID of its own training samples."""
    from parsefl.pid import SparseJointWarning, pid, pid_split

    weights = []
    for a, b in itertools.combinations(modalities, 2):
        with warnings.catch_warnings():  # small local datasets: sparse joints are expected
            warnings.simplefilter("ignore", SparseJointWarning)
            est = pid(ds.train.x[a][idx], ds.train.x[b][idx], ds.train.y[idx], seed=seed)
        weights.append(pid_split(est, floor=floor))
    mean = np.mean(weights, axis=0)
    return float(mean[0]), float(mean[1]), float(mean[2])


def flood(graph: nx.Graph, estimates: dict[int, Weights]) -> dict[int, dict[int, Weights]]:
    """What each agent has heard once the estimates have travelled every hop of the graph."""
    heard = {i: ({i: estimates[i]} if i in estimates else {}) for i in graph.nodes}
    changed = True
    while changed:
        changed = False
        snapshot = {i: dict(h) for i, h in heard.items()}
        for i in graph.nodes:
            for j in graph.neighbors(i):
                new = {k: v for k, v in snapshot[j].items() if k not in heard[i]}
                if new:
                    heard[i].update(new)
                    changed = True
    return heard


def agree_splits(
    ds: MultimodalDataset, groups: Sequence[tuple[str, ...]], parts: Sequence[np.ndarray],
    graph: nx.Graph, floor: float, seed: int,
) -> list[Weights]:
    """Every agent's r:u:s weights (equal 1:1:1 where it heard no estimate at all)."""
    estimates = {i: local_estimate(ds, g, parts[i], floor, seed)
                 for i, g in enumerate(groups) if len(g) > 1}
    heard = flood(graph, estimates)
    out: list[Weights] = []
    for i in range(len(groups)):
        if not heard[i]:
            out.append((1.0, 1.0, 1.0))
            continue
        med = np.median(np.array(list(heard[i].values())), axis=0)
        # Rounded so that float noise in the median cannot split agents into two sizes.
        out.append(tuple(round(float(v), 6) for v in med))  # type: ignore[arg-type]
    return out
