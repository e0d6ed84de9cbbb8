"""Summaries of many runs: mean ± std over seeds per method (and grid point), as a tidy CSV,
JSON and markdown tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from parsefl.experiments.run.divergence import is_diverged
from parsefl.experiments.sweeps.sweep import RunSpec, flow_yaml, point_label

CEILING = {"centralized"}  # reference ceilings, never peers: marked in every table


def mean_std(values: Sequence[float]) -> dict[str, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value)."""
    arr = np.asarray(values, dtype=float)
    std = float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
    return {"mean": float(arr.mean()), "std": std, "n": len(arr)}


def summarize_method(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """summary.json's entry of one method: per metric, overall and per-group mean/std over the
    seeds, and the mean bytes per link per round."""
    out: dict[str, Any] = {}
    for metric in ("accuracy", "macro_f1"):
        groups = sorted({g for r in runs for g in r["final"][metric]["groups"]})
        out[metric] = {
            "overall": mean_std([r["final"][metric]["overall"] for r in runs]),
            "groups": {g: mean_std([r["final"][metric]["groups"][g] for r in runs])
                       for g in groups},
        }
    for side in ("adjacent", "non_adjacent"):  # attacked runs (results.json final.<side>)
        sides = [r["final"].get(side, {}) for r in runs]
        if sides and all("accuracy" in s for s in sides):
            out[side] = {m: {"overall": mean_std([s[m]["overall"] for s in sides]),
                             "groups": {g: mean_std([s[m]["groups"][g] for s in sides])
                                        for g in sorted(set.intersection(
                                            *(set(s[m]["groups"]) for s in sides)))}}
                         for m in ("accuracy", "macro_f1")}
    out["bytes_per_link_per_round"] = float(np.mean(
        [r["communication"]["bytes_per_link_per_round_mean"] for r in runs]))
    cos = [r.get("diagnostics", {}).get("gradient_cosine", {}).get("overall_mean") for r in runs]
    cos = [c for c in cos if c is not None]
    out["gradient_cosine"] = mean_std(cos) if cos else None
    out["seeds"] = sorted(r["seed"] for r in runs)
    out["budget"] = budget(runs)
    return out


def plateaued(result: Mapping[str, Any]) -> bool | None:
    """Whether a run's curves had plateaued (results.json ``convergence.converged``: by
    ``train.stop_rule``'s measure with a validation split, else by the test curve, a report
    only); None for a result without a convergence record."""
    conv = result.get("convergence")
    return bool(conv["converged"]) if isinstance(conv, Mapping) and "converged" in conv else None


def falling(result: Mapping[str, Any]) -> bool:
    """Whether some group's judged curve lost at least the plateau margin over the judged
    window (``convergence.groups[g].gain <= -min_gain``): such a run counts as "plateaued" by
    the gain rule, yet its final number is below what it had reached."""
    conv = result.get("convergence")
    if not isinstance(conv, Mapping):
        return False
    margin = float(conv.get("min_gain", 0.005))
    return any(isinstance(g, Mapping) and g.get("gain") is not None and g["gain"] <= -margin
               for g in (conv.get("groups") or {}).values())


def budget(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The rounds each seed ran, how many had plateaued, how many ``rounds: auto`` stopped
    and how many had a group falling: what a table's "budget and plateau" line is read from."""
    flags = [plateaued(r) for r in runs]
    return {"rounds": [int(r.get("rounds_completed", 0)) for r in runs],
            "plateaued": sum(f is True for f in flags), "judged": sum(f is not None for f in flags),
            "stopped_by_plateau": sum(r.get("stopped_by") == "plateau" for r in runs),
            "falling": sum(falling(r) for r in runs)}


def fmt_budget(b: Mapping[str, Any] | None) -> str:
    """``135–150 (2/3)``: the rounds run (a range over seeds) and the plateaued count
    (``; 1 falling`` where a group's curve had dropped by the plateau margin)."""
    if not b or not b.get("rounds"):
        return "–"
    lo, hi = min(b["rounds"]), max(b["rounds"])
    rounds = f"{lo}" if lo == hi else f"{lo}–{hi}"
    down = f"; {b['falling']} falling" if b.get("falling") else ""
    return f"{rounds} ({b['plateaued']}/{b['judged']}{down})" if b.get("judged") else rounds


def summarize(results: Mapping[RunSpec, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Grid-point label -> method -> summarize_method over its seeds (grid order kept).
    Diverged runs are left out (see diverged_note); a method whose every run diverged too."""
    by_point: dict[str, dict[str, list]] = {}
    for spec, res in results.items():
        if is_diverged(res):
            continue
        by_point.setdefault(point_label(spec.point), {}).setdefault(spec.method, []).append(res)
    return {p: {m: summarize_method(rs) for m, rs in methods.items()}
            for p, methods in by_point.items()}


def tidy_rows(results: Mapping[RunSpec, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per run and scope (overall, then each group)."""
    rows = []
    for spec, res in results.items():
        if is_diverged(res):
            continue
        base = {**{k: _cell(v) for k, v in spec.point}, "method": spec.method, "seed": spec.seed}
        comm = res["communication"]["bytes_per_link_per_round_mean"]
        cos = res.get("diagnostics", {}).get("gradient_cosine", {}).get("overall_mean")
        run = {"rounds": res.get("rounds_completed"), "plateaued": plateaued(res),
               "stopped_by": res.get("stopped_by")}
        final = res["final"]
        scopes = {"overall": {m: final[m]["overall"] for m in ("accuracy", "macro_f1")}}
        for g in final["accuracy"]["groups"]:
            scopes[g] = {m: final[m]["groups"][g] for m in ("accuracy", "macro_f1")}
        for side in ("adjacent", "non_adjacent"):  # honest agents next to an attacker or not
            part = final.get(side, {})
            if "accuracy" in part:
                scopes[side] = {m: part[m]["overall"] for m in ("accuracy", "macro_f1")}
                for g in part["accuracy"]["groups"]:
                    scopes[f"{side}.{g}"] = {m: part[m]["groups"][g]
                                             for m in ("accuracy", "macro_f1")}
        for scope, values in scopes.items():
            rows.append({**base, "scope": scope, **values, "bytes_per_link_per_round": comm,
                         "gradient_cosine": cos, "wall_time_s": res["wall_time_s"], **run})
    return rows


def diverged_note(results: Mapping[RunSpec, Mapping[str, Any]]) -> str:
    """One line naming the diverged runs (left out of every table), or ""."""
    runs = [f"{s.method} seed {s.seed}" + (f" ({point_label(s.point)})" if s.point else "")
            + f" at round {r['diverged_round']}" for s, r in results.items() if is_diverged(r)]
    return f"Diverged (non-finite loss; left out of the tables): {'; '.join(runs)}" if runs else ""


def _cell(value: Any) -> Any:
    return value if isinstance(value, int | float | str) else flow_yaml(value)


def fmt_stat(stat: Mapping[str, float] | None, digits: int = 3) -> str:
    """``mean ± std``, or the mean alone for a single seed (a std of one value says nothing)."""
    if stat is None:
        return "–"
    if stat.get("n", 2) <= 1:
        return f"{stat['mean']:.{digits}f}"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


_fmt = fmt_stat


def group_columns(methods: Mapping[str, Mapping[str, Any]], metric: str) -> list[str]:
    """The groups of every method, unimodal first, then by name."""
    return sorted({g for s in methods.values() for g in s[metric]["groups"]},
                  key=lambda g: (g.count("+"), g))


def best_methods(methods: Mapping[str, Mapping[str, Any]], metric: str) -> dict[str, str]:
    """Column (group or "overall") -> the non-ceiling method with the highest mean."""
    best: dict[str, str] = {}
    for col in [*group_columns(methods, metric), "overall"]:
        scores = {name: (s[metric]["overall"] if col == "overall" else
                         s[metric]["groups"].get(col, {"mean": float("-inf")}))["mean"]
                  for name, s in methods.items() if name not in CEILING}
        if scores:
            best[col] = max(scores, key=scores.__getitem__)
    return best


def markdown_table(methods: Mapping[str, Mapping[str, Any]], metric: str = "accuracy") -> str:
    """One markdown table: a row per method, a column per group, overall, bytes, cosine; the
    best non-ceiling value of each accuracy column in bold."""
    groups = group_columns(methods, metric)
    best = best_methods(methods, metric)
    head = ["method", *groups, "overall", "bytes/link/round", "grad cos",
            "rounds (plateaued)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, s in methods.items():
        label = f"{name} (ceiling)" if name in CEILING else name
        stats = [*(s[metric]["groups"].get(g) for g in groups), s[metric]["overall"]]
        cells = [f"**{_fmt(v)}**" if best.get(col) == name and v is not None else _fmt(v)
                 for col, v in zip([*groups, "overall"], stats, strict=True)]
        cells += [f"{s['bytes_per_link_per_round']:,.0f}", _fmt(s["gradient_cosine"]),
                  fmt_budget(s.get("budget"))]
        lines.append("| " + " | ".join([label, *cells]) + " |")
    return "\n".join(lines)


def markdown_report(
    summary: Mapping[str, Mapping[str, Any]], command: str, resolved: str = ""
) -> str:
    """Every grid point's accuracy and macro-F1 tables, with the command that made them and
    (``resolved``) the resolved config they ran."""
    parts = [f"Generated by `{command}`. Mean ± std over seeds (bold: the best method of a "
             "column, ceilings aside); "
             "bytes = mean payload bytes per physical link per round; grad cos = mean cosine "
             "between unimodal and multimodal gradients on shared components; rounds "
             "(plateaued) = the rounds each seed ran and how many of them had plateaued "
             "(results.json convergence.converged).\n"]
    if resolved:
        parts.append(resolved)
    for point, methods in summary.items():
        if point != "-":
            parts.append(f"### {point}\n")
        for metric in ("accuracy", "macro_f1"):
            parts.append(f"**{metric.replace('_', '-')}**\n\n{markdown_table(methods, metric)}\n")
    return "\n".join(parts)
