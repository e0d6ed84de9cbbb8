"""Pretrained encoder trunks: loaded from safetensors files (never pickle), optionally frozen.

A file holds one trunk's ``state_dict`` (``<dir>/<modality>.safetensors``, for a directory
path) or every modality's, with ``<modality>.`` prefixes (a file path). A frozen trunk is its
own component, ``trunk.<m>``, which the agent neither trains nor offers: only the slice rows
and the heads travel.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from parsefl.errors import ConfigError

FIELD = "model.encoder.pretrained"


def read_pretrained(path: str | Path, modality: str, expect: Mapping[str, str] | None = None
                    ) -> dict[str, torch.Tensor]:
    """Modality ``modality``'s trunk tensors from ``path`` (a directory or one prefixed file).
    ``expect``: metadata the file must agree with where it records it (``parsefl pretrain``
    records the dataset, seed and public fraction: another seed means another test split,
    which the trunk may have seen)."""
    path = Path(path)
    one = path / f"{modality}.safetensors" if path.is_dir() else path
    if not one.is_file():
        raise ConfigError(FIELD, f"no pretrained trunk for {modality!r}: {one} does not exist")
    try:
        tensors = load_file(str(one))
        with safe_open(str(one), "pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError) as err:
        raise ConfigError(FIELD, f"{one} is not a safetensors file: {err}") from None
    for key, want in (expect or {}).items():
        if key in meta and meta[key] != want:
            raise ConfigError(FIELD, f"{one} was pretrained with {key}={meta[key]}, this run "
                              f"has {want} (pretrain per seed: a path may contain {{seed}})")
    if path.is_dir():
        return tensors
    prefix = f"{modality}."
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def load_trunks(trunks: Mapping[str, nn.Module], path: str | Path, freeze: bool,
                expect: Mapping[str, str] | None = None) -> None:
    """Copy the pretrained tensors into ``trunks`` (modality -> trunk), refusing a missing,
    extra or misshapen tensor by name; ``freeze`` stops their training (and their gossip)."""
    for m, trunk in trunks.items():
        loaded = read_pretrained(path, m, expect)
        own = trunk.state_dict()
        for name in sorted(set(own) | set(loaded)):
            if name not in loaded or name not in own:
                where = "missing from the file" if name not in loaded else "not in the model"
                raise ConfigError(FIELD, f"tensor {m}.{name}: {where}")
            if tuple(loaded[name].shape) != tuple(own[name].shape):
                raise ConfigError(FIELD, f"tensor {m}.{name}: shape {tuple(loaded[name].shape)} "
                                  f"in the file, the model expects {tuple(own[name].shape)}")
        trunk.load_state_dict({k: v.to(own[k].dtype) for k, v in loaded.items()})
        if freeze:
            trunk.requires_grad_(False)


def frozen(module: nn.Module) -> bool:
    """A module with parameters, none of which trains."""
    params = list(module.parameters())
    return bool(params) and not any(p.requires_grad for p in params)


def save_trunks(trunks: Mapping[str, nn.Module], out: str | Path,
                meta: Mapping[str, str] | None = None) -> list[Path]:
    """One ``<out>/<modality>.safetensors`` per trunk (what :func:`load_trunks` reads), with
    ``meta`` as the files' metadata."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for m, trunk in trunks.items():
        path = out / f"{m}.safetensors"
        save_file({k: v.detach().contiguous().cpu() for k, v in trunk.state_dict().items()},
                  str(path), metadata=dict(meta or {}))
        paths.append(path)
    return paths
