"""Run state for resuming: each agent's model, optimizer, batch generator and batch stream, the
backend's own state (the vectorized backend's stacked optimizers), the global torch RNG and the
driver's history, as safetensors with JSON metadata (no pickle), each file written atomically.

A checkpoint is a folder ``state/round_NNNNNN/``; its marker JSON (``run.json`` for the
simulator, ``rank_K.json`` for distributed rank K) is written last, so an interrupted checkpoint
has no marker and is never resumed from."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from parsefl.config import RunConfig
from parsefl.experiments.run.rundir import write_json
from parsefl.runtime import Agent, Executor
from parsefl.runtime.checks import ReceiveChecks


def fingerprint(cfg: RunConfig) -> str:
    """What must not change between a run and its resume (rounds and evaluation may). Values
    left at their defaults are not part of it, so a release that adds a config section (with
    a default that changes nothing) still resumes and reuses the runs of the one before."""
    data = cfg.model_dump(mode="json", exclude={"rounds", "eval_every", "device", "runtime"},
                          exclude_defaults=True)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def round_folder(out: Path, done: int) -> Path:
    return out / "state" / f"round_{done:06d}"


def complete_rounds(out: Path, marker: str) -> list[int]:
    """Rounds whose checkpoint folder holds ``marker`` (written last: the part is complete)."""
    return sorted(int(p.name[6:]) for p in (out / "state").glob("round_*")
                  if (p / marker).is_file())


def save_state(folder: Path, agents: Iterable[Agent], executor: Executor, marker: str,
               meta: Mapping[str, Any], checks: ReceiveChecks | None = None) -> None:
    """Agents, the executor's own state (if it has any) and the RNG, then ``marker`` (several
    processes may write their parts into one folder: each names its files by its marker),
    which also holds the receive checks' rejection counts so far (``checks``)."""
    part = Path(marker).stem
    folder.mkdir(parents=True, exist_ok=True)
    for agent in agents:
        save_agent_state(agent, folder / f"agent_{agent.id:04d}.safetensors")
    optimizers = executor.checkpoint_state()["optimizers"]
    if optimizers:  # a stacked executor's per-group optimizers (the reference one has none)
        tensors, scalars = {}, {}
        for k, opt in enumerate(optimizers):
            _flatten_optimizer(opt, f"group{k}.", tensors, scalars)
        _save(tensors, {"scalars": json.dumps(scalars)}, folder / f"executor_{part}.safetensors")
    _save({"torch": torch.get_rng_state()}, {}, folder / f"rng_{part}.safetensors")
    extra = {} if checks is None else {"rejected": checks.state()}
    write_json(folder / marker, {**meta, **extra})


def load_state(folder: Path, agents: Iterable[Agent], executor: Executor, marker: str,
               checks: ReceiveChecks | None = None) -> None:
    """Restore what :func:`save_state` wrote into freshly built agents, executor and
    ``checks`` (rejection counts; a checkpoint written before they were saved restores 0)."""
    if checks is not None:
        checks.load(json.loads((folder / marker).read_text()).get("rejected", {}))
    part = Path(marker).stem
    for agent in agents:
        load_agent_state(agent, folder / f"agent_{agent.id:04d}.safetensors")
    if (folder / f"executor_{part}.safetensors").is_file():
        tensors, meta = _load(folder / f"executor_{part}.safetensors")
        scalars = json.loads(meta["scalars"])
        n = len({k.split(".", 1)[0] for k in [*tensors, *scalars]})
        executor.load_checkpoint_state({"optimizers": [
            _unflatten_optimizer(tensors, scalars, f"group{k}.") for k in range(n)]})
    torch.set_rng_state(_load(folder / f"rng_{part}.safetensors")[0]["torch"])


def save_agent_state(agent: Agent, path: Path) -> None:
    """Everything an agent needs to continue bit-identically, written atomically."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous()
               for k, v in agent.model.state_dict().items()}
    scalars: dict[str, Any] = {}
    opt = agent.optimizer.state_dict()
    _flatten_optimizer(opt, "", tensors, scalars)
    tensors["generator"] = agent.generator.get_state()
    tensors["stream.perm"] = agent.stream.perm.contiguous()
    meta = {"scalars": json.dumps(scalars), "last_loss": json.dumps(agent.last_loss),
            "stream_pos": json.dumps(agent.stream.pos)}
    _save(tensors, meta, path)


def load_agent_state(agent: Agent, path: Path) -> None:
    """Restore what ``save_agent_state`` wrote (the agent must have the same architecture)."""
    tensors, meta = _load(path)
    agent.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    scalars = json.loads(meta["scalars"])
    if "param_groups" in meta:  # written before the optimizer layout was shared
        scalars["param_groups"] = json.loads(meta["param_groups"])
    agent.optimizer.load_state_dict(_unflatten_optimizer(tensors, scalars, ""))
    agent.generator.set_state(tensors["generator"])
    agent.stream.perm = tensors["stream.perm"]
    agent.stream.pos = json.loads(meta["stream_pos"])
    agent.last_loss = json.loads(meta["last_loss"])


def _flatten_optimizer(opt: Mapping[str, Any], prefix: str, tensors: dict[str, torch.Tensor],
                       scalars: dict[str, Any]) -> None:
    """An optimizer state dict as ``<prefix>optim.<idx>.<key>`` tensors plus JSON scalars."""
    for idx, state in opt["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}optim.{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{prefix}{idx}.{key}"] = value
    scalars[f"{prefix}param_groups"] = opt["param_groups"]


def _unflatten_optimizer(tensors: Mapping[str, torch.Tensor], scalars: Mapping[str, Any],
                         prefix: str) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith(f"{prefix}optim."):
            idx, name = key[len(prefix) + 6:].split(".", 1)
            state.setdefault(int(idx), {})[name] = value
    for key, value in scalars.items():
        if key.startswith(prefix) and key != f"{prefix}param_groups":
            idx, name = key[len(prefix):].split(".", 1)
            state.setdefault(int(idx), {})[name] = value
    return {"state": state, "param_groups": scalars[f"{prefix}param_groups"]}


def _save(tensors: dict[str, torch.Tensor], meta: dict[str, str], path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)


def _load(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    tensors = load_file(str(path))
    with safe_open(str(path), "pt") as fh:
        return tensors, fh.metadata() or {}
