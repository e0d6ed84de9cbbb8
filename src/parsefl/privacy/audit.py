"""Membership inference by a curious neighbour (``parsefl audit RUN_DIR``): what an agent learns
about a neighbour's training data from the components it receives from it.

For every victim and every neighbour that receives components from it under the run's sharing
plan (the last round's), the neighbour puts the victim's copies of those components into its
own model and runs a loss-threshold attack (score = minus the per-sample cross-entropy): the
victim's training samples (members) against held-out test samples (non-members) drawn class by
class to the members' label counts, so that label skew alone tells nothing. Reported per
component kind (only that kind's components from the victim, the rest the neighbour's own),
for all received components together (``all``), and for the neighbour's own model (``own``: what
gossip already carried into it): the AUC and the true-positive rate at 1% false positives.
``victim`` (one row per victim, attacker = the victim itself): the same attack on the victim's
own whole final model, the ceiling of what any sharing rule could hand a neighbour of these
copies.

Two attacks on the same scores: ``loss`` thresholds the score itself; ``calibrated`` (a
reference-model attack, LiRA's offline idea without its Gaussian fit) thresholds the score minus
the same sample's score under the neighbour's own model, its reference for "not trained on
this sample": per-example difficulty cancels, what the victim's copies add remains. The
reference is imperfect (gossip has already mixed earlier copies of the victim's components
into it), which can only make the attack weaker.

With ``--shadows K`` a third: the likelihood-ratio attack (LiRA, ``parsefl.privacy.lira``,
online and offline) against K shadow runs of the same config in which every agent trains on a
random half of its own samples (``parsefl.privacy.shadows``): each view (victim, attacker,
kind) is rebuilt in every shadow, so a sample's statistic is compared with what the same view
gives when the victim did not train on it (and, online, when it did): an OUT reference that
never saw the sample, which the calibrated attack lacks.

The copies are the victim's final ones (its checkpoint: what it sends in the next round); the
copies it sent before the final merge are not stored. Inputs are the samples' features for the
neighbour's own modalities (an auditor holds the candidate records). With ~100 non-members per
victim, the rate at 1% false positives rests on one or two samples: read it as coarse.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from parsefl.errors import ConfigError

OWN, ALL, VICTIM = "own", "all", "victim"


def attack_metrics(members: np.ndarray, nonmembers: np.ndarray) -> dict[str, float]:
    """AUC and TPR at 1% FPR of scores (higher: more likely a member)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    labels = np.r_[np.ones(len(members)), np.zeros(len(nonmembers))]
    scores = np.r_[members, nonmembers]
    fpr, tpr, _ = roc_curve(labels, scores)
    return {"auc": float(roc_auc_score(labels, scores)),
            "tpr_at_1pct_fpr": float(tpr[fpr <= 0.01].max())}


@torch.no_grad()
def model_logits(model: Any, x: Mapping[str, torch.Tensor], batch: int = 1024) -> torch.Tensor:
    """``model``'s logits of the samples ``x`` (its own modalities of them)."""
    model.eval()
    n = len(next(iter(x.values())))
    return torch.cat([model.logits({m: x[m][k : k + batch] for m in model.modalities})
                      for k in range(0, n, batch)])


def member_scores(model: Any, x: Mapping[str, torch.Tensor], y: torch.Tensor,
                  batch: int = 1024) -> np.ndarray:
    """Minus each sample's cross-entropy under ``model`` (its own modalities of ``x``)."""
    return _neg_ce(model_logits(model, x, batch), y)


def calibrated_metrics(members: np.ndarray, nonmembers: np.ndarray, ref_members: np.ndarray,
                       ref_nonmembers: np.ndarray) -> dict[str, float]:
    """The reference-model attack: AUC and TPR at 1% FPR of each sample's score minus its
    score under the reference model."""
    got = attack_metrics(members - ref_members, nonmembers - ref_nonmembers)
    return {"auc_cal": got["auc"], "tpr_at_1pct_fpr_cal": got["tpr_at_1pct_fpr"]}


def matched(member_y: np.ndarray, pool_y: np.ndarray, rng: np.random.Generator
            ) -> tuple[np.ndarray, np.ndarray]:
    """Indices of members and of pool samples with equal counts per class (the smaller of the
    two counts, drawn without replacement)."""
    keep, pick = [], []
    for c in np.unique(member_y):
        mine, theirs = np.flatnonzero(member_y == c), np.flatnonzero(pool_y == c)
        k = min(len(mine), len(theirs))
        keep.append(rng.choice(mine, k, replace=False))
        pick.append(rng.choice(theirs, k, replace=False))
    return np.concatenate(keep), np.concatenate(pick)


def audit_run(run_dir: Path, shadows: int = 0,
              on_shadow: Callable[[int, bool], None] | None = None) -> dict[str, Any]:
    """The audit of a finished run folder (see the module docstring); ``shadows`` > 0 adds the
    likelihood-ratio attack with that many shadow runs (run first where missing;
    ``on_shadow(k, reused)`` after each)."""
    from parsefl.config import read_yaml, validate
    from parsefl.experiments.run.build import build_experiment
    from parsefl.experiments.run.results import read_results
    from parsefl.privacy.shadows import check_count, ensure_shadows

    check_count(shadows)
    results = read_results(run_dir, "RUN_DIR")  # finished, and verified by its manifest
    if results.get("complete") is False:
        raise ConfigError("RUN_DIR", f"{run_dir} did not finish ({results.get('stopped_by')})")
    raw = read_yaml(run_dir / "config.yaml")
    cfg = validate({**raw, "device": "cpu"})
    exp = build_experiment(cfg)
    if exp.loop.strategy.centralized:
        raise ConfigError("RUN_DIR", f"{cfg.method} has no neighbours to audit")
    if shadows and (cfg.imperfect.missing_modality or cfg.imperfect.label_noise
                    or cfg.imperfect.missing_labels):
        raise ConfigError("--shadows", "a run with imperfect data (labels or modalities "
                          "damaged per sample) has no shadow runs: a half would be damaged "
                          "differently")
    exp.loop.prepare(max(int(results["rounds_completed"]) - 1, 0))  # the last round's plans
    agents = {a.id: a for a in exp.agents}
    _load(agents, run_dir)
    views = {v: _views(exp, agents, v) for v in sorted(agents) if v in exp.loop.plans}
    seen = _observe(agents, views)
    pairs = [row for v, (cand, vs) in views.items() for row in _rows(cand, vs, seen[v])]
    out = {"method": cfg.method, "seed": cfg.seed,
           "privacy": (results.get("privacy") or {}).get("epsilon_max"),
           "attack": "loss threshold (score: minus the per-sample cross-entropy); calibrated "
                     "(*_cal): the score minus the neighbour's own model's score",
           "nonmembers": "test samples, class-matched to the victim's training labels"}
    if shadows:
        subs = ensure_shadows(run_dir, validate(raw), [len(p) for p in exp.parts], shadows,
                              on_shadow)
        _add_lira(pairs, views, seen, _shadow_views(agents, views, run_dir, shadows), subs,
                  cfg.seed)
        out["attack"] += ("; LiRA (*_lira, *_lira_offline): likelihood ratio of the "
                          "logit-scaled confidence against the shadow runs")
        out["shadows"] = {"count": shadows, "folder": "shadows",
                          "seeds": [s.seed for s in subs]}
    return {**out, "kinds": summarize(pairs), "pairs": pairs}


def _shadow_views(agents: dict, views: dict, run_dir: Path, count: int) -> list[dict]:
    """Every view's logits in each shadow run (its agents' final models in ``agents``)."""
    from parsefl.privacy.shadows import shadow_dir

    seen = []
    for k in range(count):
        _load(agents, shadow_dir(run_dir, k))
        seen.append(_observe(agents, views))
    return seen


def _load(agents: dict, run_dir: Path) -> None:
    from parsefl.experiments.run.checkpoint import load_model_file

    for i, agent in agents.items():
        path = run_dir / "checkpoints" / f"agent_{i:04d}.safetensors"
        load_model_file(agent.model, path, "RUN_DIR")


@dataclass
class Candidates:
    """A victim's members (``keep``: their positions in its part) and class-matched
    non-members, as inputs and labels."""

    keep: np.ndarray
    mx: dict[str, torch.Tensor]
    my: torch.Tensor
    nx: dict[str, torch.Tensor]
    ny: torch.Tensor


@dataclass(frozen=True)
class View:
    """What one attacker looks at: its model with the victim's copies of ``components`` (the
    victim's own whole model for ``kind`` victim)."""

    victim: int
    attacker: int
    kind: str
    components: tuple[str, ...]


def _views(exp: Any, agents: dict, victim: int) -> tuple[Candidates, list[View]]:
    """The victim's candidates, and one view per (neighbour receiving from it, kind)."""
    receivers: dict[int, list[str]] = {}
    for comp, peers in exp.loop.plans[victim].paths.items():
        for j in peers:
            receivers.setdefault(j, []).append(comp)
    ds, part = exp.dataset, exp.parts[victim]
    labels = agents[victim].y.cpu().numpy()  # as the victim trained on them (label noise)
    keep, pick = matched(labels, ds.test.y, np.random.default_rng([exp.cfg.seed, victim, 29]))
    cand = Candidates(keep, {m: torch.as_tensor(v[part][keep]) for m, v in ds.train.x.items()},
                      torch.as_tensor(labels[keep]),
                      {m: torch.as_tensor(v[pick]) for m, v in ds.test.x.items()},
                      torch.as_tensor(ds.test.y[pick]))
    views = [View(victim, victim, VICTIM, ())]
    for j, comps in sorted(receivers.items()):
        if j not in agents:
            continue
        kinds = {c.partition(".")[0] for c in comps}
        for kind in [OWN, *sorted(kinds), ALL]:
            chosen = [] if kind == OWN else [c for c in comps if kind in (ALL, c.split(".")[0])]
            views.append(View(victim, j, kind, tuple(chosen)))
    return cand, views


Logits = tuple[torch.Tensor, torch.Tensor]  # of the members, of the non-members


def _observe(agents: dict, views: dict[int, tuple[Candidates, list[View]]]
             ) -> dict[int, list[Logits]]:
    """Each view's logits of its victim's candidates, under the agents' current models."""
    out = {}
    for victim, (cand, vs) in views.items():
        out[victim] = [_with_components(agents[v.attacker], agents[victim], list(v.components),
                                        lambda a, c=cand: (model_logits(a.model, c.mx),
                                                           model_logits(a.model, c.nx)))
                       for v in vs]
    return out


def _rows(cand: Candidates, views: list[View], seen: list[Logits]) -> list[dict[str, Any]]:
    """One row per view: the loss-threshold attack, and the calibrated one (reference: the
    same attacker's own model, its OWN view, which comes first)."""
    rows, refs = [], {}
    for v, (mem, non) in zip(views, seen, strict=True):
        scores = (_neg_ce(mem, cand.my), _neg_ce(non, cand.ny))
        refs.setdefault(v.attacker, scores)
        cal = {} if v.kind in (OWN, VICTIM) else calibrated_metrics(*scores, *refs[v.attacker])
        rows.append({"victim": v.victim, "attacker": v.attacker, "kind": v.kind,
                     "components": list(v.components), "members": len(cand.my),
                     "nonmembers": len(cand.ny), **attack_metrics(*scores), **cal})
    return rows


def _add_lira(pairs: list[dict], views: dict, seen: dict, shadow_seen: list[dict],
              subs: list, seed: int) -> None:
    """Each row's LiRA metrics (``parsefl.privacy.lira``), in place."""
    from parsefl.privacy.lira import lira_scores, logit_confidence
    from parsefl.privacy.shadows import in_out

    rows = iter(pairs)
    for victim, (cand, vs) in views.items():
        inside, outside = in_out(cand.keep, [s.keep[victim] for s in subs], len(cand.ny),
                                 [seed, victim])
        y = torch.cat([cand.my, cand.ny])
        for k, _ in enumerate(vs):
            phi = logit_confidence(torch.cat(seen[victim][k]), y)
            shadow = np.stack([logit_confidence(torch.cat(s[victim][k]), y)
                               for s in shadow_seen])
            got = lira_scores(phi, shadow, inside, outside)
            row, m = next(rows), len(cand.my)
            for name, key in (("online", "lira"), ("offline", "lira_offline")):
                metrics = attack_metrics(got[name][:m], got[name][m:])
                row[f"auc_{key}"] = metrics["auc"]
                row[f"tpr_at_1pct_fpr_{key}"] = metrics["tpr_at_1pct_fpr"]


def _neg_ce(logits: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    return (-torch.nn.functional.cross_entropy(logits, y, reduction="none")
            ).numpy().astype(np.float64)


def _with_components(attacker: Any, victim: Any, comps: list[str], fn: Any) -> Any:
    """``fn(attacker)`` with the victim's copies of ``comps`` in the attacker's model (the
    victim's own model when the attacker is the victim)."""
    saved = {c: attacker.get_component(c) for c in comps}
    try:
        for c in comps:
            attacker.set_component(c, victim.get_component(c))
        return fn(attacker)
    finally:
        for c, values in saved.items():
            attacker.set_component(c, values)


def summarize(pairs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per kind: the number of (victim, neighbour) pairs and the mean and std of each metric."""
    out = {}
    for kind in sorted({p["kind"] for p in pairs},
                       key=lambda k: (k == VICTIM, k == ALL, k != OWN, k)):
        rows = [p for p in pairs if p["kind"] == kind]
        auc = np.array([p["auc"] for p in rows])
        tpr = np.array([p["tpr_at_1pct_fpr"] for p in rows])
        out[kind] = {"pairs": len(rows), "auc_mean": float(auc.mean()),
                     "auc_std": float(auc.std()), "auc_max": float(auc.max()),
                     "tpr_at_1pct_fpr_mean": float(tpr.mean())}
        if kind not in (OWN, VICTIM):
            cal = np.array([p["auc_cal"] for p in rows])
            out[kind].update(auc_cal_mean=float(cal.mean()), auc_cal_max=float(cal.max()),
                             tpr_at_1pct_fpr_cal_mean=float(np.mean(
                                 [p["tpr_at_1pct_fpr_cal"] for p in rows])))
        for key in ("lira", "lira_offline"):
            if f"auc_{key}" in rows[0]:
                auc = np.array([p[f"auc_{key}"] for p in rows])
                out[kind].update({f"auc_{key}_mean": float(auc.mean()),
                                  f"auc_{key}_max": float(auc.max()),
                                  f"tpr_at_1pct_fpr_{key}_mean": float(np.mean(
                                      [p[f"tpr_at_1pct_fpr_{key}"] for p in rows]))})
    return out
