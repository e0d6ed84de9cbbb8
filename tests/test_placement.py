"""Placement of agents on processes (topology/placement.py): balanced sizes, hand-counted cut
edges, the partitioner beating blocks on a graph whose ids do not follow its structure."""

from __future__ import annotations

import networkx as nx
import pytest

from parsefl.errors import ConfigError
from parsefl.registry import PLACEMENTS
from parsefl.topology.placement import cut_edges, cut_share, place


def _two_cliques() -> nx.Graph:
    """Two 4-cliques {0,2,4,6} and {1,3,5,7} joined by the edge (6, 7): ids interleaved, so
    contiguous blocks cut the cliques apart."""
    g = nx.Graph()
    for part in ([0, 2, 4, 6], [1, 3, 5, 7]):
        g.add_edges_from((u, v) for k, u in enumerate(part) for v in part[k + 1:])
    g.add_edge(6, 7)
    return g


def test_block_and_round_robin_on_a_ring_cut_what_a_hand_count_says():
    ring = nx.cycle_graph(8)
    assert place("block", ring, 2) == [0, 0, 0, 0, 1, 1, 1, 1]
    assert cut_edges(ring, place("block", ring, 2)) == 2  # (3, 4) and (7, 0)
    assert cut_share(ring, place("block", ring, 2)) == 0.25
    assert place("round_robin", ring, 2) == [0, 1] * 4
    assert cut_share(ring, place("round_robin", ring, 2)) == 1.0  # every edge crosses
    assert place("block", nx.cycle_graph(5), 2) == [0, 0, 0, 1, 1]  # rank 0 gets one more
    assert place("auto", ring, 2) == place("block", ring, 2)


def test_partition_keeps_the_cliques_together_and_auto_picks_it():
    g = _two_cliques()
    # blocks {0..3}, {4..7}: each clique loses 2 x 2 edges; the bridge (6, 7) stays inside
    assert cut_edges(g, place("block", g, 2)) == 8
    owner = place("partition", g, 2)
    assert cut_edges(g, owner) == 1  # only the bridge (6, 7)
    assert sorted(owner.count(r) for r in range(2)) == [4, 4]
    assert place("auto", g, 2) == owner
    assert place("partition", g, 2) == owner  # seeded: the same every time


@pytest.mark.parametrize("name", sorted(PLACEMENTS.names()))
def test_every_placement_is_balanced_on_three_processes(name):
    g = nx.random_regular_graph(4, 20, seed=1)
    owner = place(name, g, 3)
    assert sorted(owner.count(r) for r in range(3)) == [6, 7, 7]


def test_bad_names_and_process_counts_are_one_line_errors():
    with pytest.raises(ConfigError, match="unknown placement 'nope'; choose one of: auto, "
                                          "block, partition, round_robin"):
        place("nope", nx.cycle_graph(4), 2)
    with pytest.raises(ConfigError, match="1 <= processes <= agents"):
        place("block", nx.cycle_graph(4), 5)
