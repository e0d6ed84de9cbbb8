"""Per-neighbour trust that remembers who lied: the state of a screening aggregator.

Trust ``t_ij`` in [0, 1] is what receiver ``i`` grants sender ``j`` (1 at the start). Every
round in which a copy from ``j`` reached ``i``, the pair is *penalised* if any of those copies
was rejected by the screen or clipped hard by the inner rule; at the round's end
``t <- decay * t`` for a penalised pair, ``t <- min(1, t + recover)`` for the others. So ``k``
penalised rounds from full trust leave ``decay^k``, and ``m`` clean rounds after them
``min(1, decay^k + m * recover)``: trust is lost fast and earned back slowly. Updates wait for
the round's end so that every component of a round sees the same trust, in whatever order
a backend merges them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from parsefl.errors import ConfigError

Pair = tuple[int, int]  # (receiver, sender)


class Reputation:
    """Trust per (receiver, sender) pair, with the round's observations pending."""

    def __init__(self, decay: float, recover: float) -> None:
        if not 0 <= decay < 1:
            raise ConfigError("aggregation.params.decay", f"expected 0 <= decay < 1, got {decay}")
        if not 0 < recover <= 1:
            raise ConfigError("aggregation.params.recover",
                              f"expected 0 < recover <= 1, got {recover}")
        self.decay, self.recover = float(decay), float(recover)
        self.trust: dict[Pair, float] = {}
        self._seen: dict[Pair, bool] = {}  # this round: pair -> penalised

    def of(self, receiver: int, sender: int) -> float:
        return self.trust.get((receiver, sender), 1.0)

    def observe(self, pairs: Iterable[Pair], penalised: Iterable[bool]) -> None:
        """Copies from ``pairs`` arrived this round; ``penalised``: which were rejected or
        clipped hard (a pair with several copies is penalised if any of them was)."""
        for pair, bad in zip(pairs, penalised, strict=True):
            self._seen[pair] = self._seen.get(pair, False) or bool(bad)

    def end_round(self) -> None:
        """Apply this round's observations."""
        for pair, bad in self._seen.items():
            t = self.of(*pair)
            self.trust[pair] = t * self.decay if bad else min(1.0, t + self.recover)
        self._seen = {}

    def state(self) -> dict[str, Any]:
        """JSON-able: ``{"trust": [[receiver, sender, t], ...]}`` sorted by pair."""
        return {"trust": [[i, j, t] for (i, j), t in sorted(self.trust.items())]}

    def load(self, state: dict[str, Any]) -> None:
        """Take back :meth:`state` (a checkpoint's, verified by its manifest; still bounded:
        ids must be ints and trust finite in [0, 1])."""
        trust = {}
        for row in state.get("trust", []):
            i, j, t = row
            if not (isinstance(i, int) and isinstance(j, int) and isinstance(t, float | int)
                    and math.isfinite(t) and 0 <= t <= 1):
                raise ValueError(f"bad trust entry {row!r}")
            trust[i, j] = float(t)
        self.trust, self._seen = trust, {}
