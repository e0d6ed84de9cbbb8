"""Physical graphs: every registered topology's contract, exact small cases, and config errors."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest

from parsefl.errors import ConfigError
from parsefl.registry import TOPOLOGIES
from parsefl.topology import GraphSchedule, build_topology
from parsefl.topology.graphs import StaticGraph

RANDOM = ["erdos_renyi", "random_matching", "random_regular", "small_world", "uneven"]
UNION_ROUNDS = range(20)


def ring_file(tmp_path: Path, n: int) -> Path:
    """An edge-list file of the n-ring, with a comment and a blank line thrown in."""
    path = tmp_path / f"ring{n}.txt"
    lines = ["# a ring", ""] + [f"{i} {(i + 1) % n}  # edge {i}" for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def build(name: str, n: int, seed: int, tmp_path: Path) -> GraphSchedule:
    params = {"path": str(ring_file(tmp_path, n))} if name == "edge_list" else {}
    return build_topology(name, n, seed, params)


def edge_set(graph: nx.Graph) -> set[tuple[int, int]]:
    return {(min(u, v), max(u, v)) for u, v in graph.edges()}


def union(schedule: GraphSchedule, rounds: range) -> nx.Graph:
    graph = nx.empty_graph(schedule.n)
    for r in rounds:
        graph.add_edges_from(schedule.at(r).edges())
    return graph


@pytest.mark.parametrize("n", [4, 7, 12])
@pytest.mark.parametrize("name", TOPOLOGIES.names())
def test_every_topology_is_connected_on_agents_0_to_n(name: str, n: int, tmp_path: Path) -> None:
    schedule = build(name, n, seed=3, tmp_path=tmp_path)
    assert schedule.n == n
    graph = schedule.at(0)
    assert list(graph.nodes) == list(range(n))
    assert nx.number_of_selfloops(graph) == 0
    if schedule.static:
        assert schedule.at(5) is graph
        assert nx.is_connected(graph)
    else:
        assert nx.is_connected(union(schedule, UNION_ROUNDS))


@pytest.mark.parametrize("name", TOPOLOGIES.names())
def test_same_seed_gives_same_graphs(name: str, tmp_path: Path) -> None:
    first, second = build(name, 12, 7, tmp_path), build(name, 12, 7, tmp_path)
    assert first.static == second.static
    for r in range(3):
        assert edge_set(first.at(r)) == edge_set(second.at(r))


@pytest.mark.parametrize("name", RANDOM)
def test_random_topologies_depend_on_seed(name: str) -> None:
    graphs = {frozenset(edge_set(build_topology(name, 12, s, {}).at(0))) for s in range(4)}
    assert len(graphs) > 1


def test_graphs_are_frozen() -> None:
    graph = build_topology("ring", 4, 0, {}).at(0)
    with pytest.raises(nx.NetworkXError):
        graph.add_edge(0, 2)


def degrees(name: str, n: int, params: dict | None = None) -> list[int]:
    graph = build_topology(name, n, 0, params or {}).at(0)
    return [graph.degree(v) for v in range(n)]


def test_exact_degrees_of_ring_star_complete() -> None:
    assert degrees("ring", 6) == [2] * 6
    assert edge_set(build_topology("ring", 2, 0, {}).at(0)) == {(0, 1)}
    assert degrees("star", 6) == [5, 1, 1, 1, 1, 1]
    assert degrees("complete", 6) == [5] * 6


def test_torus_of_12_is_3_by_4() -> None:
    graph = build_topology("torus", 12, 0, {}).at(0)
    assert [graph.degree(v) for v in range(12)] == [4] * 12
    # Agent r*4 + c sits at (r, c): 5 = (1, 1) links to (1, 0), (1, 2), (0, 1), (2, 1).
    assert sorted(graph.adj[5]) == [1, 4, 6, 9]
    # The wrap-around links the first and last column, and the first and last row.
    assert graph.has_edge(0, 3) and graph.has_edge(0, 8)


def test_torus_of_prime_n_is_a_ring_and_rows_must_divide() -> None:
    assert edge_set(build_topology("torus", 7, 0, {}).at(0)) == edge_set(nx.cycle_graph(7))
    assert degrees("torus", 12, {"rows": 2}) == [3] * 12
    with pytest.raises(ConfigError) as err:
        build_topology("torus", 12, 0, {"rows": 5})
    assert err.value.field == "topology.params.rows"


def test_chordal_ring_chords() -> None:
    graph = build_topology("chordal_ring", 8, 0, {}).at(0)
    assert edge_set(graph) == edge_set(nx.cycle_graph(8)) | {(0, 4), (1, 5), (2, 6), (3, 7)}
    assert degrees("chordal_ring", 9, {"chord": 3}) == [4] * 9
    with pytest.raises(ConfigError) as err:
        build_topology("chordal_ring", 8, 0, {"chord": 7})
    assert err.value.field == "topology.params.chord"


def test_random_regular_degrees_and_parity() -> None:
    assert degrees("random_regular", 12) == [3] * 12
    assert degrees("random_regular", 7) == [4] * 7  # n*3 odd, so the default steps up to 4
    assert degrees("random_regular", 10, {"degree": 5}) == [5] * 10
    with pytest.raises(ConfigError, match="must be even") as err:
        build_topology("random_regular", 7, 0, {"degree": 3})
    assert err.value.field == "topology.params.degree"


def test_erdos_renyi_gives_up_with_a_hint() -> None:
    with pytest.raises(ConfigError, match="stayed disconnected.*larger p") as err:
        build_topology("erdos_renyi", 12, 0, {"p": 0.0})
    assert err.value.field == "topology.params.p"


def test_uneven_is_a_tree_with_a_hub() -> None:
    graph = build_topology("uneven", 12, 0, {}).at(0)
    assert nx.is_tree(graph)
    assert max(d for _, d in graph.degree()) >= 3


def test_random_matching_rounds_are_distinct_matchings() -> None:
    schedule = build_topology("random_matching", 7, 1, {})
    assert not schedule.static
    rounds = [edge_set(schedule.at(r)) for r in range(10)]
    for r in range(10):
        graph = schedule.at(r)
        assert max(d for _, d in graph.degree()) == 1
        assert graph.number_of_edges() == 3  # maximal: only one of 7 agents is left out
        assert not nx.is_connected(graph)
    assert len({frozenset(e) for e in rounds}) > 5
    assert edge_set(schedule.at(3)) == rounds[3]  # asking again gives the same round


def test_unknown_name_lists_choices() -> None:
    with pytest.raises(ConfigError) as err:
        build_topology("hypercube", 8, 0, {})
    assert err.value.field == "topology.name"
    assert "ring" in err.value.problem and "erdos_renyi" in err.value.problem


def test_unknown_and_missing_params() -> None:
    with pytest.raises(ConfigError, match="allowed: degree") as err:
        build_topology("random_regular", 8, 0, {"d": 3})
    assert err.value.field == "topology.params.d"
    with pytest.raises(ConfigError, match="allowed: none") as err:
        build_topology("ring", 8, 0, {"chord": 2})
    assert err.value.field == "topology.params.chord"
    with pytest.raises(ConfigError, match="missing") as err:
        build_topology("edge_list", 8, 0, {})
    assert err.value.field == "topology.params.path"


@pytest.mark.parametrize(
    ("name", "n", "params", "field"),
    [
        ("ring", 1, {}, "mix"),
        ("small_world", 2, {}, "mix"),
        ("small_world", 12, {"k": 3}, "topology.params.k"),
        ("erdos_renyi", 12, {"p": 1.5}, "topology.params.p"),
        ("erdos_renyi", 12, {"p": "high"}, "topology.params.p"),
        ("uneven", 12, {"m": 12}, "topology.params.m"),
        ("random_regular", 12, {"degree": True}, "topology.params.degree"),
    ],
)
def test_bad_values_name_their_field(name: str, n: int, params: dict, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_topology(name, n, 0, params)
    assert err.value.field == field


def test_negative_seed_is_rejected() -> None:
    with pytest.raises(ConfigError) as err:
        build_topology("ring", 4, -1, {})
    assert err.value.field == "seed"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("0 1\n1 x\n", ":2: bad token 'x'"),
        ("0 1\n\n# c\n1 9\n", ":4: node 9 out of range 0..3"),
        ("0 1\n2 2\n", ":2: self loop on node 2"),
        ("0 1 2\n", ":1: expected two agent ids"),
        ("0 1\n1 2\n", "agents 3 have no edges"),
        ("0 1\n2 3\n", "disconnected (2 components)"),
    ],
)
def test_edge_list_errors_name_file_and_line(text: str, problem: str, tmp_path: Path) -> None:
    path = tmp_path / "edges.txt"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        build_topology("edge_list", 4, 0, {"path": str(path)})
    assert err.value.field == "topology.params.path"
    assert f"{path}" in err.value.problem
    assert problem in err.value.problem


def test_edge_list_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read edge list") as err:
        build_topology("edge_list", 4, 0, {"path": str(tmp_path / "nope.txt")})
    assert err.value.field == "topology.params.path"


def test_static_graph_requires_nodes_0_to_n() -> None:
    with pytest.raises(ValueError, match="exactly 0..1"):
        StaticGraph(nx.Graph([(1, 2)]))
