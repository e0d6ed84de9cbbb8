"""Who a run's agents are before any is built: each agent's modalities (the mix), how many
there are (without loading the data), and which training samples each holds (the partition,
after the public share set aside for pretraining)."""

from __future__ import annotations

import inspect

import numpy as np

from parsefl.config import RunConfig
from parsefl.data import MultimodalDataset, load_dataset, parse_mix
from parsefl.data.mix import RATIO_KEYS, default_mix
from parsefl.data.partition import partition_indices
from parsefl.errors import ConfigError
from parsefl.registry import PARTITIONS


def agent_groups(cfg: RunConfig, ds: MultimodalDataset | None = None) -> list[tuple[str, ...]]:
    """Each agent's modalities, from the mix (``auto`` and ratio forms resolved)."""
    if ds is None:
        ds = load_dataset(cfg.data.name, cfg.seed, cfg.data.params, None)
    mix = default_mix(ds.name, ds.modalities) if cfg.mix == "auto" else cfg.mix
    return parse_mix(mix, ds.modalities)


def agent_count(cfg: RunConfig) -> int:
    """How many agents the mix has, without loading the dataset (the mix says it)."""
    mix = cfg.mix
    if mix == "auto":  # a pair of modalities: the same count on every dataset
        return sum(default_mix(cfg.data.name, ("a", "b")).values())
    if any(key in RATIO_KEYS for key in mix):
        n = mix.get("n_agents")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError("mix.n_agents", f"expected a positive integer, got {n!r}")
        return n
    counts = list(mix.values())
    if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
        raise ConfigError("mix", f"agent counts must be non-negative integers, got {counts}")
    return sum(counts)


def agent_partition(
    cfg: RunConfig, ds: MultimodalDataset
) -> tuple[list[tuple[str, ...]], list[np.ndarray]]:
    """Each agent's modalities (from the mix) and training indices (from the partition)."""
    groups = agent_groups(cfg, ds)
    private = private_indices(cfg, len(ds.train.y))
    natural = None if ds.train_agent is None else np.asarray(ds.train_agent)[private]
    parts = partition_indices(cfg.partition.name, ds.train.y[private], len(groups), cfg.seed,
                              _partition_params(cfg), groups=natural,
                              agent_groups=groups)
    return groups, [private[p] for p in parts]


def private_indices(cfg: RunConfig, n: int, public: bool = False) -> np.ndarray:
    """The training samples the agents share out (``public=True``: those set aside by
    ``data.public`` for pretraining, which no agent holds); seeded by the run's seed."""
    if not cfg.data.public:
        return np.arange(n) if not public else np.arange(0)
    order = np.random.default_rng([cfg.seed, 29]).permutation(n)
    k = int(round(cfg.data.public * n))
    return np.sort(order[:k] if public else order[k:])


def _partition_params(cfg: RunConfig) -> dict:
    accepted = inspect.signature(PARTITIONS.get(cfg.partition.name)).parameters
    params = cfg.partition.model_dump(exclude={"name"})
    return {k: v for k, v in params.items() if k in accepted}
