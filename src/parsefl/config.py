"""Run configuration: frozen pydantic models loaded from YAML, ``-o key=value`` overrides,
validated once, with errors that name the field and the allowed values."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BeforeValidator, Field, ValidationError

from parsefl.config_checks import (
    check_absurd,
    check_raw,
    check_sizes,
    check_stop,
    config_text,
    load_yaml,
    mix_agents,
    yaml_problem,
)
from parsefl.config_sections import (  # the robustness and dynamics sections
    SEED_BOUND,
    AdversaryConfig,
    AggregationConfig,
    ChecksConfig,
    CommunicationConfig,
    DynamicsConfig,
    PrivacyConfig,
    _Strict,
)
from parsefl.errors import ConfigError
from parsefl.model.weights import LossWeights

PRESETS = Path(__file__).resolve().parent / "presets"




class DataConfig(_Strict):
    name: str = "mfeat"
    modalities: list[str] | None = None  # default: the modalities the mix uses
    # A seeded fraction of the training set that no agent holds (`parsefl pretrain` uses it).
    public: float = Field(0.0, ge=0, lt=1)
    params: dict[str, Any] = Field(default_factory=dict)


class PartitionConfig(_Strict):
    name: str = "dirichlet"
    alpha: float = Field(0.5, gt=0)
    min_samples: int = Field(10, ge=1)
    shuffle: bool = False  # natural: seeded draw of which group goes to which agent
    strength: float = Field(0.5, ge=0, le=1)  # group_skew: how much labels follow the group


class TopologyConfig(_Strict):
    name: str = "ring"
    params: dict[str, Any] = Field(default_factory=dict)


class OverlayConfig(_Strict):
    name: str = "induced"  # induced | relay | rewire | auto
    hops: int = Field(2, ge=1)  # relay/rewire: how far capabilities (and components) travel
    degree: int = Field(2, ge=1)  # rewire: holders each agent links to


class EncoderConfig(_Strict):
    name: str = "auto"  # auto: mlp for vector inputs, conv1d for (channels, length) series
    params: dict[str, Any] = Field(default_factory=dict)
    # Architecture heterogeneity: parameter sets assigned round-robin to the agents of each
    # modality group (e.g. [{hidden: [256]}, {hidden: [64]}] gives wide and narrow agents).
    variants: list[dict[str, Any]] | None = None
    # Pretrained trunks (safetensors: a directory of <modality>.safetensors, or one file with
    # <modality>. prefixes; `parsefl pretrain` writes them); freeze: not trained, not gossiped.
    pretrained: str | None = None
    freeze: bool = False


class ModelConfig(_Strict):
    dim: int = Field(96, ge=3)
    # r:u:s weights, or "pid": sized from the PID of the multimodal agents' training data.
    split: tuple[float, float, float] | Literal["pid"] = (1.0, 1.0, 1.0)
    pid_floor: float = Field(0.1, ge=0, le=1 / 3)  # with split: pid, the least slice share
    encoder: EncoderConfig = EncoderConfig()
    fusion: str = "concat"


# The loss weights belong to the model (models never import this module); re-exported here.
LossConfig = LossWeights


class TrainConfig(_Strict):
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    batch_size: int = Field(32, ge=2)
    local_epochs: int = Field(1, ge=1)
    local_steps: int | None = Field(None, ge=1)  # fixed steps per round (overrides epochs)
    # Convergence (experiments/run/convergence.py): each agent's held-out validation share of its
    # training data (0: none; curves then show test accuracy, as a report only); `rounds: auto`
    # sets stop: plateau and rounds: max_rounds.
    val_fraction: float = Field(0.0, ge=0, lt=0.5)
    stop: Literal["fixed", "plateau"] = "fixed"
    max_rounds: int = Field(300, ge=1)
    # What `rounds: auto` waits for (experiments/run/network_stop.py): "network", every group's
    # network-wide validation accuracy (counts pooled by an exact consensus), smoothed by an
    # exponential moving average (weight `smoothing` on the newest point), gained no more than
    # 0.5 points (or one sample of the group) for `patience` rounds; "agents", every agent's own
    # curve plateaued (the first rule). Chosen on the quickstart, docs/results.md.
    stop_rule: Literal["network", "agents"] = "network"
    patience: int = Field(25, ge=1)
    smoothing: float = Field(0.15, gt=0, le=1)


class ImperfectConfig(_Strict):
    missing_modality: float = Field(0.0, ge=0, le=1)  # multimodal agents: per-sample rate
    label_noise: float = Field(0.0, ge=0, le=1)  # fraction of training labels flipped
    missing_labels: float = Field(0.0, ge=0, lt=1)  # fraction of training samples unlabelled


def _threads(value: Any) -> Any:
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return value
    raise ValueError("expected a number of torch threads >= 0 (0: torch's default) or auto")


class RuntimeConfig(_Strict):
    # Simulator execution: one agent at a time ("reference"), stacked agents ("vectorized";
    # local steps or epochs), or "auto" (vectorized whenever it can run).
    backend: Literal["auto", "reference", "vectorized"] = "auto"
    # torch CPU threads for this process (0: torch's default, one per core). 1 by default:
    # with one thread per core, torch's workers spin against any other busy process, and the
    # quickstart took 765 s instead of 44 s on a loaded 2-core machine (benchmarks/threads.py,
    # RESULTS.md); sweeps with --jobs already run one process per core. "auto": the cores no
    # other process uses, re-checked every few seconds (runtime/threads.py).
    threads: Annotated[int | Literal["auto"], BeforeValidator(_threads)] = 1
    timeout_s: float = Field(30.0, gt=0)  # distributed: a neighbour later than this is skipped
    checkpoint_every: int = Field(10, ge=1)  # distributed: rounds between checkpoints
    auth: bool = False  # distributed: sign every wire message, accept only signed ones
    # distributed: which process hosts each agent (auto | block | partition | round_robin,
    # parsefl.topology.placement); neighbours in one process gossip in memory.
    placement: str = "auto"


class DiagnosticsConfig(_Strict):
    gradient_cosine: bool = True  # cosine of unimodal vs multimodal gradients per component


class RunConfig(_Strict):
    method: str = "parse"
    method_params: dict[str, Any] = Field(default_factory=dict)  # e.g. harmony stage1_fraction
    aggregation: AggregationConfig = AggregationConfig()  # how received copies are merged
    seed: int = Field(0, ge=0, lt=SEED_BOUND)
    rounds: int = Field(40, ge=1)
    eval_every: int = Field(5, ge=1)
    device: str = "auto"
    data: DataConfig = DataConfig()
    # Counts per modality subset, {ratio: rho, n_agents: N, modalities: [..]}, or "auto" (the
    # dataset's default pair, 4 agents on each and 4 on both).
    mix: dict[str, int | float | list[str]] | Literal["auto"] = "auto"
    partition: PartitionConfig = PartitionConfig()
    topology: TopologyConfig = TopologyConfig()
    overlay: OverlayConfig = OverlayConfig()
    model: ModelConfig = ModelConfig()
    loss: LossConfig = LossConfig()
    train: TrainConfig = TrainConfig()
    imperfect: ImperfectConfig = ImperfectConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    diagnostics: DiagnosticsConfig = DiagnosticsConfig()
    checks: ChecksConfig = ChecksConfig()
    adversary: AdversaryConfig | None = None  # Byzantine agents (none by default)
    dynamics: DynamicsConfig = DynamicsConfig()
    communication: CommunicationConfig = CommunicationConfig()  # compression, periods
    privacy: PrivacyConfig | None = None  # differentially private local training (none)


def apply_overrides(raw: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Set ``a.b.c=value`` pairs (values parsed as YAML) into a nested dict copy."""
    out = copy.deepcopy(dict(raw))
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError("-o", f"expected key=value, got {item!r}")
        try:
            value = load_yaml(text)
        except yaml.YAMLError as err:
            raise ConfigError(key, f"cannot parse value {text!r}: {yaml_problem(err)}") from None
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part, {}), dict):
                raise ConfigError(key, f"{part!r} is not a section")
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def load_config(
    path: str | Path | None = None, overrides: Iterable[str] = (), method: str | None = None
) -> RunConfig:
    """Read a YAML preset (None = quickstart), apply overrides, validate everything."""
    raw = read_yaml(path or PRESETS / "quickstart.yaml")
    raw = apply_overrides(raw, overrides)
    if method:
        raw["method"] = method
    return validate(raw)


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError("CONFIG", f"no such file: {path}")
    try:
        raw = load_yaml(config_text(path))
    except yaml.YAMLError as err:
        raise ConfigError(str(path), f"not valid YAML: {yaml_problem(err)}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(str(path), "the top level must be a mapping of keys to values")
    return raw


def validate(raw: Mapping[str, Any]) -> RunConfig:
    """Validate types, then registry names and cross-field rules, then refuse values that
    cannot be right (booleans for numbers, non-finite or absurd values, sizes beyond memory)."""
    raw = _auto_rounds(raw)
    check_raw(raw, RunConfig)
    try:
        cfg = RunConfig.model_validate(dict(raw))
    except ValidationError as err:
        raise _first_error(err) from None
    _check_names(cfg)
    check_absurd(cfg)
    check_sizes(cfg)
    return cfg


def _auto_rounds(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    """``rounds: auto``: run until the validation curves plateau, at most train.max_rounds."""
    if raw.get("rounds") != "auto":
        return raw
    train = dict(raw.get("train") or {})
    if not train.get("val_fraction"):
        raise ConfigError("train.val_fraction", "rounds: auto stops on validation accuracy; "
                          "set train.val_fraction > 0 (e.g. 0.1)")
    train["stop"] = "plateau"
    return {**raw, "rounds": train.get("max_rounds", TrainConfig().max_rounds), "train": train}


def _first_error(err: ValidationError) -> ConfigError:
    e = err.errors()[0]
    field = ".".join(str(p) for p in e["loc"]) or "config"
    if e["type"] == "extra_forbidden":
        parent = RunConfig
        for part in e["loc"][:-1]:
            ann = parent.model_fields.get(str(part))
            parent = ann.annotation if ann and isinstance(ann.annotation, type) else parent
        allowed = ", ".join(parent.model_fields)
        return ConfigError(field, f"unknown key; allowed keys here: {allowed}")
    msg = e["msg"].removeprefix("Value error, ")  # a validator's own sentence, as it wrote it
    return ConfigError(field, f"{msg} (got {e.get('input')!r})")


def _check_names(cfg: RunConfig) -> None:
    import parsefl.components  # noqa: F401  (fill every registry)
    from parsefl.aggregation import ScreeningAggregator, build_aggregator
    from parsefl.data import resolve_dataset
    from parsefl.registry import (
        ENCODERS,
        FUSIONS,
        OVERLAYS,
        PARTITIONS,
        PLACEMENTS,
        SHARING,
        TOPOLOGIES,
    )

    if SHARING.get(cfg.method, field="method").centralized and cfg.dynamics != DynamicsConfig():
        raise ConfigError("dynamics", f"{cfg.method} pools every agent's data into one model, "
                          "so no modality, membership or step schedule applies to it; leave "
                          "dynamics at its defaults")
    resolve_dataset(cfg.data.name)
    PARTITIONS.get(cfg.partition.name, field="partition.name")
    TOPOLOGIES.get(cfg.topology.name, field="topology.name")
    OVERLAYS.get(cfg.overlay.name, field="overlay.name")
    aggregator = build_aggregator(cfg.aggregation.name, cfg.aggregation.params)  # types too
    if isinstance(aggregator, ScreeningAggregator) and cfg.communication.error_feedback:
        raise ConfigError("communication.error_feedback", f"aggregation {aggregator.name!r} "
                          "screens the copies a receiver gets; with error feedback it merges "
                          "public copies, not what arrived: turn one of them off")
    PLACEMENTS.get(cfg.runtime.placement, field="runtime.placement")
    if cfg.adversary is not None:
        from parsefl.attacks.select import check_adversary

        check_adversary(cfg.adversary, mix_agents(cfg.mix))
    if cfg.model.encoder.name != "auto":
        ENCODERS.get(cfg.model.encoder.name, field="model.encoder.name")
    FUSIONS.get(cfg.model.fusion, field="model.fusion")
    from parsefl.compressors import Communication

    Communication.from_config(cfg.communication)  # registered names, kinds, parameters
    if cfg.device != "auto" and cfg.device != "cpu" and not cfg.device.startswith("cuda"):
        raise ConfigError("device", f"expected auto, cpu, cuda or cuda:N, got {cfg.device!r}")
    if not cfg.mix:
        raise ConfigError("mix", "give at least one modality subset with a count")
    check_stop(cfg)
    if cfg.privacy is not None:
        from parsefl.privacy.accounting import check_privacy

        check_privacy(cfg)


def to_yaml(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
