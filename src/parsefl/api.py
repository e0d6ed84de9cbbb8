"""The public Python API (``parsefl.run``, ``parsefl.compare``), for notebooks and scripts:
the same runs as the CLI, returning typed results. ``import parsefl`` loads this lazily."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parsefl.config import PRESETS, RunConfig, apply_overrides, read_yaml, validate
from parsefl.plugins import load_plugins

ConfigLike = str | Path | Mapping[str, Any] | RunConfig | None


@dataclass(frozen=True)
class RunResult:
    """One finished run: the headline numbers, and ``results.json`` in full as ``raw``."""

    out_dir: Path
    method: str
    dataset: str
    seed: int
    rounds: int
    accuracy: float  # final, mean over agents
    macro_f1: float
    group_accuracy: dict[str, float]  # final accuracy per modality group
    bytes_total: int
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_results(cls, out_dir: Path, results: Mapping[str, Any]) -> RunResult:
        final = results["final"]
        return cls(Path(out_dir), results["method"], results["dataset"], results["seed"],
                   results["rounds_completed"], final["accuracy"]["overall"],
                   final["macro_f1"]["overall"], dict(final["accuracy"]["groups"]),
                   results["communication"]["bytes_total"], dict(results))


@dataclass(frozen=True)
class MethodSummary:
    """One method of a comparison: mean and sample std over its seeds."""

    method: str
    seeds: list[int]
    accuracy: float
    accuracy_std: float
    macro_f1: float
    macro_f1_std: float
    group_accuracy: dict[str, float]  # mean over seeds
    bytes_per_link_per_round: float


@dataclass(frozen=True)
class CompareResult:
    """``parsefl compare``: one summary per method (``summary.json`` in full as ``raw``)."""

    out_dir: Path
    methods: dict[str, MethodSummary]
    raw: dict[str, Any] = field(repr=False)


def resolve_config(config: ConfigLike = None, overrides: Iterable[str] = (),
                   **values: Any) -> RunConfig:
    """A validated config from a preset path (None: the quickstart), a dict or a RunConfig,
    then ``key=value`` strings, then keyword values (``train__lr=0.01`` sets ``train.lr``)."""
    return validate(_raw(config, overrides, values))


def run(config: ConfigLike = None, *, out: str | Path | None = None,
        overrides: Iterable[str] = (), plugins: Sequence[str | Path] = (),
        resume: bool = False, **values: Any) -> RunResult:
    """Run one experiment, e.g. ``parsefl.run(rounds=10, method="local")``; ``out`` defaults
    to ``runs/<method>-<dataset>-s<seed>-<time>``. See :func:`resolve_config`."""
    from parsefl.data import dataset_slug
    from parsefl.experiments.run.rundir import default_run_dir
    from parsefl.experiments.run.simulate import run_experiment

    load_plugins(plugins)
    cfg = resolve_config(config, overrides, **values)
    out_dir = Path(out) if out else default_run_dir(cfg.method, dataset_slug(cfg.data.name),
                                                    cfg.seed)
    return RunResult.from_results(out_dir, run_experiment(cfg, out_dir, resume=resume))


def compare(config: ConfigLike = None, *, methods: str | Sequence[str] = "all",
            seeds: str | Sequence[int] = (0, 1, 2), out: str | Path = "runs/compare",
            jobs: int = 1, overrides: Iterable[str] = (), plugins: Sequence[str | Path] = (),
            **values: Any) -> CompareResult:
    """Run several methods x seeds on identical partitions, graphs and initialisations (as
    ``parsefl compare``); finished runs in ``out`` are reused."""
    from parsefl.experiments.sweeps.compare import run_and_summarize
    from parsefl.experiments.sweeps.sweep import Sweep, parse_seeds, resolve_methods

    load_plugins(plugins)
    raw = _raw(config, overrides, values)
    validate(raw)
    sweep = Sweep(raw, {}, resolve_methods(methods), parse_seeds(seeds))
    summary = run_and_summarize(sweep, Path(out), jobs)
    per_method = summary["-"]
    return CompareResult(Path(out), {m: _method(m, s) for m, s in per_method.items()},
                         per_method)


def _method(name: str, s: Mapping[str, Any]) -> MethodSummary:
    acc, f1 = s["accuracy"], s["macro_f1"]
    return MethodSummary(name, list(s["seeds"]), acc["overall"]["mean"], acc["overall"]["std"],
                         f1["overall"]["mean"], f1["overall"]["std"],
                         {g: v["mean"] for g, v in acc["groups"].items()},
                         s["bytes_per_link_per_round"])


def _raw(config: ConfigLike, overrides: Iterable[str], values: Mapping[str, Any]
         ) -> dict[str, Any]:
    if isinstance(config, RunConfig):
        raw = config.model_dump(mode="json")
    elif isinstance(config, Mapping):
        raw = dict(config)
    else:
        raw = read_yaml(config or PRESETS / "quickstart.yaml")
    raw = apply_overrides(raw, overrides)
    for key, value in values.items():
        node = raw
        *parents, leaf = key.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return raw
