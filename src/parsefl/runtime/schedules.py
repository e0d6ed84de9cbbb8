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


def draw(seed: int, *key: int) -> float:
    """A uniform draw in [0, 1) that depends only on (seed, key): the same in every process
    and for every round order, so that schedules need no shared state."""
    import numpy as np

    return float(np.random.default_rng([seed & 0xFFFFFFFF, *key]).random())


class ScheduledModalities(ModalitySchedule):
    """Modalities that come and go: ``events`` (agent, modality, lose, regain) remove a
    modality from round ``lose`` until round ``regain`` (None: for good), and each (agent,
    modality) is also out for a round with probability ``outage`` (seeded per round). A random
    outage never takes an agent's last modality (the one drawn least out stays)."""

    def __init__(self, base: Mapping[int, Iterable[str]],
                 events: Iterable[tuple[int, str, int, int | None]] = (),
                 outage: float = 0.0, seed: int = 0) -> None:
        self._base = {i: tuple(m) for i, m in base.items()}
        self._events = list(events)
        self._outage, self._seed = float(outage), seed
        self._memo: dict[int, dict[int, tuple[str, ...]]] = {}

    def at(self, round: int) -> Mapping[int, tuple[str, ...]]:
        if round not in self._memo:
            self._memo[round] = {i: self._held(i, mods, round) for i, mods in self._base.items()}
        return self._memo[round]

    def _held(self, i: int, mods: tuple[str, ...], r: int) -> tuple[str, ...]:
        out = {m for (a, m, lose, back) in self._events
               if a == i and lose <= r and (back is None or r < back)}
        held = tuple(m for m in mods if m not in out)
        if not self._outage or not held:
            return held
        draws = {m: draw(self._seed, 1, i, k, r) for k, m in enumerate(mods) if m in held}
        kept = tuple(m for m in held if draws[m] >= self._outage)
        return kept or (max(draws, key=draws.__getitem__),)


class ScheduledMembership(MembershipSchedule):
    """Agents that come and go: ``join[i] = t`` (offline before round t, warm-started from its
    neighbours when it joins), ``leave[i] = t`` (offline from round t on, for good), and every
    agent offline for a round with probability ``offline`` (seeded per round)."""

    def __init__(self, agents: Iterable[int], offline: float = 0.0,
                 join: Mapping[int, int] | None = None, leave: Mapping[int, int] | None = None,
                 seed: int = 0) -> None:
        self._agents = sorted(agents)
        self._offline, self._seed = float(offline), seed
        self._join, self._leave = dict(join or {}), dict(leave or {})
        self._memo: dict[int, frozenset[int]] = {}

    def at(self, round: int) -> frozenset[int]:
        if round not in self._memo:
            self._memo[round] = frozenset(i for i in self._agents if self._online(i, round))
        return self._memo[round]

    def _online(self, i: int, r: int) -> bool:
        if r < self._join.get(i, 0) or r >= self._leave.get(i, 1 << 62):
            return False
        return not self._offline or draw(self._seed, 2, i, r) >= self._offline
