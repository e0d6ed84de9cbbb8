"""The overlay interface the capability handshake calls.

An overlay kind decides, per component, which holders of it average together: how far an
agent's capability discovery reaches (:attr:`Overlay.radius`), which of the holders it learned
of it links to (:meth:`Overlay.choose`), and whether one-sided choices are made symmetric by a
link exchange (:attr:`Overlay.symmetrize`). :meth:`Overlay.build` is the global reference form
of the same rule (tests check that the handshake agrees with it). A new overlay is one file
in this package with one ``@OVERLAYS.register`` class and one import line in ``__init__``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import ClassVar

import networkx as nx

from parsefl.types import HopPath


class Overlay:
    """Configured from ``overlay.hops`` and ``overlay.degree`` (a kind may ignore either)."""

    name: ClassVar[str] = "base"
    # True: each agent's choice is one-sided, so the handshake tells every chosen peer it
    # was chosen and each side adds whoever chose it (MH weights need symmetric links).
    symmetrize: ClassVar[bool] = False

    def __init__(self, hops: int = 2, degree: int = 2) -> None:
        self.hops = hops
        self.degree = degree

    @property
    def radius(self) -> int:
        """How many forwarding steps capability discovery takes (peers within that many hops
        are known, with a physical path to each)."""
        return self.hops

    def choose(self, candidates: Mapping[int, HopPath]) -> dict[int, HopPath]:
        """Which of the known holders of a component (peer -> physical path me..peer, the
        strategy already agreed) this agent links to. Default: all of them."""
        return dict(candidates)

    def select(self, me: int, candidates: Mapping[int, HopPath],
               graph: nx.Graph | None) -> dict[int, HopPath]:
        """What the handshake calls: :meth:`choose`, given also the asking agent and the
        physical graph (which every process already has) for kinds that need them."""
        return self.choose(candidates)

    def build(self, graph: nx.Graph, holders: Iterable[int]) -> nx.Graph:
        """The global overlay on ``holders``: an ``nx.Graph`` whose edges carry ``path``
        (physical nodes from the smaller endpoint to the larger one)."""
        raise NotImplementedError
