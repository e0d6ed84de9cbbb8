"""Sweeps: a grid over config keys x methods x seeds, run (in parallel processes if asked),
resumable (finished runs are skipped), summarised as a tidy CSV, JSON and markdown tables.
``parsefl compare`` is a sweep with an empty grid."""

from __future__ import annotations

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

from parsefl.config import apply_overrides, read_yaml, validate
from parsefl.errors import ConfigError


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

    def specs(self) -> list[RunSpec]:
        keys = list(self.grid)
        points = itertools.product(*(self.grid[k] for k in keys)) if keys else [()]
        return [
            RunSpec(tuple(zip(keys, values, strict=True)), method, seed)
            for values in points for method in self.methods for seed in self.seeds
        ]

    def raw_config(self, spec: RunSpec) -> dict[str, Any]:
        raw = apply_overrides(self.base, [f"{k}={flow_yaml(v)}" for k, v in spec.point])
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
    ``methods`` and ``seeds``."""
    from parsefl.config import PRESETS

    raw = read_yaml(path)
    unknown = set(raw) - {"base", "overrides", "grid", "methods", "seeds"}
    if unknown:
        raise ConfigError(f"{path}: {sorted(unknown)[0]}",
                          "unknown key; allowed: base, overrides, grid, methods, seeds")
    base_path = (path.parent / raw["base"]) if raw.get("base") else PRESETS / "quickstart.yaml"
    fixed = [f"{k}={flow_yaml(v)}" for k, v in (raw.get("overrides") or {}).items()]
    base = apply_overrides(read_yaml(base_path), [*fixed, *overrides])
    grid = raw.get("grid") or {}
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise ConfigError(f"{path}: grid", "must map config keys to non-empty lists of values")
    return Sweep(base, grid, resolve_methods(raw.get("methods", "parse")),
                 parse_seeds(raw.get("seeds", [0])))


def _run_one(raw: dict[str, Any], out_dir: str, threads: int) -> dict[str, Any]:
    import torch

    from parsefl.experiments.divergence import Diverged
    from parsefl.experiments.run import run_experiment

    torch.set_num_threads(threads)
    try:
        return run_experiment(validate(raw), Path(out_dir))
    except Diverged:  # recorded in its results.json; the other runs go on
        return json.loads((Path(out_dir) / "results.json").read_text())


def run_sweep(
    sweep: Sweep, out: Path, jobs: int = 1,
    on_done: Callable[[RunSpec, dict[str, Any], bool], None] | None = None,
) -> dict[RunSpec, dict[str, Any]]:
    """Run every spec whose ``results.json`` is not already in ``out/runs``; returns all
    results. Every config is validated before anything runs."""
    specs = sweep.specs()
    raws = {spec: sweep.raw_config(spec) for spec in specs}
    for raw in raws.values():
        validate(raw)
    results: dict[RunSpec, dict[str, Any]] = {}
    todo = []
    for spec in specs:
        done = out / "runs" / spec.run_id / "results.json"
        if done.is_file():
            results[spec] = json.loads(done.read_text())
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
