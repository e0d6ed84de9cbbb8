"""How training samples are dealt out to agents (IID or label-skewed via Dirichlet).

Every partition is registered in ``PARTITIONS`` with the signature
``(y, n_agents, seed, **params) -> list[np.ndarray]`` and returns one sorted index array per
agent; the arrays are disjoint and together cover every index of ``y``. A partition that
needs the data's natural groups (``natural``) also takes a keyword-only ``groups`` argument:
one group id per sample, passed by :func:`partition_indices` only to partitions that accept it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping

import numpy as np

from parsefl.data._checks import check_float, check_int, check_params
from parsefl.errors import ConfigError, DataError
from parsefl.registry import PARTITIONS

MAX_DIRICHLET_TRIES = 1000


def _check_common(y: np.ndarray, n_agents: int, seed: int, min_samples: int) -> np.ndarray:
    """Validate the arguments every partition shares and return ``y`` as a 1-D array."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"labels to partition must be 1-D, got shape {y.shape}")
    n_agents = check_int("partition.n_agents", n_agents, 1)
    check_int("seed", seed, 0)
    min_samples = check_int("partition.min_samples", min_samples, 1)
    if n_agents * min_samples > len(y):
        raise ConfigError(
            "partition.min_samples",
            f"more agents than samples allow: {n_agents} agents x min_samples={min_samples} "
            f"needs {n_agents * min_samples} samples but only {len(y)} are available; "
            "lower partition.min_samples or use fewer agents",
        )
    return y


@PARTITIONS.register("iid", "Shuffle and deal the samples into equal shares (IID)")
def iid(y: np.ndarray, n_agents: int, seed: int, min_samples: int = 1) -> list[np.ndarray]:
    """Shuffle and deal the samples into equal shares (sizes differ by at most one).

    Args:
        y: Labels of the samples to partition.
        n_agents: Number of agents.
        seed: Seed of the shuffle.
        min_samples: Fewest samples any agent may get.
    """
    y = _check_common(y, n_agents, seed, min_samples)
    order = np.random.default_rng(seed).permutation(len(y))
    return [np.sort(part) for part in np.array_split(order, n_agents)]


def _dirichlet_draw(
    rng: np.random.Generator, by_class: list[np.ndarray], n_agents: int, alpha: float
) -> list[np.ndarray]:
    """One draw: each class's samples split over agents by Dirichlet(alpha) proportions."""
    shards: list[list[np.ndarray]] = [[] for _ in range(n_agents)]
    for members in by_class:
        members = rng.permutation(members)
        proportions = rng.dirichlet(np.full(n_agents, alpha))
        cuts = (np.cumsum(proportions)[:-1] * len(members)).astype(np.int64)
        for agent, piece in enumerate(np.split(members, cuts)):
            shards[agent].append(piece)
    return [np.concatenate(pieces) for pieces in shards]


@PARTITIONS.register("dirichlet", "Label skew: each class spread over agents by Dirichlet(alpha)")
def dirichlet(
    y: np.ndarray, n_agents: int, seed: int, alpha: float = 0.5, min_samples: int = 10
) -> list[np.ndarray]:
    """Label skew: each class's samples spread over agents in Dirichlet(alpha) proportions.

    Small ``alpha`` concentrates each class on few agents; large ``alpha`` approaches IID.
    Draws are repeated (continuing the same seeded generator, so the result is still
    deterministic) until every agent has at least ``min_samples`` samples.

    Args:
        y: Labels of the samples to partition.
        n_agents: Number of agents.
        seed: Seed of all draws.
        alpha: Dirichlet concentration, > 0.
        min_samples: Fewest samples any agent may get.

    Raises:
        ConfigError: Bad parameters, or no draw within ``MAX_DIRICHLET_TRIES`` met
            ``min_samples``.
    """
    y = _check_common(y, n_agents, seed, min_samples)
    alpha = check_float("partition.alpha", alpha, 0.0)
    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(y == label) for label in np.unique(y)]
    for _ in range(MAX_DIRICHLET_TRIES):
        parts = _dirichlet_draw(rng, by_class, n_agents, alpha)
        if min(len(part) for part in parts) >= min_samples:
            return [np.sort(part) for part in parts]
    raise ConfigError(
        "partition.min_samples",
        f"no Dirichlet(alpha={alpha}) draw in {MAX_DIRICHLET_TRIES} tries gave each of "
        f"{n_agents} agents >= {min_samples} samples ({n_agents * min_samples} of the "
        f"{len(y)} available would be needed at minimum); lower partition.min_samples, "
        "raise partition.alpha or use fewer agents",
    )


@PARTITIONS.register("natural", "The data's own groups (npz 'agent' ids), one group per agent")
def natural(
    y: np.ndarray,
    n_agents: int,
    seed: int,
    min_samples: int = 1,
    shuffle: bool = False,
    *,
    groups: np.ndarray | None = None,
) -> list[np.ndarray]:
    """The data's own groups: each distinct id of ``groups`` goes to one agent.

    Agent ``k`` gets the samples of the ``k``-th smallest group id, or with ``shuffle`` of
    the group at position ``k`` of a seeded permutation of the ids: the mix lists agents
    grouped by modality subset, so shuffling draws which groups (e.g. which people) hold
    which subset.

    Args:
        y: Labels of the samples to partition.
        n_agents: Number of agents; must equal the number of distinct group ids.
        seed: Seed of the ``shuffle`` draw (otherwise unused, but validated).
        min_samples: Fewest samples any group may have.
        shuffle: Assign the groups to agents in a seeded random order.
        groups: One non-negative integer group id per sample (``dataset.train_agent``).

    Raises:
        ConfigError: On ``partition.name`` when the data has no groups or their number
            differs from ``n_agents``; on ``partition.min_samples`` for too small a group.
    """
    y = _check_common(y, n_agents, seed, min_samples)
    if groups is None:
        raise ConfigError("partition.name", "'natural' needs a dataset with natural groups "
                          "(an npz file with an 'agent' array); this one has none")
    groups = np.asarray(groups)
    if groups.shape != y.shape:
        raise DataError(f"natural partition: {groups.shape[0]} group ids for {len(y)} samples")
    ids, inverse = np.unique(groups, return_inverse=True)
    if len(ids) != n_agents:
        raise ConfigError("partition.name", f"'natural': the data has {len(ids)} distinct agent "
                          f"ids but the mix has {n_agents} agents; make them equal")
    if not isinstance(shuffle, bool):
        raise ConfigError("partition.shuffle", f"expected true or false, got {shuffle!r}")
    parts = [np.flatnonzero(inverse == k) for k in range(n_agents)]
    sizes = [len(part) for part in parts]
    if min(sizes) < min_samples:
        small = int(ids[int(np.argmin(sizes))])
        raise ConfigError("partition.min_samples", f"'natural': agent id {small} has "
                          f"{min(sizes)} samples, fewer than min_samples={min_samples}")
    if shuffle:
        parts = [parts[k] for k in np.random.default_rng(seed).permutation(n_agents)]
    return parts


def _accepts_groups(partition: Callable[..., list[np.ndarray]]) -> bool:
    """Whether ``partition`` takes the data's natural groups (a ``groups`` parameter)."""
    return "groups" in inspect.signature(partition).parameters


def partition_indices(
    name: str,
    y: np.ndarray,
    n_agents: int,
    seed: int,
    params: Mapping[str, object] | None = None,
    groups: np.ndarray | None = None,
    agent_groups: list[tuple[str, ...]] | None = None,
) -> list[np.ndarray]:
    """Split the sample indices of ``y`` over ``n_agents`` with the registered partition.

    Args:
        name: Registered partition name (config field ``partition.name``).
        y: Labels of the samples to partition (usually the train split's).
        n_agents: Number of agents.
        seed: Seed of the partition's randomness.
        params: Keyword parameters of the partition (``partition.<key>``).
        groups: The data's natural group id per sample (``dataset.train_agent``), or None;
            given only to partitions that take a ``groups`` keyword.
        agent_groups: Each agent's modalities (the mix), given only to partitions that take
            an ``agent_groups`` keyword (``group_skew``).

    Returns:
        One sorted index array per agent; disjoint, together covering ``range(len(y))``.
    """
    partition = PARTITIONS.get(name, field="partition.name")
    params = dict(params or {})
    for key in ("groups", "agent_groups"):
        if key in params:
            raise ConfigError(f"partition.{key}", "set by the dataset and mix, not the config")
    check_params(partition, params, "partition", skip=3)
    if _accepts_groups(partition):
        params["groups"] = groups
    if "agent_groups" in inspect.signature(partition).parameters:
        params["agent_groups"] = agent_groups
    parts = partition(y, n_agents, seed, **params)
    # Cheap guard on the contract, so a faulty new partition fails here and not mid-training.
    merged = np.sort(np.concatenate(parts)) if parts else np.array([], dtype=np.int64)
    if len(parts) != n_agents or not np.array_equal(merged, np.arange(len(y))):
        raise DataError(f"partition {name!r} did not return {n_agents} disjoint covering shares")
    return [np.asarray(part, dtype=np.int64) for part in parts]


def _preferences(
    agent_groups: list[tuple[str, ...]], classes: np.ndarray, strength: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """(agents, classes) weights: each modality group prefers its own block of classes (the
    classes dealt round-robin over the groups in a seeded order); ``strength`` mixes that
    preference with the uniform one (0: uniform, 1: only the preferred block)."""
    kinds = sorted(set(agent_groups))
    prefer = np.zeros((len(kinds), len(classes)))
    for k, c in enumerate(rng.permutation(len(classes))):
        prefer[k % len(kinds), c] = 1.0
    prefer /= prefer.sum(1, keepdims=True).clip(min=1)  # a group may have no class (G > C)
    weights = (1 - strength) / len(classes) + strength * prefer
    return np.stack([weights[kinds.index(g)] for g in agent_groups])


@PARTITIONS.register("group_skew", "Label skew correlated with the modality group "
                                   "(strength 0: dirichlet, 1: disjoint class blocks)")
def group_skew(
    y: np.ndarray, n_agents: int, seed: int, strength: float = 0.5, alpha: float = 0.5,
    min_samples: int = 10, *, agent_groups: list[tuple[str, ...]] | None = None,
) -> list[np.ndarray]:
    """Label distributions that differ by modality group: each class's samples go to agents
    in proportion to Dirichlet(alpha) draws (as ``dirichlet``) times the agent's group
    preference for the class (see :func:`_preferences`). With ``strength`` 0 the groups do
    not matter (a ``dirichlet`` partition); with 1 each group sees only its own classes, so
    unimodal and multimodal agents learn from disjoint label sets.

    Args:
        y: Labels of the samples to partition.
        n_agents: Number of agents.
        seed: Seed of all draws.
        strength: How strongly the label distribution follows the modality group, in [0, 1].
        alpha: Dirichlet concentration of the spread within the preference, > 0.
        min_samples: Fewest samples any agent may get (draws repeat until met).
        agent_groups: Each agent's modalities (from the mix; passed by the builder).
    """
    y = _check_common(y, n_agents, seed, min_samples)
    strength = check_float("partition.strength", strength, 0.0, 1.0, low_open=False,
                           high_open=False)
    alpha = check_float("partition.alpha", alpha, 0.0)
    if agent_groups is None or len(agent_groups) != n_agents:
        raise ConfigError("partition.name", "'group_skew' needs each agent's modality group "
                          "(the mix); call it through partition_indices with agent_groups")
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    pref = _preferences([tuple(g) for g in agent_groups], classes, strength, rng)
    for _ in range(MAX_DIRICHLET_TRIES):
        shards: list[list[np.ndarray]] = [[] for _ in range(n_agents)]
        for k, label in enumerate(classes):
            members = rng.permutation(np.flatnonzero(y == label))
            share = rng.dirichlet(np.full(n_agents, alpha)) * pref[:, k]
            share = share / share.sum() if share.sum() > 0 else np.full(n_agents, 1 / n_agents)
            cuts = (np.cumsum(share)[:-1] * len(members)).astype(np.int64)
            for agent, piece in enumerate(np.split(members, cuts)):
                shards[agent].append(piece)
        parts = [np.sort(np.concatenate(p)) for p in shards]
        if min(len(p) for p in parts) >= min_samples:
            return parts
    raise ConfigError("partition.min_samples", f"no group_skew draw in {MAX_DIRICHLET_TRIES} "
                      f"tries gave each agent >= {min_samples} samples; lower "
                      "partition.min_samples or partition.strength, or raise partition.alpha")
