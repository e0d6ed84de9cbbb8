"""Which agents attack (``adversary.agents`` / ``count`` / ``per_group``), checked once."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from parsefl.errors import ConfigError


def check_adversary(adv, n_agents: int = 0) -> None:  # noqa: ANN001  (AdversaryConfig)
    """Exactly one way of choosing the attackers; a registered attack with valid params; with
    ``n_agents`` known (> 0), not every agent an attacker (choose_adversaries checks again
    once the agents are built)."""
    from parsefl.attacks.base import build_attack

    given = [k for k in ("agents", "count", "per_group") if getattr(adv, k) is not None]
    if len(given) != 1:
        raise ConfigError("adversary", "give exactly one of agents (ids), count or per_group "
                          f"(a count per modality group); got {given or 'none'}")
    attack = build_attack(adv.attack, adv.params)
    if attack.data_poisoning and adv.from_round:
        raise ConfigError("adversary.from_round", f"{adv.attack} poisons the training data "
                          "when the run is built: from_round must be 0")
    if adv.per_group is not None and any(c < 0 for c in adv.per_group.values()):
        raise ConfigError("adversary.per_group", "counts must be >= 0")
    named = len(set(adv.agents)) if adv.agents is not None else adv.count \
        if adv.count is not None else sum(adv.per_group.values())
    if n_agents and named == n_agents and all(0 <= i < n_agents for i in adv.agents or []):
        # more than all, or ids beyond the agents: choose_adversaries says which
        _everyone(n_agents)


def choose_adversaries(adv, groups: Sequence[tuple[str, ...]], seed: int) -> list[int]:  # noqa: ANN001
    """The attacking agents' ids. ``count``: a seeded draw; ``per_group``: the first agents
    of each named group (``fou``, ``fou+pix``) in a seeded order. At least one agent must
    stay honest: results report the honest agents' accuracy."""
    ids = _choose(adv, groups, seed)
    if groups and len(ids) == len(groups):
        _everyone(len(groups))
    return ids


def _everyone(n: int) -> None:
    raise ConfigError("adversary", f"all {n} agents would attack, so no honest agent is left "
                      "whose accuracy results could report; leave at least one agent honest")


def _choose(adv, groups: Sequence[tuple[str, ...]], seed: int) -> list[int]:  # noqa: ANN001
    n = len(groups)
    if adv.agents is not None:
        bad = [i for i in adv.agents if not 0 <= i < n]
        if bad:
            raise ConfigError("adversary.agents", f"agents {bad} do not exist (0..{n - 1})")
        return sorted(set(adv.agents))
    rng = np.random.default_rng([seed, 12])
    if adv.count is not None:
        if adv.count > n:
            raise ConfigError("adversary.count", f"{adv.count} attackers > {n} agents")
        return sorted(int(i) for i in rng.permutation(n)[: adv.count])
    names = {"+".join(g): [i for i, h in enumerate(groups) if h == g] for g in groups}
    out: list[int] = []
    for group, count in adv.per_group.items():
        if group not in names:
            raise ConfigError(f"adversary.per_group.{group}", "no such modality group; "
                              f"choose one of: {', '.join(names)}")
        members = names[group]
        if count > len(members):
            raise ConfigError(f"adversary.per_group.{group}", f"{count} > {len(members)} agents")
        out += [members[k] for k in rng.permutation(len(members))[:count]]
    return sorted(out)
