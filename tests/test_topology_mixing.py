"""Metropolis–Hastings weights: hand-computed cases and double stochasticity everywhere."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from parsefl.overlays import build_overlay
from parsefl.registry import OVERLAYS, TOPOLOGIES
from parsefl.topology import build_topology, mh_weights_local, mixing_matrix


def test_local_weights_by_hand() -> None:
    self_w, weights = mh_weights_local(1, {1: 2})
    assert self_w == pytest.approx(2 / 3) and weights == pytest.approx({1: 1 / 3})
    self_w, weights = mh_weights_local(2, {0: 1, 2: 1})
    assert self_w == pytest.approx(1 / 3) and weights == pytest.approx({0: 1 / 3, 2: 1 / 3})
    self_weight, weights = mh_weights_local(3, {5: 1, 2: 4, 7: 3})
    assert list(weights) == [2, 5, 7]  # ascending ids: sums are order-stable
    assert weights == pytest.approx({2: 1 / 5, 5: 1 / 4, 7: 1 / 4})
    assert self_weight == pytest.approx(1 - 1 / 5 - 1 / 2)
    assert mh_weights_local(0, {}) == (1.0, {})


def test_local_weights_reject_inconsistent_degrees() -> None:
    with pytest.raises(ValueError, match="below the number of neighbours"):
        mh_weights_local(1, {1: 1, 2: 1})
    with pytest.raises(ValueError, match="reported degree 0"):
        mh_weights_local(1, {1: 0})


def test_path_graph_matrix_by_hand() -> None:
    expected = np.array([[2 / 3, 1 / 3, 0], [1 / 3, 1 / 3, 1 / 3], [0, 1 / 3, 2 / 3]])
    np.testing.assert_allclose(mixing_matrix(nx.path_graph(3), [0, 1, 2]), expected)


def test_three_ring_matrix_by_hand() -> None:
    np.testing.assert_allclose(mixing_matrix(nx.cycle_graph(3), [0, 1, 2]), np.full((3, 3), 1 / 3))


def test_node_order_and_non_members() -> None:
    overlay = nx.Graph([(4, 7)])
    matrix = mixing_matrix(overlay, [7, 1, 4])
    np.testing.assert_allclose(matrix, [[0.5, 0, 0.5], [0, 1, 0], [0.5, 0, 0.5]])
    assert matrix.dtype == np.float64
    with pytest.raises(ValueError, match="missing"):
        mixing_matrix(overlay, [4])
    with pytest.raises(ValueError, match="repeat"):
        mixing_matrix(overlay, [4, 7, 4])


@pytest.mark.parametrize("kind", OVERLAYS.names())
@pytest.mark.parametrize("name", [n for n in TOPOLOGIES.names() if n != "edge_list"])
def test_doubly_stochastic_on_every_topology(name: str, kind: str) -> None:
    n = 12
    schedule = build_topology(name, n, 5, {})
    rng = np.random.default_rng(len(name))
    for r in range(2):
        graph = schedule.at(r)
        for size in (2, 6, n):
            holders = sorted(rng.choice(n, size=size, replace=False).tolist())
            overlay = build_overlay(kind, graph, holders, hops=2)
            matrix = mixing_matrix(overlay, holders)
            np.testing.assert_array_equal(matrix, matrix.T)
            assert (matrix >= 0).all()
            np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-12)
            np.testing.assert_allclose(matrix.sum(axis=0), 1.0, atol=1e-12)
            # The global matrix is exactly what each holder computes from its neighbours.
            for i, u in enumerate(holders):
                own, weights = mh_weights_local(
                    overlay.degree(u), {v: overlay.degree(v) for v in overlay.adj[u]}
                )
                assert matrix[i, i] == own
                assert all(matrix[i, holders.index(v)] == w for v, w in weights.items())
