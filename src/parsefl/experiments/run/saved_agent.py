"""A finished run's agent, rebuilt from its folder (config.yaml + final checkpoints) for
inspection: its sliced model, test inputs and slices (``parsefl probe``, the t-SNE figure)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from parsefl.config import read_yaml, validate
from parsefl.errors import ConfigError, DataError
from parsefl.experiments.run.build import build_experiment
from parsefl.experiments.run.checkpoint import load_model_file
from parsefl.model.sliced import SLICES, SlicedModel


def load_agent(
    run_dir: Path, agent: int
) -> tuple[SlicedModel, dict[str, torch.Tensor], np.ndarray, tuple[str, ...], str]:
    """The agent's sliced model with its final weights, the test inputs of its modalities,
    the labels (numpy), the class names and a title."""
    if not (run_dir / "config.yaml").is_file():
        raise DataError(f"{run_dir}: no config.yaml; not a run folder")
    checkpoints = sorted((run_dir / "checkpoints").glob("agent_*.safetensors"))
    ids = sorted(int(s) for p in checkpoints if (s := p.stem.removeprefix("agent_")).isdigit())
    if not ids:
        raise DataError(f"{run_dir}/checkpoints: no agent_NNNN.safetensors; the run has not "
                        "finished (checkpoints are written at the end)")
    if agent not in ids:  # checked before the (slower) rebuild: one checkpoint per agent
        raise ConfigError("agent", f"{agent} is out of range: this run has agents "
                          f"{ids[0]}..{ids[-1]}")
    # Rebuild on the CPU whatever device the run used: this machine may have no GPU.
    cfg = validate({**read_yaml(run_dir / "config.yaml"), "device": "cpu"})
    exp = build_experiment(cfg)
    agents = {a.id: a for a in exp.agents}
    if agent not in agents:
        raise DataError(f"{run_dir}: checkpoints do not match config.yaml (its agents: "
                        f"{sorted(agents)})")
    model = agents[agent].model  # a module for this agent alone
    if not isinstance(model, SlicedModel):
        raise ConfigError("method", f"{cfg.method!r} uses a {type(model).__name__} without "
                          "r/u/s slices; t-SNE of slices needs a sliced method (parse, local, "
                          "sliced_hybrid, centralized)")
    path = run_dir / "checkpoints" / f"agent_{agent:04d}.safetensors"
    load_model_file(model, path, "RUN_DIR")
    x = {m: exp.test_x[m].cpu() for m in model.modalities}
    title = f"{cfg.method} agent {agent} ({model.group})"
    return model.cpu().eval(), x, exp.test_y.cpu().numpy(), exp.dataset.class_names, title


def agent_slices(model: SlicedModel, x: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Slice kind -> the per-modality slices concatenated (agent's modality order); slice
    kinds the agent lacks (s for a unimodal agent) are left out."""
    with torch.no_grad():
        output = model(x)
    out = {}
    for name in SLICES:
        parts = getattr(output, name)
        if parts:
            out[name] = torch.cat([parts[m] for m in model.modalities if m in parts], dim=1)
    return {k: v.numpy().astype(np.float64) for k, v in out.items()}
