"""Schedules: what may change between rounds, as inputs of the round engine.

Three schedules describe time in a run: the physical graph (``topology.GraphSchedule``), which
modalities each agent holds (:class:`ModalitySchedule`) and which agents are online
(:class:`MembershipSchedule`). Each says, through ``key(round)``, when its answer changes: the
engine re-runs the capability handshake (discovery and plans) whenever one of the keys does.
Only constant schedules live here; time-varying ones are one class each.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping


class ModalitySchedule:
    """Which modalities each agent holds in a round."""

    def at(self, round: int) -> Mapping[int, tuple[str, ...]]:
        """Agent id -> the modalities it holds in round ``round`` (0-based)."""
        raise NotImplementedError

    def key(self, round: int) -> Hashable:
        """Equal for two rounds whenever :meth:`at` is (default: the assignment itself)."""
        return tuple(sorted(self.at(round).items()))


class ConstantModalities(ModalitySchedule):
    """Every agent holds the same modalities in every round."""

    def __init__(self, held: Mapping[int, Iterable[str]]) -> None:
        self._held = {i: tuple(m) for i, m in held.items()}

    def at(self, round: int) -> Mapping[int, tuple[str, ...]]:
        return self._held

    def key(self, round: int) -> Hashable:
        return 0


class MembershipSchedule:
    """Which agents are online in a round (offline ones take no part in the handshake)."""

    def at(self, round: int) -> frozenset[int]:
        """The ids of the agents online in round ``round`` (0-based)."""
        raise NotImplementedError

    def key(self, round: int) -> Hashable:
        """Equal for two rounds whenever :meth:`at` is (default: the set itself)."""
        return self.at(round)


class AlwaysOnline(MembershipSchedule):
    """Every agent is online in every round."""

    def __init__(self, agents: Iterable[int]) -> None:
        self._online = frozenset(agents)

    def at(self, round: int) -> frozenset[int]:
        return self._online

    def key(self, round: int) -> Hashable:
        return 0
