"""The agent mix: which modality subset each agent holds.

Two forms (config field ``mix``):

* counts: ``{"fou": 6, "pix": 2, "fou+pix": 4}`` -- agents per modality subset, in the
  mapping's order (this also covers unbalanced groups);
* ratio: ``{"ratio": 0.25, "n_agents": 12, "modalities": ["fou", "pix"]}`` -- ``round(rho*N)``
  multimodal agents holding all listed modalities (``modalities`` defaults to all of the
  dataset's), the other agents unimodal, split as evenly as possible over the listed
  modalities taken in the dataset's canonical order (earlier modalities get the remainder).
  Agents come out grouped: the first modality's unimodal agents, the next modality's, ...,
  then the multimodal agents. The keys ``ratio``, ``n_agents`` and ``modalities`` select
  this form.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from numbers import Integral

from parsefl.data._checks import check_float, check_int
from parsefl.errors import ConfigError

SEPARATOR = "+"

RATIO_KEYS: tuple[str, ...] = ("ratio", "n_agents", "modalities")
"""Keys of the ratio form; no modality may be called by one of these names."""

MixValue = int | float | list[str]
"""What a mix maps to: counts (counts form), or the ratio form's ratio/n_agents/modalities."""


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


def parse_mix(
    mix: Mapping[str, MixValue], modalities: Sequence[str]
) -> list[tuple[str, ...]]:
    """Expand a mix (counts or ratio form, see the module docstring) into one tuple per agent.

    Args:
        mix: Counts form: modality subset (names joined by ``+``) -> number of agents
            holding it, e.g. ``{"fou": 4, "pix": 4, "fou+pix": 4}``; counts of 0 are skipped.
            Ratio form: ``{"ratio": rho, "n_agents": N}`` plus optional ``"modalities"``.
        modalities: The dataset's modalities in canonical order.

    Returns:
        One tuple per agent, each in canonical order. Counts form: agents in the mapping's
        order. Ratio form: see :func:`ratio_mix`.

    Raises:
        ConfigError: On field ``mix`` (empty mix, no agents), ``mix.<key>`` (bad subset,
            unknown or repeated modality, bad count, subset given twice) or, in the ratio
            form, ``mix.ratio``, ``mix.n_agents``, ``mix.modalities``.
    """
    if not mix:
        raise ConfigError(
            "mix", f"empty; give modality subsets and agent counts, e.g. {{{modalities[0]!r}: 2}}"
        )
    if any(key in RATIO_KEYS for key in mix):
        return _parse_ratio_form(mix, modalities)
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


def ratio_mix(
    ratio: float, n_agents: int, modalities: Sequence[str]
) -> list[tuple[str, ...]]:
    """``round(ratio * n_agents)`` multimodal agents; the rest unimodal, spread evenly.

    The multimodal count rounds half up (``floor(ratio * N + 0.5)``). The ``U`` unimodal
    agents are dealt to the ``k`` modalities in the given order: the first ``U mod k`` get
    ``U // k + 1`` agents, the others ``U // k``. Agents come out grouped: all agents of the
    first modality, then of the second, ..., then the multimodal agents.

    Args:
        ratio: Fraction of multimodal agents, in [0, 1].
        n_agents: Total number of agents, >= 1.
        modalities: The modalities involved, in canonical order.
    """
    ratio = check_float("mix.ratio", ratio, 0.0, 1.0, low_open=False, high_open=False)
    n_agents = check_int("mix.n_agents", n_agents, 1)
    n_multi = math.floor(ratio * n_agents + 0.5)
    share, extra = divmod(n_agents - n_multi, len(modalities))
    agents: list[tuple[str, ...]] = []
    for i, modality in enumerate(modalities):
        agents.extend([(modality,)] * (share + (1 if i < extra else 0)))
    agents.extend([tuple(modalities)] * n_multi)
    return agents


def _parse_ratio_form(
    mix: Mapping[str, MixValue], modalities: Sequence[str]
) -> list[tuple[str, ...]]:
    """Validate the ratio form's keys and expand it with :func:`ratio_mix`."""
    for key in mix:
        if key not in RATIO_KEYS:
            raise ConfigError(f"mix.{key}", "the ratio form takes only the keys "
                              f"{', '.join(RATIO_KEYS)}; do not combine it with counts")
    for key in ("ratio", "n_agents"):
        if key not in mix:
            raise ConfigError(f"mix.{key}", "required in the ratio form, e.g. "
                              "{ratio: 0.5, n_agents: 12}")
    chosen = mix.get("modalities", list(modalities))
    if isinstance(chosen, str) or not isinstance(chosen, Sequence):
        raise ConfigError("mix.modalities", f"expected a list of modality names, got {chosen!r}")
    for name in chosen:
        if name not in modalities:
            raise ConfigError("mix.modalities",
                              f"unknown modality {name!r}; allowed: {', '.join(modalities)}")
    if len(set(chosen)) != len(chosen) or len(chosen) < 2:
        raise ConfigError("mix.modalities",
                          f"need at least two distinct modalities, got {list(chosen)}")
    ordered = [m for m in modalities if m in chosen]
    return ratio_mix(mix["ratio"], mix["n_agents"], ordered)


# The pair ``mix: auto`` uses where a dataset's first two modalities are not the natural
# choice (mfeat's first two views, fou and fac, are both strong; fou + pix is the classic
# weak/strong pair).
PREFERRED_PAIRS: dict[str, tuple[str, str]] = {"mfeat": ("fou", "pix")}


def default_mix(dataset: str, modalities: Sequence[str], per_group: int = 4) -> dict[str, int]:
    """``mix: auto``: ``per_group`` agents on each of a pair of modalities and on both."""
    a, b = PREFERRED_PAIRS.get(dataset) or tuple(modalities[:2]) + (None,) * (2 - len(modalities))
    if b is None:
        return {a: 3 * per_group}
    return {a: per_group, b: per_group, group_name((a, b)): per_group}
