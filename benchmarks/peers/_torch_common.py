"""The model and the plain local training loop shared by the Flower script (and the p2pfl
script's model). Imports torch: only the framework scripts use it, each in its own venv.

The MLP is exactly the layer stack of parsefl's monolithic ``dsgd_full`` model with
``model.encoder.name=mlp, hidden=[256], model.dim=128``: trunk Linear(784, 256) + ReLU, a
projection Linear(256, 128) *without* an activation after it, classifier Linear(128, 10).
"""

from __future__ import annotations

import numpy as np
import torch
from _common import BATCH, CLASSES, DIM, FEATURES, HIDDEN, LR
from torch import nn


def make_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(FEATURES, HIDDEN), nn.ReLU(),
                         nn.Linear(HIDDEN, DIM), nn.Linear(DIM, CLASSES))


def train_epoch(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                generator: torch.Generator) -> float:
    """One local epoch of plain SGD (lr 0.01, no momentum), batch 32, shuffled; returns the
    mean loss. Batches of one sample are dropped, as parsefl does."""
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    perm = torch.randperm(len(y), generator=generator)
    losses = []
    for k in range(0, len(y), BATCH):
        idx = perm[k:k + BATCH]
        if len(idx) < 2:
            continue
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.detach())
    return float(torch.stack(losses).mean())


@torch.no_grad()
def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    model.eval()
    pred = model(torch.as_tensor(x)).argmax(-1).numpy()
    return float((pred == y).mean())
