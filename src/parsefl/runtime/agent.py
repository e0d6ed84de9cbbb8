"""One agent: its modalities, its model and optimizer, its private data. It trains locally and
reads/writes its components; it knows nothing of the network."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from parsefl.config import LossConfig, TrainConfig
from parsefl.model import SlicedModel, signature, sliced_loss
from parsefl.sharing.base import Capability


class Agent:
    def __init__(
        self,
        agent_id: int,
        model: SlicedModel,
        x: Mapping[str, torch.Tensor],
        y: torch.Tensor,
        train: TrainConfig,
        loss: LossConfig,
        seed: int,
    ) -> None:
        self.id = agent_id
        self.model = model
        self.modalities = model.modalities
        self.x = {m: x[m] for m in self.modalities}  # a unimodal agent holds only its own arrays
        self.y = y
        self.train_cfg = train
        self.loss_weights = loss
        self.optimizer = make_optimizer(model, train)
        # Each agent draws its own batches from its own generator: deterministic per seed.
        self.generator = torch.Generator().manual_seed(seed * 100_003 + agent_id)
        self._component_params = model.components()
        self.last_loss = float("nan")

    @property
    def group(self) -> str:
        return self.model.group

    @property
    def n_samples(self) -> int:
        return int(self.y.shape[0])

    def capability(self) -> Capability:
        sigs = {c: signature(self.model, names) for c, names in self._component_params.items()}
        return Capability(self.id, self.modalities, sigs)

    def get_component(self, name: str) -> dict[str, torch.Tensor]:
        params = dict(self.model.named_parameters())
        return {p: params[p].detach().clone() for p in self._component_params[name]}

    def set_component(self, name: str, values: Mapping[str, torch.Tensor]) -> None:
        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for p, v in values.items():
                params[p].copy_(v)

    def batches(self) -> list[torch.Tensor]:
        """Index batches for one round: ``local_steps`` batches, or ``local_epochs`` epochs."""
        n, b = self.n_samples, min(self.train_cfg.batch_size, self.n_samples)
        out: list[torch.Tensor] = []
        steps = self.train_cfg.local_steps
        epochs = self.train_cfg.local_epochs
        while (steps is None and epochs > 0) or (steps is not None and len(out) < steps):
            perm = torch.randperm(n, generator=self.generator)
            # Batches of one sample are dropped: the alignment/decorrelation terms need two.
            out += [perm[k : k + b] for k in range(0, n, b) if min(b, n - k) > 1]
            epochs -= 1
        return out[:steps] if steps is not None else out

    def train_local(self) -> float:
        """One round of local training; returns the mean loss."""
        self.model.train()
        losses = []
        device = self.y.device
        for idx in self.batches():
            idx = idx.to(device)
            out = self.model({m: v[idx] for m, v in self.x.items()})
            loss, _ = sliced_loss(out, self.y[idx], self.loss_weights)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            losses.append(float(loss.detach()))
        self.last_loss = float(np.mean(losses)) if losses else float("nan")
        return self.last_loss

    @torch.no_grad()
    def predict(self, x: Mapping[str, torch.Tensor], batch: int = 2048) -> torch.Tensor:
        self.model.eval()
        n = next(iter(x.values())).shape[0]
        preds = [
            self.model({m: x[m][k : k + batch] for m in self.modalities}).logits.argmax(-1)
            for k in range(0, n, batch)
        ]
        return torch.cat(preds)


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
