"""Agent state for resuming a run: model, optimizer, batch generator and batch stream, as
safetensors with JSON metadata (no pickle), written atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from parsefl.runtime import Agent


def save_agent_state(agent: Agent, path: Path) -> None:
    """Everything an agent needs to continue bit-identically, written atomically."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous()
               for k, v in agent.model.state_dict().items()}
    opt, scalars = agent.optimizer.state_dict(), {}
    for idx, state in opt["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"optim.{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{key}"] = value
    tensors["generator"] = agent.generator.get_state()
    tensors["stream.perm"] = agent.stream.perm.contiguous()
    meta = {"param_groups": json.dumps(opt["param_groups"]), "scalars": json.dumps(scalars),
            "last_loss": json.dumps(agent.last_loss), "stream_pos": json.dumps(agent.stream.pos)}
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)


def load_agent_state(agent: Agent, path: Path) -> None:
    """Restore what ``save_agent_state`` wrote (the agent must have the same architecture)."""
    tensors = load_file(str(path))
    with safe_open(str(path), "pt") as fh:
        meta = fh.metadata()
    agent.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    for key, value in json.loads(meta["scalars"]).items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    agent.optimizer.load_state_dict(
        {"state": state, "param_groups": json.loads(meta["param_groups"])})
    agent.generator.set_state(tensors["generator"])
    agent.stream.perm = tensors["stream.perm"]
    agent.stream.pos = json.loads(meta["stream_pos"])
    agent.last_loss = json.loads(meta["last_loss"])
