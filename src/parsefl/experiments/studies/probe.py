"""Slice probing on synthetic PID data: what each learned slice of an agent carries.

For a finished run on ``synthetic_pid``, fit a linear probe (logistic regression, 5-fold
cross-validated accuracy on the test split) from each slice kind — r, u, s and the fused
synergy representation — to each latent bit (r, u1, u2, s1, s2 and s1 XOR s2), and measure
the PID of the agent's two modalities' slices about the label. The method's claim, made
testable: r predicts the redundant bit but not the synergy bit; only the fused synergy slice
predicts s1 XOR s2.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from parsefl.config import read_yaml, validate
from parsefl.errors import ConfigError

TARGETS = ("r", "u1", "u2", "s1", "s2", "xor")


def _latents(cfg: Any, n_test: int) -> dict[str, np.ndarray]:
    from parsefl.data.synthetic import synthetic_pid_latents

    params = cfg.data.params
    lat = synthetic_pid_latents(cfg.seed, int(params.get("n_samples", 2000)))
    lat = {k: v[-n_test:] for k, v in lat.items()}  # the test split is the last rows
    lat["xor"] = lat["s1"] ^ lat["s2"]
    return lat


def _probe(features: np.ndarray, target: np.ndarray) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    if len(np.unique(target)) < 2:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = cross_val_score(LogisticRegression(max_iter=2000), features, target, cv=5)
    return float(scores.mean())


def probe_run(run_dir: Path, agent: int) -> dict[str, Any]:
    """Probe accuracies per slice kind and target, and the PID of each slice pair."""
    from parsefl.experiments.run.saved_agent import agent_slices, load_agent
    from parsefl.pid import SparseJointWarning, slice_pid

    cfg = validate(read_yaml(run_dir / "config.yaml"))
    if cfg.data.name != "synthetic_pid" or cfg.data.params.get("arity", 2) != 2:
        raise ConfigError("data.name", "slice probing needs a run on binary synthetic_pid data")
    model, x, y, _, title = load_agent(run_dir, agent)
    slices = agent_slices(model, x)
    with torch.no_grad():
        out = model(x)
        if model.fusion is not None:
            fused = model.fusion([out.s[m] for m in model.modalities])
            slices["fused_s"] = fused.numpy().astype(np.float64)
    latents = _latents(cfg, len(y))
    probes = {kind: {t: _probe(feat, latents[t]) for t in TARGETS}
              for kind, feat in slices.items()}
    pids = {}
    if len(model.modalities) == 2:
        a, b = model.modalities
        for kind in ("r", "u", "s"):
            parts = getattr(out, kind)
            if a in parts and b in parts:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", SparseJointWarning)
                    pids[kind] = slice_pid(parts[a], parts[b], y).as_dict(names=(a, b))
    return {"run": str(run_dir), "agent": agent, "title": title, "probe_accuracy": probes,
            "slice_pid": pids}
