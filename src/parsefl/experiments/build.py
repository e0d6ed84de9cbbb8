"""Turn a validated RunConfig into agents, a topology and a round loop."""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch

from parsefl.config import RunConfig
from parsefl.data import MultimodalDataset, load_dataset, parse_mix, partition_indices
from parsefl.errors import ConfigError
from parsefl.model import ModelSpec, SlicedModel
from parsefl.registry import PARTITIONS, SHARING
from parsefl.runtime import Agent, InMemoryTransport, RoundLoop
from parsefl.topology import build_topology


@dataclass
class Experiment:
    cfg: RunConfig
    dataset: MultimodalDataset
    agents: list[Agent]
    loop: RoundLoop
    test_x: dict[str, torch.Tensor]
    test_y: torch.Tensor
    device: torch.device


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device", f"{name!r} asked for, but no CUDA device is available")
    return torch.device(name)


def build_experiment(cfg: RunConfig) -> Experiment:
    """Load data, partition it over the mix, build each agent's model and the round loop."""
    device = resolve_device(cfg.device)
    full = load_dataset(cfg.data.name, cfg.seed, cfg.data.params, None)
    groups = parse_mix(cfg.mix, full.modalities)
    used = cfg.data.modalities or [m for m in full.modalities if any(m in g for g in groups)]
    missing = sorted({m for g in groups for m in g} - set(used))
    if missing:
        raise ConfigError("data.modalities", f"the mix uses {missing}, which are not listed")
    ds = full.select(used)
    parts = partition_indices(
        cfg.partition.name, ds.train.y, len(groups), cfg.seed, _partition_params(cfg)
    )
    agents = [
        _make_agent(cfg, ds, i, mods, parts[i], _variant(cfg, groups, i), device)
        for i, mods in enumerate(groups)
    ]
    topology = build_topology(cfg.topology.name, len(agents), cfg.seed, cfg.topology.params)
    strategy = SHARING.get(cfg.method, field="method")()
    loop = RoundLoop(agents, strategy, topology, InMemoryTransport(),
                     cfg.overlay.name, cfg.overlay.hops)
    test_x = {m: torch.as_tensor(v, device=device) for m, v in ds.test.x.items()}
    test_y = torch.as_tensor(ds.test.y, device=device)
    return Experiment(cfg, ds, agents, loop, test_x, test_y, device)


def _partition_params(cfg: RunConfig) -> dict:
    accepted = inspect.signature(PARTITIONS.get(cfg.partition.name)).parameters
    params = cfg.partition.model_dump(exclude={"name"})
    return {k: v for k, v in params.items() if k in accepted}


def _variant(cfg: RunConfig, groups: list[tuple[str, ...]], i: int) -> dict:
    """Encoder parameters of agent i: the base set, or its group's round-robin variant."""
    enc = cfg.model.encoder
    if not enc.variants:
        return dict(enc.params)
    rank = sum(1 for g in groups[:i] if g == groups[i])
    return {**enc.params, **enc.variants[rank % len(enc.variants)]}


def _make_agent(cfg, ds, i, mods, idx, encoder_params, device) -> Agent:
    spec = ModelSpec(
        n_classes=ds.n_classes, dim=cfg.model.dim, split=cfg.model.split,
        encoder=cfg.model.encoder.name, encoder_params=encoder_params, fusion=cfg.model.fusion,
    )
    model = SlicedModel(mods, {m: ds.input_shape(m) for m in mods}, spec)
    model.reset_components(cfg.seed)
    model.to(device)
    part = ds.train.subset(idx, mods)
    x = {m: torch.as_tensor(v, device=device) for m, v in part.x.items()}
    y = torch.as_tensor(part.y, device=device)
    return Agent(i, model, x, y, cfg.train, cfg.loss, cfg.seed)
