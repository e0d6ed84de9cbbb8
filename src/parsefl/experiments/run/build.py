"""Turn a validated RunConfig into agents, a topology and a round loop."""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from parsefl.aggregation import Aggregator, ScreeningAggregator, build_aggregator
from parsefl.attacks import Adversary, build_attack
from parsefl.attacks.select import choose_adversaries
from parsefl.compressors import Communication
from parsefl.config import RunConfig
from parsefl.data import MultimodalDataset, load_dataset
from parsefl.data.imperfect import missing_labels, missing_modality_mask, noisy_labels
from parsefl.errors import ConfigError
from parsefl.experiments.run.convergence import hold_out
from parsefl.experiments.run.dynamics import build_schedules
from parsefl.experiments.run.roster import agent_partition
from parsefl.experiments.studies.pid_split import agree_splits
from parsefl.model import ModelSpec
from parsefl.model.pretrained import load_trunks
from parsefl.privacy.accounting import PrivacyPlan, plan_privacy
from parsefl.privacy.dpsgd import PrivateSteps
from parsefl.registry import SHARING
from parsefl.runtime import Agent, InMemoryTransport, RoundEngine, Slot, slots_of
from parsefl.runtime.agent import Rows
from parsefl.runtime.blueprint import Blueprint
from parsefl.runtime.checks import ReceiveChecks
from parsefl.runtime.threads import ThreadPolicy, apply_threads, idle_cores
from parsefl.runtime.vectorized import VectorizedExecutor
from parsefl.runtime.vectorized_blocker import vectorized_blocker
from parsefl.sharing import SharingStrategy
from parsefl.topology import StaticGraph, build_topology

log = logging.getLogger(__name__)

@dataclass
class Experiment:
    cfg: RunConfig
    dataset: MultimodalDataset
    agents: list[Agent]  # the agents that train (one pooled agent for `centralized`)
    slots: list[Slot]  # the places of the mix, as evaluated and reported
    loop: RoundEngine
    test_x: dict[str, torch.Tensor]
    test_y: torch.Tensor
    device: torch.device
    n_train: list[int]  # training samples of every place of the mix, built here or not
    # agent -> (x, y) of its validation split (train.val_fraction; built, non-pooled agents)
    val: dict[int, tuple[dict[str, torch.Tensor], torch.Tensor]] = field(default_factory=dict)
    privacy: PrivacyPlan | None = None  # each agent's DP accounting (privacy: configured)
    # each place's training rows of dataset.train (the membership audit's members)
    parts: list[np.ndarray] = field(default_factory=list)
    threads: ThreadPolicy | None = None  # runtime.threads: auto (a round hook of the session)


@dataclass(frozen=True)
class Subsample:
    """How a shadow run of the membership audit (``parsefl.privacy.shadows``) departs from its
    run: agent ``i`` trains on the positions ``keep[i]`` of its part, and draws its batches and
    DP noise from ``seed``. The data, partition, graph, schedules, slice splits and initial
    values stay the run's (every agent knows those: components start from the run's seed)."""

    seed: int
    keep: tuple[np.ndarray, ...]

    def parts(self, parts: list[np.ndarray]) -> list[np.ndarray]:
        if len(self.keep) != len(parts):
            raise ValueError(f"{len(self.keep)} subsets for {len(parts)} agents")
        return [p[k] for p, k in zip(parts, self.keep, strict=True)]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device", f"{name!r} asked for, but no CUDA device is available")
    return torch.device(name)


def build_strategy(cfg: RunConfig) -> SharingStrategy:
    return SHARING.create(cfg.method, cfg.method_params, "method", "method_params",
                          rounds=cfg.rounds)


def build_experiment(cfg: RunConfig, agent_ids: Collection[int] | None = None,
                     shadow: Subsample | None = None) -> Experiment:
    """Load data, partition it over the mix, build each agent's model and the round loop.

    ``agent_ids``: build only these agents (a distributed worker's own); the data, partition,
    graph and every built agent are exactly those of the whole experiment. The loop then holds
    only them (a worker drives them through its own loop). ``shadow``: a shadow run's agents,
    each on a subset of its part (:class:`Subsample`)."""
    device = resolve_device(cfg.device)
    threads = apply_threads(cfg.runtime.threads)
    strategy = build_strategy(cfg)
    aggregator = build_aggregator(cfg.aggregation.name, cfg.aggregation.params)
    if isinstance(aggregator, ScreeningAggregator):
        aggregator.seed = cfg.seed  # its screening batches are drawn from the run's seed
    full = load_dataset(cfg.data.name, cfg.seed, cfg.data.params, None)
    groups, parts = agent_partition(cfg, full)
    held: list[np.ndarray] = []
    if cfg.train.val_fraction:  # held out before anything trains, the pooled agent included
        parts, held = hold_out(parts, full.train.y, cfg.train.val_fraction, cfg.seed)
    used = cfg.data.modalities or [m for m in full.modalities if any(m in g for g in groups)]
    missing = sorted({m for g in groups for m in g} - set(used))
    if missing:
        raise ConfigError("data.modalities", f"the mix uses {missing}, which are not listed")
    ds = full.select(used)
    seed = cfg.seed if shadow is None else shadow.seed  # of the batches and the DP noise
    common = dict(cfg=cfg, ds=ds, strategy=strategy, device=device, seed=seed)
    trained = parts if shadow is None else shadow.parts(parts)
    if strategy.centralized:
        agents = [_pooled_agent(groups, trained, **common)] if _wanted(0, agent_ids) else []
        pairs = enumerate(zip(groups, trained, strict=True))
        slots = [Slot(i, g, agents[0], len(p)) for i, (g, p) in pairs
                 if agents and _wanted(i, agent_ids)]
        topology = StaticGraph(_single_node())
    else:
        topology = build_topology(cfg.topology.name, len(groups), cfg.seed, cfg.topology.params)
        splits = _splits(cfg, ds, groups, parts, topology)  # a shadow's too: same architecture
        agents = _make_agents(groups, trained, splits, agent_ids, **common)
        slots = slots_of(agents)
    for agent in agents:
        agent.track_gradients = cfg.diagnostics.gradient_cosine
    adversary = build_adversary(cfg, groups, agents, ds.n_classes)
    mods, membership, steps = build_schedules(cfg, groups)
    loop = RoundEngine(agents, strategy, topology, InMemoryTransport(), cfg.overlay.name,
                       cfg.overlay.hops, degree=cfg.overlay.degree, aggregator=aggregator,
                       modalities=mods, membership=membership,
                       checks=ReceiveChecks(cfg.checks.max_norm, cfg.checks.max_ratio),
                       adversary=adversary, communication=build_communication(cfg))
    loop.local_steps = steps
    plan = _privacy(cfg, [len(p) for p in trained], membership, steps, agents, seed)
    if _use_vectorized(cfg, agents, aggregator, loop):
        loop.executor = VectorizedExecutor(loop, cfg.train)
    test_x = {m: torch.as_tensor(v, device=device) for m, v in ds.test.x.items()}
    test_y = torch.as_tensor(ds.test.y, device=device)
    val = {} if strategy.centralized or not held else {
        a.id: ({m: torch.as_tensor(ds.train.x[m][held[a.id]], device=device)
                for m in a.modalities}, torch.as_tensor(ds.train.y[held[a.id]], device=device))
        for a in agents}
    return Experiment(cfg, ds, agents, slots, loop, test_x, test_y, device,
                      [len(p) for p in trained], val, plan, list(trained), threads)


def _privacy(cfg: RunConfig, n_train: list[int], membership: Any, steps: Any,
             agents: list[Agent], seed: int) -> PrivacyPlan | None:
    """Every agent's DP accounting (refusing a budget the run would exceed), and each built
    agent's DP-SGD settings."""
    if cfg.privacy is None:
        return None
    # Calibrating costs seconds per distinct agent size: the idle cores share the work.
    plan = plan_privacy(cfg, n_train, membership, steps, workers=idle_cores)
    poisson = cfg.privacy.sampling == "poisson"
    for agent in agents:
        n = plan.agents[agent.id].n
        agent.privacy = PrivateSteps(agent.id, plan.agents[agent.id].noise,
                                     cfg.privacy.max_grad_norm, seed,
                                     min(cfg.train.batch_size, n) if poisson else None)
    return plan


def build_adversary(cfg: RunConfig, groups: list[tuple[str, ...]], agents: list[Agent],
                    n_classes: int) -> Adversary | None:
    """The configured adversary (None: nobody attacks); a data-poisoning attack relabels its
    (built) agents' training data here."""
    if cfg.adversary is None or SHARING.get(cfg.method, field="method").centralized:
        return None  # the pooled (centralized) baseline has no neighbours to attack
    adv = cfg.adversary
    attack = build_attack(adv.attack, adv.params)
    ids = choose_adversaries(adv, groups, cfg.seed)
    for agent in agents:
        if agent.id in ids:
            agent.y = attack.poison_labels(agent.y, n_classes)
    return Adversary(ids, attack, adv.from_round, cfg.seed)


def build_communication(cfg: RunConfig) -> Communication | None:
    """The ``communication:`` policy (None: copies as they are, every round)."""
    comm = Communication.from_config(cfg.communication, cfg.seed)
    return None if comm.plain and comm.every_round else comm


def _wanted(i: int, agent_ids: Collection[int] | None) -> bool:
    return agent_ids is None or i in agent_ids


def _use_vectorized(cfg: RunConfig, agents: list[Agent], aggregator: Aggregator,
                    loop: RoundEngine) -> bool:
    """The backend ``runtime.backend`` asks for; ``auto``: vectorized unless it cannot run this
    setup, and then it says why (the numbers are the same: tests/test_contract.py)."""
    backend = cfg.runtime.backend
    if backend != "auto":
        return backend == "vectorized"
    blocker = vectorized_blocker(agents, aggregator, cfg.train,
                                 communication=loop.communication,
                                 attacked=bool(loop.attackers))
    if blocker is not None and len(agents) > 1:
        log.info("runtime.backend auto: the reference backend (one agent at a time), since "
                 "the vectorized one cannot run this: %s (%s)", blocker, blocker.field)
    return blocker is None








def pretrained_path(cfg: RunConfig) -> str:
    """``model.encoder.pretrained`` with ``{seed}`` replaced by the run's seed."""
    return str(cfg.model.encoder.pretrained).replace("{seed}", str(cfg.seed))


def pretrain_meta(cfg: RunConfig) -> dict[str, str]:
    """What a pretrained file records and a run must match (the data split depends on it)."""
    return {"parsefl.dataset": cfg.data.name, "parsefl.seed": str(cfg.seed),
            "parsefl.public": str(cfg.data.public)}




def encoder_name(cfg: RunConfig, ds: MultimodalDataset) -> str:
    """The configured encoder; ``auto`` picks mlp for vectors, conv1d for series."""
    if cfg.model.encoder.name != "auto":
        return cfg.model.encoder.name
    series = all(len(ds.input_shape(m)) == 2 for m in ds.modalities)
    return "conv1d" if series else "mlp"


def _single_node():
    import networkx as nx

    graph = nx.Graph()
    graph.add_node(0)
    return graph




def _variant(cfg: RunConfig, groups: list[tuple[str, ...]], i: int) -> dict:
    """Encoder parameters of agent i: the base set, or its group's round-robin variant."""
    enc = cfg.model.encoder
    if not enc.variants:
        return dict(enc.params)
    rank = sum(1 for g in groups[:i] if g == groups[i])
    return {**enc.params, **enc.variants[rank % len(enc.variants)]}


def _splits(cfg, ds, groups, parts, topology) -> list:
    """Each agent's r:u:s weights: the configured ones, or agreed from PID estimates."""
    if cfg.model.split != "pid":
        return [cfg.model.split] * len(groups)
    return agree_splits(ds, groups, parts, topology.at(0), cfg.model.pid_floor, cfg.seed)


def _model(cfg, ds, strategy, mods, encoder_params, device, split=None):
    # The pooled (centralized) agent has no neighbours to agree with: split: pid means 1:1:1.
    split = split or (cfg.model.split if cfg.model.split != "pid" else (1.0, 1.0, 1.0))
    spec = ModelSpec(
        n_classes=ds.n_classes, dim=cfg.model.dim, split=split,
        encoder=encoder_name(cfg, ds), encoder_params=encoder_params, fusion=cfg.model.fusion,
        task_modalities=tuple(ds.modalities),
    )
    model = strategy.build_model(mods, {m: ds.input_shape(m) for m in ds.modalities}, spec)
    model.reset_components(cfg.seed)
    enc = cfg.model.encoder
    if enc.freeze and not enc.pretrained:
        raise ConfigError("model.encoder.freeze", "freezes pretrained trunks: set "
                          "model.encoder.pretrained (parsefl pretrain writes them)")
    if enc.pretrained and hasattr(model, "trunks"):
        load_trunks(model.trunks, pretrained_path(cfg), enc.freeze, pretrain_meta(cfg))
    return model.to(device)


def _make_agents(groups, parts, splits, agent_ids, *, cfg, ds, strategy, device, seed
                 ) -> list[Agent]:
    """The wanted agents, built as rows of what they share: one model built and initialised
    per architecture (a component's initial values depend on its seed, name and signature
    alone: ``runtime.blueprint``), and every agent's inputs rows of the dataset's tensors (one
    copy of the data)."""
    wanted = [i for i in range(len(groups)) if _wanted(i, agent_ids)]
    blueprints: dict[str, Blueprint] = {}
    data = _group_data(wanted, groups, parts, ds, device)
    agents = []
    for i in wanted:
        mods, params = groups[i], _variant(cfg, groups, i)
        key = repr((mods, sorted(params.items()), splits[i]))
        if key not in blueprints:
            blueprints[key] = Blueprint(_model(cfg, ds, strategy, mods, params, device,
                                               splits[i]))
        x, y = data[i]
        agents.append(_make_agent(i, mods, blueprints[key], x, y, cfg=cfg, ds=ds,
                                  device=device, seed=seed))
    return agents


def _group_data(wanted, groups, parts, ds, device) -> dict[int, tuple[Rows, torch.Tensor]]:
    """Agent -> its inputs, as rows of the dataset's tensors (one copy of the inputs for every
    agent), and its labels, a slice of one gather per modality group."""
    base = {m: torch.as_tensor(v, device=device) for m, v in ds.train.x.items()}
    members: dict[tuple[str, ...], list[int]] = {}
    for i in wanted:
        members.setdefault(groups[i], []).append(i)
    out = {}
    for ids in members.values():
        rows = torch.as_tensor(np.concatenate([np.asarray(parts[i], dtype=np.int64)
                                               for i in ids]), device=device)
        y = torch.as_tensor(ds.train.y, device=device)[rows]
        start = 0
        for i in ids:
            end = start + len(parts[i])
            out[i] = (Rows(base, rows[start:end]), y[start:end])
            start = end
    return out


def _make_agent(i, mods, blueprint, x, y, *, cfg, ds, device, seed) -> Agent:
    labels, views = _imperfect(cfg, i, mods, y, ds.n_classes)
    y_t = labels if labels is y else torch.as_tensor(labels, device=device)
    # An empty list is a real answer (no labelled sample left to train on), not "no views".
    views_t = [(m, torch.as_tensor(v, device=device)) for m, v in views] \
        if views is not None else None
    return Agent(i, blueprint, x, y_t, cfg.train, cfg.loss, seed, views=views_t)


def _imperfect(cfg, i, mods, y, n_classes):
    """Damage agent i's training data as configured (seeded per agent): flipped labels,
    unlabelled samples (left out of training), and samples that lack a modality (grouped into
    views by the modalities present, so that the missing ones' heads are skipped)."""
    imp = cfg.imperfect
    if not (imp.missing_modality or imp.label_noise or imp.missing_labels):
        return y, None
    y = y.cpu().numpy()
    rng = np.random.default_rng([cfg.seed, i, 17])
    y = noisy_labels(y, n_classes, imp.label_noise, rng) if imp.label_noise else y
    keep = missing_labels(y, imp.missing_labels, rng) if imp.missing_labels else \
        np.ones(len(y), bool)
    present = (missing_modality_mask(len(y), mods, imp.missing_modality, rng)
               if imp.missing_modality and len(mods) > 1 else {m: keep for m in mods})
    views: dict[tuple[str, ...], list[int]] = {}
    for k in np.flatnonzero(keep):
        views.setdefault(tuple(m for m in mods if present[m][k]), []).append(int(k))
    return y, [(m, np.asarray(v)) for m, v in sorted(views.items()) if len(v) > 1]


def _pooled_agent(groups, parts, *, cfg, ds, strategy, device, seed) -> Agent:
    """The centralized baseline: one model over every agent's samples, each sample seen with
    the modalities its owner holds (one view per agent)."""
    mods = tuple(ds.modalities)
    model = _model(cfg, ds, strategy, mods, dict(cfg.model.encoder.params), device)
    order = np.concatenate(parts)
    x = {m: torch.as_tensor(ds.train.x[m][order], device=device) for m in mods}
    y = torch.as_tensor(ds.train.y[order], device=device)
    starts = np.cumsum([0] + [len(p) for p in parts])
    views = [(g, torch.arange(starts[k], starts[k + 1], device=device))
             for k, g in enumerate(groups)]
    return Agent(0, model, x, y, cfg.train, cfg.loss, seed, views=views)
