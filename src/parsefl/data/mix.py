"""The agent mix: which modality subset each agent holds, written as ``{"fou+pix": 4, ...}``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Integral

from parsefl.errors import ConfigError

SEPARATOR = "+"


def group_name(modalities: Sequence[str]) -> str:
    """The mix key of a modality subset, e.g. ``("fou", "pix") -> "fou+pix"``."""
    return SEPARATOR.join(modalities)


def _parse_key(key: object, modalities: Sequence[str]) -> tuple[str, ...]:
    """The canonical-order modality tuple written as ``key``."""
    field = f"mix.{key}"
    if not isinstance(key, str):
        raise ConfigError(field, f"a key must be modalities joined by '+', got {key!r}")
    parts = [part.strip() for part in key.split(SEPARATOR)]
    if any(not part for part in parts):
        raise ConfigError(
            field,
            f"empty modality name in {key!r}; write modalities joined by '+', "
            f"e.g. {group_name(modalities[:2])!r}",
        )
    for part in parts:
        if part not in modalities:
            raise ConfigError(field, f"unknown modality {part!r}; allowed: {', '.join(modalities)}")
    if len(set(parts)) != len(parts):
        raise ConfigError(field, f"a modality is repeated in {key!r}")
    return tuple(m for m in modalities if m in parts)


def _parse_count(key: object, count: object) -> int:
    if isinstance(count, bool) or not isinstance(count, Integral) or count < 0:
        raise ConfigError(
            f"mix.{key}", f"agent count must be a non-negative integer, got {count!r}"
        )
    return int(count)


def parse_mix(mix: Mapping[str, int], modalities: Sequence[str]) -> list[tuple[str, ...]]:
    """Expand a mix into one modality tuple per agent.

    Args:
        mix: Modality subset (names joined by ``+``) -> number of agents holding it,
            e.g. ``{"fou": 4, "pix": 4, "fou+pix": 4}``. Counts of 0 are allowed and skipped.
        modalities: The dataset's modalities in canonical order.

    Returns:
        One tuple per agent, agents in the mapping's order, each tuple in canonical order.

    Raises:
        ConfigError: On field ``mix`` (empty mix, no agents) or ``mix.<key>`` (bad subset,
            unknown or repeated modality, bad count, subset given twice).
    """
    if not mix:
        raise ConfigError(
            "mix", f"empty; give modality subsets and agent counts, e.g. {{{modalities[0]!r}: 2}}"
        )
    seen: dict[tuple[str, ...], str] = {}
    agents: list[tuple[str, ...]] = []
    for key, count in mix.items():
        subset = _parse_key(key, modalities)
        n_agents = _parse_count(key, count)
        if subset in seen:
            # "pix+fou" and "fou+pix" are one group; two entries would be ambiguous.
            raise ConfigError(f"mix.{key}", f"same modality subset as {seen[subset]!r}")
        seen[subset] = key
        agents.extend([subset] * n_agents)
    if not agents:
        raise ConfigError("mix", "every agent count is 0; at least one agent is needed")
    return agents
