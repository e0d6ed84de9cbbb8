"""Reading what runs and sweeps leave on disk, tolerantly: plots must work on a run that is
still in progress, on methods that log no gradient cosine, and on NaN cells."""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from parsefl.errors import DataError
from parsefl.experiments.run.results import RESULTS_MANIFEST, read_results
from parsefl.experiments.sweeps.summary import summarize_method
from parsefl.experiments.sweeps.sweep import RunSpec, point_label

log = logging.getLogger(__name__)

RUN_FILES = ("config.yaml", "metrics.csv", "results.json")


@dataclass
class RunData:
    """One run folder. ``metrics`` maps each metrics.csv column to a float array (NaN where a
    row lacks the column); ``results`` is empty while the run has not finished."""

    path: Path
    config_text: str
    config: dict[str, Any]
    metrics: dict[str, np.ndarray]
    results: dict[str, Any]
    point: str = "-"  # the grid point label inside a sweep ("-" for none)

    @property
    def method(self) -> str:
        return str(self.results.get("method") or self.config.get("method", "?"))

    @property
    def seed(self) -> int:
        return int(self.results.get("seed", self.config.get("seed", 0)))

    @property
    def groups(self) -> list[str]:
        """Modality groups with an accuracy column, ordered unimodal first (as summary.md)."""
        names = [c.split(".", 1)[1] for c in self.metrics if c.startswith("accuracy.")]
        return order_groups(g for g in names if g != "overall")


@dataclass
class SweepData:
    """A sweep or compare folder: ``summary`` is grid point -> method -> summarize_method
    (from summary.json, or recomputed from the finished runs when that file is missing)."""

    path: Path
    summary: dict[str, dict[str, Any]]
    summary_md: str
    runs: list[RunData] = field(default_factory=list)

    @property
    def points(self) -> list[str]:
        seen = list(self.summary)
        return seen + [p for p in dict.fromkeys(r.point for r in self.runs) if p not in seen]

    @property
    def methods(self) -> list[str]:
        names = [m for methods in self.summary.values() for m in methods]
        return list(dict.fromkeys([*names, *(r.method for r in self.runs)]))


def order_groups(groups: Sequence[str] | Any) -> list[str]:
    return sorted(set(groups), key=lambda g: (g.count("+"), g))


def is_sweep_dir(path: Path) -> bool:
    return (path / "summary.json").is_file() or (path / "runs").is_dir()


def is_run_dir(path: Path) -> bool:
    return any((path / name).is_file() for name in RUN_FILES)


def load_any(path: Path) -> RunData | SweepData:
    """A sweep folder (summary.json or runs/) or a run folder (any of RUN_FILES).

    Raises:
        DataError: ``path`` is neither.
    """
    if not path.is_dir():
        raise DataError(f"{path}: no such folder")
    if is_sweep_dir(path):
        return load_sweep_dir(path)
    if is_run_dir(path):
        return load_run(path)
    raise DataError(f"{path}: neither a run folder ({', '.join(RUN_FILES)}) nor a sweep folder "
                    "(summary.json, runs/)")


def load_run(path: Path) -> RunData:
    """A run folder; its results.json only once its manifest verified it (a run still going
    has none yet: its metrics.csv alone is drawn; one with a manifest that does not match is
    refused in one line)."""
    from parsefl.config import read_yaml  # bounded: aliases, depth, size, encoding

    text = _read(path / "config.yaml")
    config = read_yaml(path / "config.yaml") if text else {}
    results: dict = {}
    if (path / RESULTS_MANIFEST).is_file():
        results = read_results(path, "RUN_DIR")
    elif (path / "results.json").is_file():
        log.warning("%s has no manifest (unfinished, or written before parsefl wrote "
                    "manifests): its numbers are not verified", path / "results.json")
        results = json.loads(_read(path / "results.json") or "{}")
    return RunData(path, text, config if isinstance(config, dict) else {},
                   read_metrics(path / "metrics.csv"), results)


def read_metrics(path: Path) -> dict[str, np.ndarray]:
    """metrics.csv as column -> float array; empty or unparsable cells become NaN."""
    if not path.is_file():
        return {}
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    columns = list(dict.fromkeys(k for row in rows for k in row if k is not None))
    return {c: np.array([_float(row.get(c)) for row in rows]) for c in columns}


def load_sweep_dir(path: Path) -> SweepData:
    runs = [load_run(p.parent) for p in sorted((path / "runs").rglob("results.json"))]
    # diverged or interrupted runs have no numbers to draw
    runs = [r for r in runs if r.results.get("complete", True)]
    _label_points(path, runs)
    summary = _normalize_summary(json.loads(_read(path / "summary.json") or "{}"))
    if not summary:  # interrupted before write_outputs: recompute from what finished
        summary = recompute_summary(runs)
    return SweepData(path, summary, _read(path / "summary.md"), runs)


def recompute_summary(runs: Sequence[RunData]) -> dict[str, dict[str, Any]]:
    by: dict[str, dict[str, list]] = {}
    for run in runs:
        by.setdefault(run.point, {}).setdefault(run.method, []).append(run.results)
    return {p: {m: summarize_method(rs) for m, rs in by[p].items()} for p in sorted(by)}


def cosine_per_round(run: RunData) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Rounds and component -> cosine per round: from results.json (every round) when present,
    else from metrics.csv's grad_cos.* columns (evaluation rounds only). Empty dict: none."""
    rows = run.results.get("diagnostics", {}).get("gradient_cosine", {}).get("per_round") or []
    comps = list(dict.fromkeys(k for row in rows for k in row if k != "round"))
    if rows and comps:
        rounds = np.array([float(row.get("round", k + 1)) for k, row in enumerate(rows)])
        return rounds, {c: np.array([_float(row.get(c)) for row in rows]) for c in comps}
    cols = {c.removeprefix("grad_cos."): v for c, v in run.metrics.items()
            if c.startswith("grad_cos.")}
    return run.metrics.get("round", np.array([])), cols


def nanmean_rows(stack: np.ndarray) -> np.ndarray:
    """Mean over axis 0 ignoring NaN, NaN (without a warning) where a column is all NaN."""
    valid = ~np.isnan(stack)
    count = valid.sum(axis=0)
    total = np.where(valid, stack, 0.0).sum(axis=0)
    return np.divide(total, count, out=np.full(count.shape, np.nan), where=count > 0)


def _label_points(path: Path, runs: list[RunData]) -> None:
    """Give each run its grid point label, exactly as summary.json spells it: rebuild each
    results.csv row's RunSpec and match its run_id to the folder. Runs not matched (no
    results.csv yet) are labelled from their config's values of the grid keys."""
    rows, keys = _results_csv(path / "results.csv")
    if not rows:
        _label_from_configs(runs)
        return
    by_id: dict[str, str] = {}
    for row in rows:
        point = tuple((k, _yaml_cell(row.get(k))) for k in keys)
        spec = RunSpec(point, str(row.get("method")), int(_float(row.get("seed"), 0)))
        by_id[spec.run_id] = point_label(point)
    for run in runs:
        run_id = run.path.relative_to(path / "runs").as_posix()
        if run_id in by_id:
            run.point = by_id[run_id]
        elif keys:
            run.point = point_label([(k, _lookup(run.config, k)) for k in keys])


def _label_from_configs(runs: Sequence[RunData]) -> None:
    """Without results.csv (a sweep still running) the grid keys are the config fields whose
    values differ between runs, other than method and seed."""
    flats = [_schema_flat(run.config) for run in runs]
    names = dict.fromkeys(k for flat in flats for k in flat)
    keys = [k for k in names if k not in ("method", "seed")
            and len({json.dumps(f.get(k), sort_keys=True) for f in flats}) > 1]
    for run, flat in zip(runs, flats, strict=True):
        run.point = point_label([(k, flat.get(k)) for k in keys])


def _schema_flat(config: Mapping[str, Any]) -> dict[str, Any]:
    """Config field path -> value, recursing into sub-configs only: a mapping-valued field
    (``mix``, ``data.params``) stays one value, as a sweep grid names it. Falls back to the
    top-level keys when the config no longer validates (e.g. a plugin is not installed)."""
    from pydantic import BaseModel

    from parsefl.config import validate
    from parsefl.errors import ConfigError

    try:
        cfg = validate(config)
    except ConfigError:
        return dict(config)
    out: dict[str, Any] = {}

    def walk(model: BaseModel, prefix: str) -> None:
        for name in type(model).model_fields:
            value = getattr(model, name)
            if isinstance(value, BaseModel):
                walk(value, f"{prefix}{name}.")
            else:
                out[f"{prefix}{name}"] = _plain(value)

    walk(cfg, "")
    return out


def _plain(value: Any) -> Any:
    """Tuples and other containers as the YAML/JSON types a sweep file would use (a config
    model inside a mapping, e.g. ``communication.kinds``, as its fields that were set)."""
    from pydantic import BaseModel

    def encode(v: Any) -> Any:
        return v.model_dump(exclude_none=True) if isinstance(v, BaseModel) else str(v)

    return json.loads(json.dumps(value, default=encode))


def _results_csv(path: Path) -> tuple[list[dict[str, str]], list[str]]:
    """The rows and the grid keys (the columns before ``method``) of a tidy results.csv."""
    if not path.is_file():
        return [], []
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        header = list(reader.fieldnames or [])
        rows = list(reader)
    keys = header[: header.index("method")] if "method" in header else []
    return rows, keys


def _normalize_summary(raw: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """summary.json of a compare is method -> stats; of a grid sweep, point -> method -> stats."""
    if not raw:
        return {}
    if all(isinstance(v, Mapping) and "accuracy" in v for v in raw.values()):
        return {"-": dict(raw)}
    return {p: dict(ms) for p, ms in raw.items()}


def _lookup(config: Mapping[str, Any], dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _yaml_cell(text: str | None) -> Any:
    """A results.csv cell back to the grid value (flow YAML for mappings and lists)."""
    try:
        return yaml.safe_load(text) if text is not None else None
    except yaml.YAMLError:
        return text


def _float(value: Any, default: float = math.nan) -> float:
    try:
        return float(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def _read(path: Path) -> str:
    return path.read_text() if path.is_file() else ""
