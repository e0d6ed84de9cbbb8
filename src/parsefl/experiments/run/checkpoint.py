"""Run state for resuming: each agent's model, optimizer, batch generator and batch stream, the
backend's own state (the vectorized backend's stacked optimizers), the global torch RNG and the
driver's history, as safetensors with JSON metadata (no pickle), each file written atomically.

A checkpoint is a folder ``state/round_NNNNNN/``; each part of it (``run.json`` for the
simulator, ``rank_K.json`` for distributed rank K: the marker, the record of the part) ends with
its manifest ``manifest_<part>.json`` (:mod:`parsefl.security.manifest`): hashes, sizes and
tensor layouts of the part's files, the run fingerprint, the round and the agents, signed when
the run has keys. It is written last, so an interrupted checkpoint has none and is never resumed
from; a resume verifies it before reading a byte of the part (:func:`verify_state`), then checks
every tensor's name, dtype and shape against the freshly built agents before loading it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from parsefl.config import RunConfig
from parsefl.errors import ConfigError
from parsefl.experiments.run.rundir import write_json
from parsefl.runtime import Agent, Executor
from parsefl.runtime.checks import ReceiveChecks
from parsefl.security.manifest import Sealed, Signer, seal, tensor_layout, unseal


def fingerprint(cfg: RunConfig) -> str:
    """What must not change between a run and its resume (rounds and evaluation may). Values
    left at their defaults are not part of it, so a release that adds a config section (with
    a default that changes nothing) still resumes and reuses the runs of the one before."""
    data = cfg.model_dump(mode="json", exclude={"rounds", "eval_every", "device", "runtime"},
                          exclude_defaults=True)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def round_folder(out: Path, done: int) -> Path:
    return out / "state" / f"round_{done:06d}"


def manifest_name(marker: str) -> str:
    return f"manifest_{Path(marker).stem}.json"


def complete_rounds(out: Path, marker: str) -> list[int]:
    """Rounds whose checkpoint folder holds ``marker``'s manifest (written last: the part is
    complete; whether it is intact is :func:`verify_state`'s question)."""
    return sorted(int(p.name[6:]) for p in (out / "state").glob("round_[0-9]*")
                  if p.name[6:].isdigit() and (p / manifest_name(marker)).is_file())


def _part_files(agents: Iterable[int], part: str) -> list[str]:
    return [*(f"agent_{i:04d}.safetensors" for i in agents), f"rng_{part}.safetensors"]


def save_state(folder: Path, agents: Iterable[Agent], executor: Executor, marker: str,
               meta: Mapping[str, Any], checks: ReceiveChecks | None = None,
               signer: Signer | None = None) -> None:
    """Agents, the executor's own state (if it has any), the RNG and ``marker`` (several
    processes may write their parts into one folder: each names its files by its marker),
    which also holds the receive checks' rejection counts so far (``checks``); then the
    part's manifest (``meta`` holds ``rounds_done`` and ``fingerprint``), signed by
    ``signer`` when given."""
    agents = list(agents)
    part = Path(marker).stem
    folder.mkdir(parents=True, exist_ok=True)
    for agent in agents:
        save_agent_state(agent, folder / f"agent_{agent.id:04d}.safetensors")
    files = [*_part_files((a.id for a in agents), part), marker]
    optimizers = executor.checkpoint_state()["optimizers"]
    if optimizers:  # a stacked executor's per-group optimizers (the reference one has none)
        tensors, scalars = {}, {}
        for k, opt in enumerate(optimizers):
            _flatten_optimizer(opt, f"group{k}.", tensors, scalars)
        _save(tensors, {"scalars": json.dumps(scalars)}, folder / f"executor_{part}.safetensors")
        files.append(f"executor_{part}.safetensors")
    _save({"torch": torch.get_rng_state()}, {}, folder / f"rng_{part}.safetensors")
    extra = {} if checks is None else {"rejected": checks.state()}
    write_json(folder / marker, {**meta, **extra})
    seal(folder, manifest_name(marker), files,
         _state_meta(meta["fingerprint"], meta["rounds_done"], part, [a.id for a in agents]),
         signer)


def _state_meta(run: str, done: int, part: str, agents: list[int]) -> dict[str, Any]:
    return {"kind": "state", "run": run, "round": done, "part": part, "agents": sorted(agents)}


def verify_state(folder: Path, marker: str, run: str, done: int, agents: Iterable[int],
                 ids: Any = None) -> Sealed:
    """The manifest of ``marker``'s part of ``folder`` checked (:func:`unseal`): written for
    this run, round ``done`` and exactly ``agents``; with ``ids`` signed by one of them."""
    agents = sorted(agents)
    part = Path(marker).stem
    return unseal(folder, manifest_name(marker), _state_meta(run, done, part, agents),
                  "--resume", ids=ids, signers=agents if ids is not None else (),
                  require=[*_part_files(agents, part), marker])


def load_state(folder: Path, agents: Iterable[Agent], executor: Executor, marker: str,
               listed: Collection[str], checks: ReceiveChecks | None = None,
               rejected: Mapping[str, Any] | None = None) -> None:
    """Restore what :func:`save_state` wrote (verified by :func:`verify_state` first: only
    the files its manifest ``listed`` are read) into freshly built agents, executor and
    ``checks`` (``rejected``: the counts in the record). A file whose tensors do not fit
    what they are loaded into is one line naming it."""
    if checks is not None:
        checks.load(dict(rejected or {}))
    part = Path(marker).stem
    for agent in agents:
        path = folder / f"agent_{agent.id:04d}.safetensors"
        _refusing(path, lambda p=path, a=agent: load_agent_state(a, p))
    path = folder / f"executor_{part}.safetensors"
    if path.name in listed:
        def stacked() -> None:
            tensors, meta = _load(path, finite=True)
            scalars = json.loads(meta["scalars"])
            n = len({k.split(".", 1)[0] for k in [*tensors, *scalars]})
            executor.load_checkpoint_state({"optimizers": [
                _unflatten_optimizer(tensors, scalars, f"group{k}.") for k in range(n)]})
        _refusing(path, stacked)
    path = folder / f"rng_{part}.safetensors"
    _refusing(path, lambda: torch.set_rng_state(_load(path)[0]["torch"]))


def _refusing(path: Path, load: Any) -> None:
    """Run ``load``; a file that does not fit is a :class:`ConfigError` naming it."""
    try:
        load()
    except ConfigError:
        raise
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError, AttributeError,
            OSError) as err:
        raise ConfigError("--resume", f"{path} does not fit this run ({type(err).__name__}: "
                          f"{str(err).splitlines()[0][:200] if str(err) else ''})") from None


def save_agent_state(agent: Agent, path: Path) -> None:
    """Everything an agent needs to continue bit-identically, written atomically."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous()
               for k, v in agent.state_dict().items()}
    scalars: dict[str, Any] = {}
    opt = agent.optimizer_state()
    if opt is not None:
        _flatten_optimizer(opt, "", tensors, scalars)
    tensors["generator"] = agent.generator.get_state()
    tensors["stream.perm"] = agent.stream.perm.contiguous()
    meta = {"scalars": json.dumps(scalars), "last_loss": json.dumps(agent.last_loss),
            "stream_pos": json.dumps(agent.stream.pos),
            "optimizer": json.dumps("used" if opt is not None else "unused")}
    if agent.privacy is not None:  # its private steps: the accounting and the noise stream
        meta["privacy_steps"] = json.dumps(agent.privacy.steps)
    _save(tensors, meta, path)


def load_agent_state(agent: Agent, path: Path) -> None:
    """Restore what ``save_agent_state`` wrote (the agent must have the same architecture:
    every tensor's name, dtype and shape is checked against it before one is read)."""
    _check_layout(agent, path)
    tensors, meta = _load(path, finite=True)
    perm = tensors["stream.perm"]
    if not torch.equal(perm.sort().values, torch.arange(len(perm))):
        raise ValueError("stream.perm is not a permutation of the agent's samples")
    agent.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    scalars = json.loads(meta["scalars"])
    if "param_groups" in meta:  # written before the optimizer layout was shared
        scalars["param_groups"] = json.loads(meta["param_groups"])
    if json.loads(meta.get("optimizer", '"used"')) == "unused":  # never made when saved
        if scalars or any(k.startswith("optim.") for k in tensors):
            raise ValueError("optimizer state in a file that says its optimizer was unused")
        agent.forget_optimizer()
    else:
        agent.optimizer.load_state_dict(_unflatten_optimizer(tensors, scalars, ""))
    agent.generator.set_state(tensors["generator"])
    agent.stream.perm = tensors["stream.perm"]
    pos, loss = json.loads(meta["stream_pos"]), json.loads(meta["last_loss"])
    if type(pos) is not int or not 0 <= pos <= len(perm) \
            or not (loss is None or isinstance(loss, float | int)):
        raise ValueError(f"stream position {pos!r} or last loss {loss!r} out of range")
    agent.stream.pos, agent.last_loss = pos, loss
    if agent.privacy is not None:
        steps = json.loads(meta.get("privacy_steps", "null"))
        if type(steps) is not int or steps < 0:
            raise ValueError(f"privacy step count {steps!r} missing or out of range")
        agent.privacy.steps = steps


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


def _check_layout(agent: Agent, path: Path) -> None:
    """The file's tensors (read from its header only) are those ``agent`` holds: its model's
    names, dtypes and shapes exactly, optimizer state shaped like a parameter or a scalar, a
    generator state and a sample order of the agent's own size."""
    layout = tensor_layout(path)
    want = {f"model.{k}": [_DTYPES[v.dtype], list(v.shape)]
            for k, v in agent.state_dict().items()}
    want["generator"] = ["U8", list(agent.generator.get_state().shape)]
    n = agent.stream.n
    params = [list(p.shape) for p in agent.weights().values()]  # the optimizer's order
    for name, (dtype, shape) in layout.items():
        if name == "stream.perm":  # not drawn yet (0) or one permutation of the samples
            ok = dtype == "I64" and shape in ([0], [n])
        elif name.startswith("optim."):
            idx = name.split(".")[1]
            ok = idx.isdigit() and int(idx) < len(params) and dtype in ("F32", "F64") \
                and shape in ([], params[int(idx)])
        else:
            ok = want.get(name) == [dtype, shape]
        if not ok:
            raise ValueError(f"tensor {name!r} ({dtype} {shape}) is not one of this agent's "
                             f"(expected {want.get(name, 'an optimizer state')})")
    missing = sorted({*want, "stream.perm"} - set(layout))
    if missing:
        raise ValueError(f"no tensor {missing[0]!r}")


def load_model_file(model: torch.nn.Module, path: Path, field: str) -> None:
    """A run's final weights (``checkpoints/agent_NNNN.safetensors``) into ``model``, read
    only when the file's header lists exactly the model's tensors (names, dtypes, shapes):
    a file made for another model, or one whose header claims huge tensors, is one line
    naming it (``field``) before anything is allocated."""
    want = {k: [_DTYPES[v.dtype], list(v.shape)] for k, v in model.state_dict().items()}
    try:
        layout = tensor_layout(path)
        if layout != want:
            odd = sorted(set(layout) ^ set(want)) or \
                sorted(k for k in want if layout[k] != want[k])
            raise ValueError(f"its tensors are not this agent's ({odd[0]!r} differs)")
        model.load_state_dict(load_file(str(path)))
    except (OSError, RuntimeError, ValueError, KeyError) as err:
        raise ConfigError(field, f"{path} does not fit this run ({err})") from None


_DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16",
           torch.bfloat16: "BF16", torch.int64: "I64", torch.int32: "I32", torch.uint8: "U8",
           torch.bool: "BOOL"}


def _save(tensors: dict[str, torch.Tensor], meta: dict[str, str], path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)


def _load(path: Path, finite: bool = False) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    tensors = load_file(str(path))
    if finite:
        bad = [k for k, v in tensors.items() if v.is_floating_point() and not v.isfinite().all()]
        if bad:
            raise ValueError(f"tensor {bad[0]!r} holds values that are not finite")
    with safe_open(str(path), "pt") as fh:
        return tensors, fh.metadata() or {}
