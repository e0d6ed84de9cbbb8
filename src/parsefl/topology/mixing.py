"""Metropolis–Hastings gossip weights, per agent and as the full mixing matrix.

With ``w_ij = 1 / (1 + max(d_i, d_j))`` for overlay neighbours and ``w_ii = 1 - sum_j w_ij``
the matrix is symmetric and doubly stochastic on any undirected graph, and each agent can
compute its own row from its degree and its neighbours' reported degrees alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import networkx as nx
import numpy as np


def mh_weights_local(
    own_degree: int, neighbour_degrees: Mapping[int, int]
) -> tuple[float, dict[int, float]]:
    """One agent's Metropolis–Hastings weights from what its neighbours told it.

    Args:
        own_degree: This agent's degree in the overlay (at least its number of neighbours,
            so that the self weight stays positive).
        neighbour_degrees: Neighbour id -> that neighbour's overlay degree.

    Returns:
        ``(self_weight, {neighbour: weight})``, neighbours in ascending id order.

    Raises:
        ValueError: ``own_degree`` is below the number of neighbours, or a neighbour reports
            a degree below 1 (it has at least this agent as a neighbour).
    """
    if own_degree < len(neighbour_degrees):
        raise ValueError(
            f"own degree {own_degree} is below the number of neighbours {len(neighbour_degrees)}"
        )
    weights: dict[int, float] = {}
    for j in sorted(neighbour_degrees):
        if neighbour_degrees[j] < 1:
            raise ValueError(f"neighbour {j} reported degree {neighbour_degrees[j]} (< 1)")
        weights[j] = 1.0 / (1 + max(own_degree, neighbour_degrees[j]))
    # Summed in ascending id order, so the global matrix below gets bit-identical rows.
    return 1.0 - sum(weights.values()), weights


def mixing_matrix(overlay: nx.Graph, nodes: Sequence[int]) -> np.ndarray:
    """The Metropolis–Hastings mixing matrix of ``overlay``, rows and columns in ``nodes`` order.

    Built row by row from :func:`mh_weights_local`, so it equals what the agents compute
    locally. A node of ``nodes`` absent from the overlay keeps its own value (identity row).

    Raises:
        ValueError: ``nodes`` repeats a node or leaves out a node of the overlay.
    """
    index = {node: i for i, node in enumerate(nodes)}
    if len(index) != len(nodes):
        raise ValueError("nodes must not repeat")
    missing = set(overlay.nodes) - index.keys()
    if missing:
        raise ValueError(f"overlay nodes {sorted(missing)} are missing from nodes")
    matrix = np.eye(len(nodes), dtype=np.float64)
    for node in overlay.nodes:
        degrees = {j: overlay.degree(j) for j in overlay.adj[node]}
        self_weight, weights = mh_weights_local(overlay.degree(node), degrees)
        row = index[node]
        matrix[row, row] = self_weight
        for j, w in weights.items():
            matrix[row, index[j]] = w
    return matrix
