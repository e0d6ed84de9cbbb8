"""Adam and SGD over parameters stacked along an agent axis, with a step count per agent and a
mask of the agents that step.

Each row follows the update of ``torch.optim.Adam`` / ``SGD`` (foreach form, op for op, so the
numbers match an agent's own optimizer to float rounding): an agent that sits a step out (its
epoch is over, it is offline, it straggles) keeps its parameters, its moments and its step
count untouched, exactly as if its own optimizer had not been called. The state is one tensor
per parameter name and key, with the agent axis first (no per-agent optimizer object).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from parsefl.config import TrainConfig

_BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults, which make_optimizer keeps
_EPS = 1e-8


class StackedOptimizer:
    """``step(rows)`` updates the given rows (None: every row) of every parameter that has a
    gradient; ``state[name]`` holds ``step`` (rows,) and the moments, shaped as the parameter."""

    def __init__(self, params: Mapping[str, torch.Tensor], cfg: TrainConfig) -> None:
        self.params = dict(params)
        self.cfg = cfg
        self.state: dict[str, dict[str, torch.Tensor]] = {}

    def zero_grad(self) -> None:
        for p in self.params.values():
            p.grad = None  # a parameter no loss term reaches must stay without a gradient

    @torch.no_grad()
    def step(self, rows: torch.Tensor | None = None) -> None:
        for name, p in self.params.items():
            if p.grad is None:  # as torch: no gradient, no update (moments untouched)
                continue
            state = self.state.get(name) or self._init(name, p)
            if rows is None:
                self._update(p, p.grad, state)
                continue
            sub = {k: v[rows] for k, v in state.items()}
            x = p[rows]
            self._update(x, p.grad[rows], sub)
            p.index_copy_(0, rows, x)
            for k, v in sub.items():
                state[k].index_copy_(0, rows, v)

    def _init(self, name: str, p: torch.Tensor) -> dict[str, torch.Tensor]:
        state = {"step": torch.zeros(p.shape[0], dtype=torch.float32, device=p.device)}
        if self.cfg.optimizer == "adam":
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        elif self.cfg.momentum:
            state["momentum_buffer"] = torch.zeros_like(p)
        self.state[name] = state
        return state

    def _update(self, x: torch.Tensor, grad: torch.Tensor, st: dict[str, torch.Tensor]) -> None:
        """One step of every row of ``x`` (in place, with its state ``st``)."""
        cfg = self.cfg
        if cfg.weight_decay:
            grad = grad.add(x, alpha=cfg.weight_decay)
        shape = (-1,) + (1,) * (x.dim() - 1)  # a per-row scalar, broadcast over the row
        if cfg.optimizer == "sgd":
            if cfg.momentum:
                buf, first = st["momentum_buffer"], (st["step"] == 0).view(shape)
                buf.mul_(cfg.momentum).add_(grad)
                buf.copy_(torch.where(first, grad, buf))  # torch: the first buffer is the grad
                grad = buf
            st["step"].add_(1)
            x.add_(grad, alpha=-cfg.lr)
            return
        beta1, beta2 = _BETAS
        st["step"].add_(1)
        st["exp_avg"].lerp_(grad, 1 - beta1)
        st["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        # Bias corrections in double, as torch computes them from the Python step count.
        step = st["step"].double()
        step_size = (cfg.lr / (1 - beta1 ** step) * -1).to(x.dtype).view(shape)
        bc2_sqrt = ((1 - beta2 ** step) ** 0.5).to(x.dtype).view(shape)
        denom = st["exp_avg_sq"].sqrt().div_(bc2_sqrt).add_(_EPS)
        x.addcdiv_(st["exp_avg"] * step_size, denom)

    def state_dict(self) -> dict[str, Any]:
        """torch's layout (``state`` by parameter index, ``param_groups``), for checkpoints."""
        names = list(self.params)
        return {"state": {names.index(n): dict(st) for n, st in self.state.items()},
                "param_groups": [{"params": list(range(len(names))), "lr": self.cfg.lr,
                                  "optimizer": self.cfg.optimizer}]}

    def load_state_dict(self, sd: Mapping[str, Any]) -> None:
        """Restore ``state_dict``'s output (a step count saved as one shared scalar, by an
        older checkpoint, becomes every row's)."""
        names = list(self.params)
        self.state = {}
        for idx, st in sd["state"].items():
            p = self.params[names[int(idx)]]
            loaded = {k: torch.as_tensor(v).to(p.device).clone() for k, v in st.items()}
            step = loaded.get("step", torch.ones(()) if loaded else torch.zeros(()))
            loaded["step"] = step.float().to(p.device).expand(p.shape[0]).clone()
            self.state[names[int(idx)]] = loaded
