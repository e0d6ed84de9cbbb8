"""``parsefl pretrain``: per-modality encoder trunks trained on the public split of a dataset
(``data.public``: training samples no agent holds), written as safetensors files that
``model.encoder.pretrained`` loads — so frozen pretrained encoders work offline end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from parsefl.config import RunConfig
from parsefl.data import load_dataset
from parsefl.errors import ConfigError
from parsefl.experiments.run.build import encoder_name, pretrain_meta
from parsefl.experiments.run.roster import agent_groups, private_indices
from parsefl.model.encoders import build_trunk
from parsefl.model.pretrained import save_trunks
from parsefl.runtime.threads import apply_threads


def pretrain(cfg: RunConfig, out: Path, epochs: int = 20) -> dict[str, dict]:
    """Train one trunk (with a throw-away linear head) per modality the mix uses on the public
    split; write ``out/<modality>.safetensors``; return samples and accuracies per modality
    (train: the public split; test: the held-out test set)."""
    apply_threads(cfg.runtime.threads)
    ds = load_dataset(cfg.data.name, cfg.seed, cfg.data.params, None)
    idx = private_indices(cfg, len(ds.train.y), public=True)
    if len(idx) < 2:
        raise ConfigError("data.public", "set the public fraction of the training set that "
                          "no agent holds (e.g. -o data.public=0.2) to pretrain on")
    used = cfg.data.modalities or sorted({m for g in agent_groups(cfg, ds) for m in g})
    trunks, report = {}, {}
    for m in used:
        torch.manual_seed(cfg.seed)
        trunk = build_trunk(encoder_name(cfg, ds), ds.input_shape(m),
                            dict(cfg.model.encoder.params))
        head = nn.Linear(trunk.out_features, ds.n_classes)
        x = torch.as_tensor(ds.train.x[m][idx])
        y = torch.as_tensor(ds.train.y[idx])
        _fit(trunk, head, x, y, epochs, cfg.train.batch_size, cfg.train.lr, cfg.seed)
        trunks[m] = trunk
        report[m] = {"samples": int(len(idx)), "train_accuracy": _accuracy(trunk, head, x, y),
                     "test_accuracy": _accuracy(trunk, head, torch.as_tensor(ds.test.x[m]),
                                                torch.as_tensor(ds.test.y))}
    save_trunks(trunks, out, pretrain_meta(cfg))
    return report


def _fit(trunk: nn.Module, head: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int,
         batch: int, lr: float, seed: int) -> None:
    params = [*trunk.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    trunk.train()
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=gen)
        for k in range(0, len(y), batch):
            b = order[k:k + batch]
            if len(b) < 2:
                continue
            loss = F.cross_entropy(head(trunk(x[b])), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()


@torch.no_grad()
def _accuracy(trunk: nn.Module, head: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    trunk.eval()
    return float(np.mean((head(trunk(x)).argmax(-1) == y).numpy()))
