"""Sweeps: a grid over config keys x methods x seeds, run (in parallel processes if asked),
resumable (finished runs are skipped), summarised as a tidy CSV, JSON and markdown tables.
``parsefl compare`` is a sweep with an empty grid."""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from parsefl.config import RunConfig, apply_overrides, read_yaml, validate
from parsefl.errors import ConfigError
from parsefl.experiments.run.divergence import is_interrupted
from parsefl.experiments.run.results import RESULTS_MANIFEST, read_results


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: a grid point, a method and a seed, and the overrides that make it."""

    point: tuple[tuple[str, Any], ...]  # (key, value) of the grid, in grid order
    method: str
    seed: int
    overrides: tuple[str, ...] = field(default=())

    def __hash__(self) -> int:  # grid values may be dicts (e.g. a mix): hash the identity
        return hash(self.run_id)

    @property
    def run_id(self) -> str:
        text = json.dumps([list(self.point), self.method, self.seed], sort_keys=True)
        digest = hashlib.sha1(text.encode()).hexdigest()[:8]
        return f"{self.method}-s{self.seed}-{digest}" if self.point else \
            f"{self.method}/seed{self.seed}"


@dataclass(frozen=True)
class Sweep:
    base: dict[str, Any]  # the raw base config (before grid values, methods and seeds)
    grid: dict[str, list[Any]]
    methods: list[str]
    seeds: list[int]
    # method -> config overrides for that method's runs only (e.g. a fixed budget for the
    # pooled `centralized` ceiling in a `rounds: auto` sweep, which it cannot stop by)
    method_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)

    def specs(self) -> list[RunSpec]:
        keys = list(self.grid)
        points = itertools.product(*(self.grid[k] for k in keys)) if keys else [()]
        return [
            RunSpec(tuple(zip(keys, values, strict=True)), method, seed)
            for values in points for method in self.methods for seed in self.seeds
        ]

    def raw_config(self, spec: RunSpec) -> dict[str, Any]:
        extra = self.method_overrides.get(spec.method, {})
        raw = apply_overrides(self.base, [f"{k}={flow_yaml(v)}" for k, v in
                                          [*spec.point, *extra.items()]])
        raw["method"], raw["seed"] = spec.method, spec.seed
        return raw


def flow_yaml(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False)
    return text.strip().removesuffix("...").strip()


def resolve_methods(text: str | Sequence[str]) -> list[str]:
    """``all`` or a comma-separated list of registered sharing strategies."""
    import parsefl.components  # noqa: F401
    from parsefl.registry import SHARING

    names = [m.strip() for m in text.split(",")] if isinstance(text, str) else list(text)
    if names == ["all"]:
        return SHARING.names()
    for name in names:
        SHARING.get(name, field="--methods")
    return names


def parse_seeds(text: str | Sequence[int]) -> list[int]:
    if not isinstance(text, str):
        return [int(s) for s in text]
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigError("--seeds", f"expected comma-separated integers, got {text!r}") from None


def load_sweep(path: Path, overrides: Iterable[str] = ()) -> Sweep:
    """A sweep file: ``base`` (a config path relative to the sweep file, or omitted for the
    quickstart preset), ``overrides`` (a mapping), ``grid`` (key -> list of values),
    ``methods``, ``seeds`` and ``method_overrides`` (method -> a mapping of overrides for
    that method's runs only)."""
    from parsefl.config import PRESETS

    raw = read_yaml(path)
    allowed = ("base", "overrides", "grid", "methods", "seeds", "method_overrides")
    unknown = set(raw) - set(allowed)
    if unknown:
        raise ConfigError(f"{path}: {sorted(unknown)[0]}",
                          f"unknown key; allowed: {', '.join(allowed)}")
    base_path = (path.parent / raw["base"]) if raw.get("base") else PRESETS / "quickstart.yaml"
    fixed = [f"{k}={flow_yaml(v)}" for k, v in (raw.get("overrides") or {}).items()]
    base = apply_overrides(read_yaml(base_path), [*fixed, *overrides])
    grid = raw.get("grid") or {}
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise ConfigError(f"{path}: grid", "must map config keys to non-empty lists of values")
    methods = resolve_methods(raw.get("methods", "parse"))
    per_method = raw.get("method_overrides") or {}
    if not isinstance(per_method, dict) or not all(isinstance(v, dict)
                                                   for v in per_method.values()):
        raise ConfigError(f"{path}: method_overrides",
                          "must map method names to mappings of config overrides")
    for name in per_method:
        if name not in methods:
            raise ConfigError(f"{path}: method_overrides.{name}",
                              f"not a method of this sweep ({', '.join(methods)})")
    return Sweep(base, grid, methods, parse_seeds(raw.get("seeds", [0])), per_method)


def _run_one(raw: dict[str, Any], out_dir: str, threads: int) -> dict[str, Any]:
    import torch

    from parsefl.experiments.run.divergence import Diverged
    from parsefl.experiments.run.simulate import run_experiment

    torch.set_num_threads(threads)
    try:
        return run_experiment(validate(raw), Path(out_dir))
    except Diverged:  # recorded in its results.json; the other runs go on
        return json.loads((Path(out_dir) / "results.json").read_text())


# Keys that change how fast a run goes, never its numbers: a finished run is reused across them.
NOT_FINGERPRINTED = ("runtime.threads",)


def flat_config(resolved: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A resolved config as dotted key -> value (the part that decides a run's numbers)."""
    out: dict[str, Any] = {}
    for key, value in resolved.items():
        if isinstance(value, Mapping) and value:
            out.update(flat_config(value, f"{prefix}{key}."))
        elif f"{prefix}{key}" not in NOT_FINGERPRINTED:
            out[f"{prefix}{key}"] = value
    return out


def fingerprint(resolved: Mapping[str, Any]) -> str:
    """A short hash of a resolved config: equal fingerprints, equal runs."""
    text = json.dumps(flat_config(resolved), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def config_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``key: old -> new`` for every key whose value differs (missing keys shown as -). A key
    that only one side has and that holds its default there (a section a later release added,
    such as ``communication``) is no difference: the run it describes is the same."""
    a, b = flat_config(old), flat_config(new)
    defaults = _defaults()
    return [f"{k}: {flow_yaml(a.get(k, '-'))} -> {flow_yaml(b.get(k, '-'))}"
            for k in sorted(set(a) | set(b)) if a.get(k, "-") != b.get(k, "-")
            and not ((k in a) != (k in b) and a.get(k, b.get(k)) == defaults.get(k, "-"))]


@functools.cache
def _defaults() -> dict[str, Any]:
    return flat_config(RunConfig().model_dump(mode="json"))


def _finished(run_dir: Path, resolved: dict[str, Any], overwrite: bool) -> bool:
    """Whether ``run_dir`` holds a finished run of exactly ``resolved``; a finished run of other
    settings is refused (ConfigError naming the differing keys) unless ``overwrite``."""
    done = run_dir / "results.json"
    if not done.is_file() or not (run_dir / RESULTS_MANIFEST).is_file():
        return False  # never finished (or finished before results had manifests): run it
    try:
        results = read_results(run_dir, "--out")
    except ConfigError:
        if overwrite:
            return False
        raise
    if is_interrupted(results):
        return False  # an interrupted run is run again
    saved = run_dir / "config.yaml"
    old = read_yaml(saved) if saved.is_file() else {}
    diff = config_diff(old if isinstance(old, dict) else {}, resolved)
    if not diff:
        return True
    if overwrite:
        return False
    shown = "; ".join(diff[:4]) + (f"; and {len(diff) - 4} more" if len(diff) > 4 else "")
    raise ConfigError("--out", f"{run_dir} holds a finished run made with other settings "
                      f"({shown}); use another --out, or --overwrite to redo it")


def run_sweep(
    sweep: Sweep, out: Path, jobs: int = 1,
    on_done: Callable[[RunSpec, dict[str, Any], bool], None] | None = None,
    overwrite: bool = False,
) -> dict[RunSpec, dict[str, Any]]:
    """Run every spec that has no finished run of the identical resolved config in
    ``out/runs``; returns all results. Every config is validated, and every finished run
    checked against it, before anything runs."""
    specs = sweep.specs()
    raws = {spec: sweep.raw_config(spec) for spec in specs}
    resolved = {spec: validate(raw).model_dump(mode="json") for spec, raw in raws.items()}
    reuse = {spec: _finished(out / "runs" / spec.run_id, resolved[spec], overwrite)
             for spec in specs}
    results: dict[RunSpec, dict[str, Any]] = {}
    todo = []
    for spec in specs:
        done = out / "runs" / spec.run_id / "results.json"
        if reuse[spec]:
            results[spec] = read_results(done.parent, "--out")
            if on_done:
                on_done(spec, results[spec], True)
        else:
            todo.append(spec)
    threads = max(1, (os.cpu_count() or 1) // max(1, jobs))
    if jobs <= 1:
        for spec in todo:
            results[spec] = _run_one(raws[spec], str(out / "runs" / spec.run_id), threads)
            if on_done:
                on_done(spec, results[spec], False)
        return results
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(_run_one, raws[s], str(out / "runs" / s.run_id), threads): s
                   for s in todo}
        for future in as_completed(futures):
            spec = futures[future]
            results[spec] = future.result()
            if on_done:
                on_done(spec, results[spec], False)
    return results


def point_label(point: Mapping[str, Any] | Sequence[tuple[str, Any]]) -> str:
    items = point.items() if isinstance(point, Mapping) else point
    return ", ".join(f"{k}={flow_yaml(v)}" for k, v in items) or "-"
