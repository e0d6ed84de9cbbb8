"""The ``edge_list`` topology: a physical graph read from a text file of ``u v`` lines."""

from __future__ import annotations

import os
from pathlib import Path

import networkx as nx

from parsefl.errors import ConfigError
from parsefl.registry import TOPOLOGIES
from parsefl.topology.graphs import GraphSchedule, StaticGraph, check_n, param_field

_FIELD = param_field("path")


@TOPOLOGIES.register("edge_list", "graph read from a text file of 'u v' lines (param path)")
def edge_list(n: int, seed: int, *, path: str) -> GraphSchedule:
    """Graph read from ``path``: one ``u v`` pair of agent ids (0..n-1) per line.

    Blank lines and ``#`` comments (whole-line or trailing) are ignored; a repeated edge
    counts once. ``seed`` is unused.

    Raises:
        ConfigError: On ``topology.params.path``: the file cannot be read, a line is not two
            integers, a node is out of range, a line is a self loop (each naming file and
            line), or the graph leaves some agent unreachable (naming the file).
    """
    n = check_n(n)
    if not isinstance(path, str | os.PathLike):
        raise ConfigError(_FIELD, f"must be a file path, got {path!r}")
    graph = nx.empty_graph(n)
    graph.add_edges_from(read_edge_list(path, n))
    if not nx.is_connected(graph):
        raise ConfigError(_FIELD, f"{path}: {_describe_disconnection(graph)}")
    return StaticGraph(graph)


def read_edge_list(path: str | Path, n: int) -> list[tuple[int, int]]:
    """The edges listed in ``path``, validated against ``n`` agents (see :func:`edge_list`)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(_FIELD, f"cannot read edge list {path}: {exc}") from exc
    edges = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        content = raw.split("#", 1)[0].strip()
        if content:
            edges.append(_parse_line(content, f"{path}:{lineno}", n))
    return edges


def _parse_line(content: str, where: str, n: int) -> tuple[int, int]:
    """One ``u v`` line as a pair of agent ids; ``where`` is ``file:line`` for messages."""
    tokens = content.split()
    if len(tokens) != 2:
        raise ConfigError(_FIELD, f"{where}: expected two agent ids 'u v', got {content!r}")
    nodes = []
    for token in tokens:
        try:
            node = int(token)
        except ValueError:
            raise ConfigError(
                _FIELD, f"{where}: bad token {token!r}, agent ids must be integers"
            ) from None
        if not 0 <= node < n:
            raise ConfigError(_FIELD, f"{where}: node {node} out of range 0..{n - 1}")
        nodes.append(node)
    u, v = nodes
    if u == v:
        raise ConfigError(_FIELD, f"{where}: self loop on node {u}")
    return u, v


def _describe_disconnection(graph: nx.Graph) -> str:
    """Which agents a disconnected graph leaves out, for the error message."""
    isolated = sorted(nx.isolates(graph))
    if isolated:
        shown = ", ".join(map(str, isolated[:10])) + (", ..." if len(isolated) > 10 else "")
        return (
            f"agents {shown} have no edges (every agent 0..{graph.number_of_nodes() - 1} needs one)"
        )
    parts = sorted((sorted(c) for c in nx.connected_components(graph)), key=lambda c: c[0])
    return (
        f"the graph is disconnected ({len(parts)} components); "
        f"e.g. agent {parts[1][0]} cannot reach agent 0"
    )
