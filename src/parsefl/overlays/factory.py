"""The configured overlay: the registered kind ``overlay.name`` with its hops and degree, and
the global reference form of its overlay on one component's holders (what the agents'
handshake must agree with)."""

from __future__ import annotations

from collections.abc import Iterable

import networkx as nx

from parsefl.errors import ConfigError
from parsefl.overlays.base import Overlay
from parsefl.registry import OVERLAYS
from parsefl.topology.overlays import check_hops


def make_overlay(kind: str, hops: int = 2, degree: int = 2) -> Overlay:
    """The registered overlay class ``kind`` (``parsefl.overlays``), configured.

    Raises:
        ConfigError: ``overlay.name`` is unknown or ``overlay.hops`` is not an integer >= 1.
    """
    cls = OVERLAYS.get(kind, field="overlay.name")
    try:
        hops = check_hops(hops)
    except ValueError as exc:
        raise ConfigError("overlay.hops", str(exc)) from None
    return cls(hops=hops, degree=degree)


def build_overlay(
    kind: str, graph: nx.Graph, holders: Iterable[int], hops: int, degree: int = 2
) -> nx.Graph:
    """The global reference form of the overlay of registered kind ``kind`` on ``holders``
    of one component (what the agents' handshake must agree with).

    Raises:
        ConfigError: ``overlay.name`` is unknown or ``overlay.hops`` is not an integer >= 1.
    """
    return make_overlay(kind, hops, degree).build(graph, holders)
