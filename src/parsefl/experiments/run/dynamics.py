"""The ``dynamics:`` section of a config as round-engine schedules: modalities that come and
go, agents that join, leave or drop out for a round, and stragglers' local steps. Checked here
against the mix (agent ids, held modalities), with one-line errors naming the field."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from parsefl.config import DynamicsConfig, RunConfig
from parsefl.errors import ConfigError
from parsefl.runtime.schedules import (
    MembershipSchedule,
    ModalitySchedule,
    ScheduledMembership,
    ScheduledModalities,
    draw,
)

if TYPE_CHECKING:
    from parsefl.runtime.protocols import Engine

StepsFn = Callable[[int, int], int | None]


def dynamic(cfg: RunConfig) -> bool:
    """Whether anything in ``cfg.dynamics`` changes over the run."""
    return cfg.dynamics != DynamicsConfig()


def build_schedules(cfg: RunConfig, groups: Sequence[tuple[str, ...]]
                    ) -> tuple[ModalitySchedule | None, MembershipSchedule | None,
                               StepsFn | None]:
    """(modality schedule, membership schedule, local steps per (agent, round)); None where
    the config asks for nothing (the engine's constant default)."""
    dyn = cfg.dynamics
    seed = cfg.seed if dyn.seed is None else dyn.seed
    n = len(groups)
    mods = membership = steps = None
    if dyn.modalities.events or dyn.modalities.outage:
        events = []
        for k, e in enumerate(dyn.modalities.events):
            where = f"dynamics.modalities.events.{k}"
            _check_agent(f"{where}.agent", e.agent, n)
            if e.modality not in groups[e.agent]:
                raise ConfigError(f"{where}.modality", f"agent {e.agent} holds "
                                  f"{list(groups[e.agent])}, got {e.modality!r}")
            if e.regain is not None and e.regain <= e.lose:
                raise ConfigError(f"{where}.regain", f"must be after lose ({e.lose}), "
                                  f"got {e.regain}")
            events.append((e.agent, e.modality, e.lose, e.regain))
        _check_not_empty(events, groups)
        mods = ScheduledModalities(dict(enumerate(groups)), events, dyn.modalities.outage, seed)
    m = dyn.membership
    if m.offline or m.join or m.leave:
        for name, table in (("join", m.join), ("leave", m.leave)):
            for agent in table:
                _check_agent(f"dynamics.membership.{name}", agent, n)
        membership = ScheduledMembership(range(n), m.offline, m.join, m.leave, seed)
    if dyn.local_steps:
        steps = _steps(dyn.local_steps, groups, seed)
    return mods, membership, steps


def _check_agent(field: str, agent: int, n: int) -> None:
    if not 0 <= agent < n:
        raise ConfigError(field, f"agent ids are 0..{n - 1}, got {agent}")


def _check_not_empty(events: list, groups: Sequence[tuple[str, ...]]) -> None:
    """Refuse events that leave an agent with no modality at some round."""
    for i, g in enumerate(groups):
        mine = [e for e in events if e[0] == i]
        for r in sorted({e[2] for e in mine}):
            out = {m for (_, m, lose, back) in mine if lose <= r and (back is None or r < back)}
            if out >= set(g):
                raise ConfigError("dynamics.modalities.events", f"agent {i} would hold no "
                                  f"modality from round {r}; keep at least one")


def _steps(spec: dict[str, int], groups: Sequence[tuple[str, ...]], seed: int) -> StepsFn:
    """Local steps per group ({"a+b": 2, ...}; groups not named keep train.local_steps), or
    drawn per agent and round, uniformly from {min..max} ({min: 1, max: 4})."""
    names = {"+".join(g) for g in groups}
    if set(spec) == {"min", "max"}:
        lo, hi = spec["min"], spec["max"]
        if not 1 <= lo <= hi:
            raise ConfigError("dynamics.local_steps", f"need 1 <= min <= max, got {spec}")
        return lambda i, r: lo + int(draw(seed, 3, i, r) * (hi - lo + 1))
    for key, value in spec.items():
        if key not in names:
            raise ConfigError(f"dynamics.local_steps.{key}", "expected a group of the mix "
                              f"({', '.join(sorted(names))}) or min/max")
        if value < 1:
            raise ConfigError(f"dynamics.local_steps.{key}", f"must be >= 1, got {value}")
    by_agent = [spec.get("+".join(g)) for g in groups]
    return lambda i, r: by_agent[i]


def dynamics_record(cfg: RunConfig, loop: Engine, n_agents: int) -> dict | None:
    """results.json's ``dynamics``: each agent's timeline (the rounds where what it holds or
    whether it is online changed) and, for the vectorized backend, what it runs differently."""
    if not dynamic(cfg):
        return None
    held, online = loop.modalities, loop.membership
    timeline: dict[str, list[dict]] = {}
    for i in range(n_agents):
        last = None
        for r in range(cfg.rounds):
            now = (list(held.at(r).get(i, ())), i in online.at(r))
            if now != last:
                timeline.setdefault(str(i), []).append(
                    {"round": r, "modalities": now[0], "online": now[1]})
                last = now
    # None since the stacked optimizer keeps a step count per agent (the key stays for readers
    # of older results: it said the shared Adam step counter advanced for masked rows).
    return {"timeline": timeline, "executor": loop.executor.backend_name,
            "vectorized_note": None}
