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

The copies are the victim's final ones (its checkpoint: what it sends in the next round); the
copies it sent before the final merge are not stored. Inputs are the samples' features for the
neighbour's own modalities (an auditor holds the candidate records). With ~100 non-members per
victim, the rate at 1% false positives rests on one or two samples: read it as coarse.
"""

from __future__ import annotations

from collections.abc import Mapping
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
def member_scores(model: Any, x: Mapping[str, torch.Tensor], y: torch.Tensor,
                  batch: int = 1024) -> np.ndarray:
    """Minus each sample's cross-entropy under ``model`` (its own modalities of ``x``)."""
    model.eval()
    out = []
    for k in range(0, len(y), batch):
        logits = model.logits({m: x[m][k : k + batch] for m in model.modalities})
        out.append(-torch.nn.functional.cross_entropy(logits, y[k : k + batch],
                                                      reduction="none"))
    return torch.cat(out).numpy().astype(np.float64)


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


def audit_run(run_dir: Path) -> dict[str, Any]:
    """The audit of a finished run folder (see the module docstring)."""
    from parsefl.config import read_yaml, validate
    from parsefl.experiments.run.build import build_experiment
    from parsefl.experiments.run.checkpoint import load_model_file
    from parsefl.experiments.run.results import read_results

    results = read_results(run_dir, "RUN_DIR")  # finished, and verified by its manifest
    if results.get("complete") is False:
        raise ConfigError("RUN_DIR", f"{run_dir} did not finish ({results.get('stopped_by')})")
    cfg = validate({**read_yaml(run_dir / "config.yaml"), "device": "cpu"})
    exp = build_experiment(cfg)
    if exp.loop.strategy.centralized:
        raise ConfigError("RUN_DIR", f"{cfg.method} has no neighbours to audit")
    exp.loop.prepare(max(int(results["rounds_completed"]) - 1, 0))  # the last round's plans
    agents = {a.id: a for a in exp.agents}
    for i, agent in agents.items():
        path = run_dir / "checkpoints" / f"agent_{i:04d}.safetensors"
        load_model_file(agent.model, path, "RUN_DIR")
    pairs = []
    for victim in sorted(agents):
        pairs += _victim_pairs(exp, agents, victim)
    return {"method": cfg.method, "seed": cfg.seed,
            "privacy": (results.get("privacy") or {}).get("epsilon_max"),
            "attack": "loss threshold (score: minus the per-sample cross-entropy); calibrated "
                      "(*_cal): the score minus the neighbour's own model's score",
            "nonmembers": "test samples, class-matched to the victim's training labels",
            "kinds": summarize(pairs), "pairs": pairs}


def _victim_pairs(exp: Any, agents: dict, victim: int) -> list[dict[str, Any]]:
    """One row per (neighbour receiving from ``victim``, kind)."""
    plan = exp.loop.plans.get(victim)
    if plan is None:
        return []
    receivers: dict[int, list[str]] = {}
    for comp, peers in plan.paths.items():
        for j in peers:
            receivers.setdefault(j, []).append(comp)
    ds, part = exp.dataset, exp.parts[victim]
    labels = agents[victim].y.cpu().numpy()  # as the victim trained on them (label noise)
    keep, pick = matched(labels, ds.test.y, np.random.default_rng([exp.cfg.seed, victim, 29]))
    mx = {m: torch.as_tensor(v[part][keep]) for m, v in ds.train.x.items()}
    my = torch.as_tensor(labels[keep])
    nx = {m: torch.as_tensor(v[pick]) for m, v in ds.test.x.items()}
    ny = torch.as_tensor(ds.test.y[pick])
    rows = [{"victim": victim, "attacker": victim, "kind": VICTIM, "components": [],
             "members": len(my), "nonmembers": len(ny),
             **attack_metrics(member_scores(agents[victim].model, mx, my),
                              member_scores(agents[victim].model, nx, ny))}]
    for j, comps in sorted(receivers.items()):
        if j not in agents:
            continue
        kinds = {c.partition(".")[0] for c in comps}
        ref = None
        for kind in [OWN, *sorted(kinds), ALL]:
            chosen = [] if kind == OWN else [c for c in comps if kind in (ALL, c.split(".")[0])]
            scores = _with_components(agents[j], agents[victim], chosen,
                                      lambda a: (member_scores(a.model, mx, my),
                                                 member_scores(a.model, nx, ny)))
            ref = scores if ref is None else ref  # OWN comes first: the reference
            cal = {} if kind == OWN else calibrated_metrics(*scores, *ref)
            rows.append({"victim": victim, "attacker": j, "kind": kind, "components": chosen,
                         "members": len(my), "nonmembers": len(ny),
                         **attack_metrics(*scores), **cal})
    return rows


def _with_components(attacker: Any, victim: Any, comps: list[str], fn: Any) -> Any:
    """``fn(attacker)`` with the victim's copies of ``comps`` in the attacker's model."""
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
    return out
