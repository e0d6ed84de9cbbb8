"""One agent: its modalities, its model and optimizer, its private data. It trains locally and
reads/writes its components; it knows nothing of the network."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import nn

from parsefl.config import LossConfig, TrainConfig
from parsefl.model import AgentModel
from parsefl.privacy.dpsgd import PrivateSteps, poisson_steps, private_step, sample_rate
from parsefl.runtime.batching import BatchStream
from parsefl.runtime.blueprint import Blueprint, bind
from parsefl.sharing.base import Capability

View = tuple[tuple[str, ...], torch.Tensor]  # (modalities present, sample indices)


@dataclass(frozen=True)
class Rows:
    """An agent's inputs as rows ``index`` of tensors shared by every agent (the dataset's):
    one copy of the data, whatever the number of agents."""

    base: Mapping[str, torch.Tensor]
    index: torch.Tensor


class Agent:
    """``views`` split the agent's samples by the modalities present for them: an ordinary
    agent has one view (its modalities, all its samples); the centralized baseline pools every
    agent's samples, each with its owner's modalities."""

    def __init__(
        self,
        agent_id: int,
        model: AgentModel | Blueprint,
        x: Mapping[str, torch.Tensor] | Rows,
        y: torch.Tensor,
        train: TrainConfig,
        loss: LossConfig,
        seed: int,
        views: Sequence[View] | None = None,
    ) -> None:
        self.id = agent_id
        # A blueprint: the agent starts from its (shared) initial values and gets a module of
        # its own when first needed; a model: the agent's own from the start.
        own = not isinstance(model, Blueprint)
        self.blueprint = Blueprint(model) if own else model
        self._model: AgentModel | None = model if own else None
        self._rows: tuple[Mapping[str, torch.Tensor], int] | None = None  # stacked rows
        self.modalities = self.blueprint.modalities
        # Inputs: the agent's own tensors, or its rows of shared ones (``x`` gathers them).
        self.source = x if isinstance(x, Rows) else None
        self._x = None if self.source else {m: x[m] for m in self.modalities}
        self.y = y
        self.views = list(views) if views is not None else [
            (self.modalities, torch.arange(int(y.shape[0]), device=y.device))
        ]
        self.train_cfg = train
        self.loss_cfg = loss
        self._optimizer: torch.optim.Optimizer | None = None  # made when first used
        # Each agent draws its own batches from its own generator: deterministic per seed.
        self.generator = torch.Generator().manual_seed(seed * 100_003 + agent_id)
        # local_steps draw from the one view's indices, which may be fewer than the samples.
        one_view = len(self.views[0][1]) if len(self.views) == 1 else self.n_samples
        self.stream = BatchStream(one_view, self.generator)
        self.component_params = self.blueprint.components
        self._signatures = self.blueprint.signatures
        self._capability = Capability(agent_id, self.modalities, self._signatures)
        self.held = self.modalities  # what it holds now (a modality schedule changes it)
        self.steps: int | None = None  # local steps this round (stragglers); None: train_cfg
        self.phase: str | None = None  # set by the round engine from the sharing strategy
        self.track_gradients = False
        self.grad_sum: dict[str, torch.Tensor] = {}
        self.last_loss = float("nan")
        self.privacy: PrivateSteps | None = None  # DP-SGD settings (set by the build)

    @property
    def model(self) -> AgentModel:
        """The agent's own module, made when first asked for: a copy of its blueprint's, or,
        while it is a row of a stacked backend's group, one whose parameters are views of
        that row."""
        if self._model is None:
            self._model = self.blueprint.instantiate(
                None if self._rows is None else self._row_views())
        return self._model

    @property
    def materialized(self) -> bool:
        """Whether the agent has a module of its own yet (``model`` makes one)."""
        return self._model is not None

    @property
    def rows(self) -> tuple[Mapping[str, torch.Tensor], int] | None:
        """The stacked parameters the agent is a row of, and its row (None: not stacked)."""
        return self._rows

    def weights(self) -> dict[str, torch.Tensor]:
        """Parameter name -> the agent's current value (no copy: its module's parameter, a
        view of its stacked row, or its blueprint's initial value; read, never write)."""
        if self._model is not None:
            return dict(self._model.named_parameters())
        if self._rows is not None:
            return self._row_views()
        return self.blueprint.params

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The agent's model's state (parameters; no module is made for it)."""
        if self._model is not None:
            return self._model.state_dict()
        return {n: v.detach() for n, v in self.weights().items()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Set the agent's parameters to ``state`` (exactly its names and shapes): into its
        row when it is one and has no module (no module is made for it), else its module."""
        if self._rows is None or self._model is not None:
            self.model.load_state_dict(state)
            return
        weights = self._row_views()
        if set(state) != set(weights) or any(state[n].shape != v.shape
                                             for n, v in weights.items()):
            raise ValueError(f"agent {self.id}: a state of other tensors than its model's")
        with torch.no_grad():
            for n, v in weights.items():
                v.copy_(state[n])

    def _row_views(self) -> dict[str, torch.Tensor]:
        params, k = self._rows  # type: ignore[misc]
        return {n: p.detach()[k] for n, p in params.items()}

    @property
    def group(self) -> str:
        return self.blueprint.model.group

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The agent's own optimizer, made on first use (a stacked backend steps its agents
        with one optimizer of its own: no object per agent)."""
        if self._optimizer is None:
            self._optimizer = make_optimizer(self.model, self.train_cfg)
        return self._optimizer

    def optimizer_state(self) -> dict[str, Any] | None:
        """The optimizer's state dict; None while it was never made (a stacked backend's agent:
        a fresh one is exactly what loading an unused one's state would give, and making one
        costs the first ``torch.optim`` object's import of ``torch._dynamo``, ~2 s)."""
        return None if self._optimizer is None else self._optimizer.state_dict()

    def forget_optimizer(self) -> None:
        """Drop the optimizer: the next use makes a fresh one (no state, the config's
        hyperparameters)."""
        self._optimizer = None

    def bind_rows(self, params: Mapping[str, torch.Tensor], k: int) -> None:
        """Be row ``k`` of ``params`` (name -> stacked tensor, every parameter): a stacked
        backend's group holds the only copy of the agent's parameters. A module the agent
        already has is rebound to views of the row (it stays current); the optimizer is made
        afresh over the new parameters when next used (it must hold no state yet)."""
        self._rows = (params, k)
        if self._model is not None:
            bind(self._model, self._row_views(), self.blueprint.trains)
        self._optimizer = None

    def rebind_data(self, x: Mapping[str, torch.Tensor] | None, y: torch.Tensor) -> None:
        """Use ``x`` (None: keep the inputs), ``y`` as the data: views of a stacked backend's
        one copy."""
        if x is not None:
            self._x, self.source = {m: x[m] for m in self.modalities}, None
        self.y = y

    @property
    def x(self) -> dict[str, torch.Tensor]:
        """Modality -> the agent's inputs (a unimodal agent holds only its own); gathered
        afresh from shared tensors when the agent is rows of them (no copy is kept)."""
        if self._x is not None:
            return self._x
        src = self.source
        return {m: src.base[m][src.index] for m in self.modalities}  # type: ignore[union-attr]

    @property
    def n_samples(self) -> int:
        return int(self.y.shape[0])

    def capability(self) -> Capability:
        """What the agent announces: the components it uses with the modalities it holds."""
        return self._capability

    def set_held(self, held: Sequence[str]) -> None:
        """Hold only ``held`` (of its modalities) from now on: a lost modality's components
        keep their values but are neither trained, offered nor used to predict."""
        self.held = tuple(m for m in self.modalities if m in held)
        active = self.blueprint.model.active_components(self.held)
        self._capability = Capability(self.id, self.held, {
            c: s for c, s in self._signatures.items() if c in active})

    def get_component(self, name: str) -> dict[str, torch.Tensor]:
        weights = self.weights()
        return {p: weights[p].detach().clone() for p in self.component_params[name]}

    def set_component(self, name: str, values: Mapping[str, torch.Tensor]) -> None:
        # The blueprint's values are shared: an agent that is no row writes into its own copy.
        weights = self.weights() if self._rows is not None else \
            dict(self.model.named_parameters())
        with torch.no_grad():
            for p, v in values.items():
                weights[p].copy_(v)

    def batches(self) -> list[tuple[tuple[str, ...], torch.Tensor]]:
        """(modalities, indices) batches for one round: ``local_steps`` fixed-size batches from
        the agent's batch stream, or ``local_epochs`` passes over every view, in a seeded
        random order. Private training with Poisson sampling: each step's batch holds each
        sample independently with probability batch / n (any size, zero included)."""
        steps, epochs = self.steps or self.train_cfg.local_steps, self.train_cfg.local_epochs
        if self.privacy is not None and self.privacy.expected is not None:
            mods, idx = self.views[0]  # privacy refuses several views
            n, b = len(idx), self.train_cfg.batch_size
            q = sample_rate(b, n)
            return [(mods, idx[(torch.rand(n, generator=self.generator) < q).nonzero()[:, 0]
                               .to(idx.device)])
                    for _ in range(steps or poisson_steps(b, n, epochs))]
        if steps is not None and len(self.views) == 1:
            mods, idx = self.views[0]
            b = self.train_cfg.batch_size
            return [(mods, idx[self.stream.take(b).to(idx.device)]) for _ in range(steps)]
        out: list[tuple[tuple[str, ...], torch.Tensor]] = []
        while (steps is None and epochs > 0) or (steps is not None and len(out) < steps):
            epoch = []
            for mods, idx in self.views:
                n, b = len(idx), min(self.train_cfg.batch_size, len(idx))
                perm = idx[torch.randperm(n, generator=self.generator).to(idx.device)]
                # Batches of one sample are dropped: alignment/decorrelation need two.
                epoch += [(mods, perm[k : k + b]) for k in range(0, n, b) if min(b, n - k) > 1]
            if len(self.views) > 1:
                order = torch.randperm(len(epoch), generator=self.generator).tolist()
                epoch = [epoch[k] for k in order]
            out += epoch
            epochs -= 1
            if not epoch:
                break
        return out[:steps] if steps is not None else out

    def train_local(self) -> float:
        """One round of local training; returns the mean loss."""
        self.model.train()
        losses = []
        if self.track_gradients:
            self.grad_sum = {}
        for mods, idx in self.batches():
            mods = tuple(m for m in mods if m in self.held) if self.held != self.modalities \
                else mods
            if not mods:
                continue
            x = self.x
            xb = {m: x[m][idx] for m in mods}
            if self.privacy is not None:  # sets the private gradient
                first = self.views[0][1][:1]
                loss = private_step(self.model, self.privacy, xb, self.y[idx], self.loss_cfg,
                                    self.phase, ({m: x[m][first] for m in mods},
                                                 self.y[first]))
            else:
                loss, _ = self.model.loss(xb, self.y[idx], self.loss_cfg, self.phase)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
            if self.track_gradients:
                self._accumulate_gradients()
            self.optimizer.step()
            if loss is not None:  # None: an empty Poisson batch (noise only)
                losses.append(loss.detach())
        # One host sync per round, not per step.
        self.last_loss = float(torch.stack(losses).mean()) if losses else float("nan")
        return self.last_loss

    def record_training(self, loss: float, grad_sum: dict[str, torch.Tensor]) -> None:
        """What a round of training that ran elsewhere (a stacked backend) left: its mean
        loss and, when gradients are tracked, the summed gradient per parameter name."""
        self.last_loss = loss
        self.grad_sum = grad_sum

    def _accumulate_gradients(self) -> None:
        for name, p in self.model.named_parameters():
            if p.grad is not None:
                prev = self.grad_sum.get(name)
                self.grad_sum[name] = p.grad.detach().clone() if prev is None else prev + p.grad

    @torch.no_grad()
    def predict(
        self, x: Mapping[str, torch.Tensor], modalities: Sequence[str] | None = None,
        batch: int = 2048, drop: Sequence[str] = (),
    ) -> torch.Tensor:
        """Class predictions from ``modalities`` (default: those the agent holds now); an
        agent without a module of its own runs its blueprint's on its weights."""
        mods = tuple(modalities or self.held)
        n = next(iter(x.values())).shape[0]
        if self._model is not None:
            self._model.eval()
            logits = partial(self._model.logits, drop=drop)
        else:
            logits = partial(self.blueprint.logits, self.weights(), drop=drop)
        preds = [logits({m: x[m][k : k + batch] for m in mods}).argmax(-1)
                 for k in range(0, n, batch)]
        return torch.cat(preds)


def make_optimizer(
    params: nn.Module | Iterable[torch.Tensor], cfg: TrainConfig
) -> torch.optim.Optimizer:
    """SGD or Adam over a model's (or a list of) parameters. Both are element-wise, so on a
    stacked parameter each agent's slice still evolves independently."""
    if isinstance(params, nn.Module):
        params = params.parameters()
    # foreach: one kernel per step for all of a model's tensors instead of one per tensor.
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay, foreach=True)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
