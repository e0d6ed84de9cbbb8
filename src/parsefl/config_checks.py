"""Refusing config values that cannot be right, before anything is built: booleans where a
number is meant (YAML ``true`` validates as the integer 1), non-finite or absurd numbers,
duplicate YAML keys, and sizes whose memory exceeds the machine."""

from __future__ import annotations

import math
import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from parsefl.errors import ConfigError

# Values beyond these are typos or unit mistakes, never experiments (each trains to NaN or
# never finishes); the bound is inclusive.
ABSURD = {
    "train.lr": 10.0,
    "train.weight_decay": 10.0,
    "rounds": 1_000_000,
    "eval_every": 1_000_000,
    "train.local_epochs": 10_000,
    "train.local_steps": 1_000_000,
    "loss.temperature": 1e4,
}


# A config is a few hundred YAML nodes; these bounds hold any real one many times over, and
# refuse an alias bomb ("billion laughs": nine aliases of nine aliases of ... expand to 10^9
# nodes that every later walk of the config would visit) and nesting that would overflow the
# stack, before anything is built from the text.
MAX_YAML_NODES = 100_000  # after expanding every alias
MAX_YAML_DEPTH = 64  # levels of nested sequences and mappings, aliases expanded


class UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a mapping with the same key twice (the default keeps the
    last one silently), a recursive alias, and documents whose aliases expand beyond
    MAX_YAML_NODES nodes or MAX_YAML_DEPTH levels."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._nodes = 0  # nodes composed so far, each alias counted as its whole expansion
        self._depth = 0  # the level of the node being composed
        self._reach = 0  # the deepest level reached inside it, aliases expanded
        self._expanded: dict[str, tuple[int, int]] = {}  # anchor -> (nodes, depth)

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if self.check_event(yaml.AliasEvent) and event.anchor in self.anchors:
            if event.anchor not in self._expanded:
                self._refuse(f"alias *{event.anchor} is inside the node it refers to "
                             "(a recursive alias)", event)
            nodes, depth = self._expanded[event.anchor]
            self._grow(nodes, self._depth + depth, event)
            return super().compose_node(parent, index)
        level = self._depth + 1
        self._grow(1, level, event)
        start, outer, self._depth, self._reach = self._nodes, self._reach, level, level
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth = level - 1
        if getattr(event, "anchor", None) is not None:
            self._expanded[event.anchor] = (self._nodes - start + 1, self._reach - level + 1)
        self._reach = max(outer, self._reach)
        return node

    def _grow(self, nodes: int, depth: int, event: Any) -> None:
        self._nodes += nodes
        self._reach = max(self._reach, depth)
        if self._nodes > MAX_YAML_NODES:
            self._refuse(f"more than {MAX_YAML_NODES} nodes, aliases expanded; a config "
                         "needs far fewer (an alias bomb?)", event)
        if depth > MAX_YAML_DEPTH:
            self._refuse(f"nested deeper than {MAX_YAML_DEPTH} levels", event)

    @staticmethod
    def _refuse(problem: str, event: Any) -> None:
        raise yaml.composer.ComposerError(None, None, problem, event.start_mark)


def _unique_mapping(loader: UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base`: its keys may be overridden
            continue
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            mark = key_node.start_mark
            raise ConfigError(str(key), f"duplicate key (line {mark.line + 1}); give it once")
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def load_yaml(text: str) -> Any:
    """yaml.safe_load, refusing duplicate keys."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)


MAX_CONFIG_BYTES = 1 << 20  # the largest preset is a few KiB


def config_text(path: Path) -> str:
    """The text of a config file: refused, naming the file, when unreadable, larger than
    MAX_CONFIG_BYTES, or not UTF-8 (a binary file, another encoding)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as err:
        raise ConfigError(str(path), f"cannot be read ({err.strerror or err})") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(str(path), f"larger than {MAX_CONFIG_BYTES // 2**10} KiB; a config "
                          "is a short YAML text file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(str(path), f"not UTF-8 text (byte 0x{data[err.start]:02x} at offset "
                          f"{err.start}); a config is a YAML text file") from None


def yaml_problem(err: yaml.YAMLError) -> str:
    """A YAML error in one line: the problem and where (PyYAML's text spans several)."""
    mark = getattr(err, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    return f"{getattr(err, 'problem', None) or ' '.join(str(err).split())}{where}"


def check_raw(raw: Mapping[str, Any], model: type[BaseModel], prefix: str = "") -> None:
    """Booleans given for numbers and non-finite floats, anywhere in ``raw`` (free-form
    ``params`` dicts included), named by their dotted field."""
    for key, value in raw.items():
        field = f"{prefix}{key}"
        info = model.model_fields.get(str(key)) if model is not None else None
        annotation = info.annotation if info is not None else None
        sub = _model_in(annotation)
        if isinstance(value, Mapping):
            check_raw(value, sub, f"{field}.")  # type: ignore[arg-type]
        elif isinstance(value, list | tuple):
            for k, item in enumerate(value):
                check_raw({str(k): item}, None, f"{field}.")  # type: ignore[arg-type]
        elif isinstance(value, bool):
            if annotation is not None and not allows(annotation, bool):
                raise ConfigError(field, f"expected a number, got a boolean ({value!r})")
        elif isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(field, f"must be a finite number, got {value!r}")


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def allows(annotation: Any, kind: type) -> bool:
    """Whether ``annotation`` admits values of ``kind`` (through unions and ``Any``)."""
    if annotation is kind or annotation is Any:
        return True
    return any(allows(arg, kind) for arg in typing.get_args(annotation))


def check_absurd(cfg: BaseModel) -> None:
    """Values above ABSURD's bounds, named with the bound."""
    for field, bound in ABSURD.items():
        value: Any = cfg
        for part in field.split("."):
            value = getattr(value, part)
        if value is not None and value > bound:
            raise ConfigError(field, f"{value!r} is beyond any sensible value (at most {bound})")


def available_memory() -> int:
    """Bytes this process may still allocate: MemAvailable, or the address-space limit."""
    import resource

    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    avail = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
    except OSError:
        avail = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    candidates = [v for v in (avail, limit if limit > 0 else None) if v]
    return min(candidates) if candidates else 1 << 62


def check_memory(field: str, need: float, what: str) -> None:
    """Refuse, with the estimate, a size that does not fit in this machine's free memory."""
    have = available_memory()
    if need > have:
        raise ConfigError(field, f"{what} needs about {_gib(need)} of memory, more than the "
                                 f"{_gib(have)} available here")


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


# Each agent holds its own model, optimizer state, data view and batch stream; building one
# takes ~4 ms and ~250 KiB with the quickstart model (benchmarked on a 2-core machine), so
# 65,536 agents are already minutes and ~16 GiB before the first round.
MAX_AGENTS = 65_536
AGENT_BYTES = 64 * 2**10  # per agent beside its weights: a lower bound of the measured ~250 KiB


def check_sizes(cfg: Any) -> None:
    """Lower-bound memory estimates of the agents' models (with gradients and optimizer state)
    and of generated data, refused before anything is allocated when they exceed the
    machine."""
    n_agents = mix_agents(cfg.mix)
    if n_agents > MAX_AGENTS:
        raise ConfigError("mix", f"{n_agents} agents; at most {MAX_AGENTS} run in one process "
                          "(each holds its own model, optimizer state and batch stream: at "
                          f"{MAX_AGENTS} building them alone takes minutes and ~16 GiB)")
    # Parameters, gradients and two Adam moments of float32 of each encoder's layers between
    # its widths and to the dim r/u/s rows (a lower bound: the input layer and heads add more).
    dim = cfg.model.dim
    sets = _encoder_widths(cfg.model.encoder)
    per_agent = [16 * _weights(widths, dim) for widths in sets]
    largest = per_agent.index(max(per_agent))
    check_memory("model.encoder", per_agent[largest],
                 f"one agent's encoder of widths {sets[largest]} with model.dim={dim}")
    check_memory("model.dim", (min(per_agent) + AGENT_BYTES) * n_agents,
                 f"model.dim={dim} with {n_agents} agents")
    if cfg.data.name == "synthetic_pid":
        p = cfg.data.params
        n, d, extra = p.get("n_samples", 2000), p.get("dim", 16), p.get("distractors", 0)
        if all(isinstance(v, int) and not isinstance(v, bool) for v in (n, d, extra)):
            # two float64 modalities, generated then standardized (two copies)
            check_memory("data.params.n_samples", 2 * 2 * 8 * n * (d + extra),
                         f"synthetic_pid with n_samples={n}, dim={d + extra}")


def mix_agents(mix: Any) -> int:
    """The number of agents a ``mix`` makes (0 where its form is unreadable)."""
    if not isinstance(mix, Mapping):
        return 12  # "auto": 4 + 4 + 4
    if "n_agents" in mix:
        n = mix["n_agents"]
        return n if isinstance(n, int) else 0
    return sum(v for v in mix.values() if isinstance(v, int) and not isinstance(v, bool))


def _encoder_widths(encoder: Any) -> list[list[int]]:
    """The layer widths (``hidden`` or ``channels``) of each parameter set an agent may get:
    ``params``, or ``params`` updated by each of ``variants``; 32 where none is readable."""
    sets = [{**encoder.params, **v} if isinstance(v, Mapping) else encoder.params
            for v in encoder.variants] if encoder.variants else [encoder.params]
    out = []
    for params in sets:
        widths = params.get("hidden", params.get("channels")) if isinstance(
            params, Mapping) else None
        ok = isinstance(widths, list) and widths and all(
            isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in widths)
        out.append(list(widths) if ok else [32])
    return out


def _weights(widths: list[int], dim: int) -> int:
    """A lower bound of an encoder's parameter count: one input feature, then its widths,
    then the dim r/u/s rows."""
    return widths[0] + sum(a * b for a, b in zip(widths, widths[1:], strict=False)) + \
        widths[-1] * dim


# Topologies whose graph is disconnected in every round for more than two agents (a matching):
# the network rule of `rounds: auto` records a point only on a connected round, so it would
# never stop and the run would end at max_rounds as "not plateaued".
ALWAYS_DISCONNECTED = {"random_matching"}


def check_stop(cfg: Any) -> None:
    """Refuse `rounds: auto` with the network rule on a graph that is never connected."""
    if (cfg.train.stop == "plateau" and cfg.train.stop_rule == "network"
            and cfg.topology.name in ALWAYS_DISCONNECTED and mix_agents(cfg.mix) > 2):
        raise ConfigError("train.stop_rule", f"topology {cfg.topology.name!r} is disconnected "
                          "in every round, so the network rule of rounds: auto never records a "
                          "point and would never stop; use train.stop_rule=agents or a fixed "
                          "number of rounds")
