"""Adam and SGD over parameters stacked along an agent axis, with a step count per agent and a
mask of the agents that step.

Each row follows the update of ``torch.optim.Adam`` / ``SGD``, so the numbers match an agent's
own optimizer to float rounding. Adam runs torch's fused kernel (``fused=True``: one pass over
parameters, gradients and moments instead of nine foreach passes; the 1,024-agent round of
benchmarks/floor.py went from 4.4-6.2 s to 3.8 s, benchmarks/RESULTS.md, issue 27) whenever
the rows of a tensor share one step count
(always, unless agents sat steps out), and otherwise the foreach form op for op with a step
count per row (the fused kernel takes one step per tensor). An agent that sits a step out (its
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
    gradient, and spends the gradients (their buffers hold scratch values afterwards: read
    them before); ``state[name]`` holds ``step`` (rows,) and the moments, shaped as the
    parameter."""

    def __init__(self, params: Mapping[str, torch.Tensor], cfg: TrainConfig) -> None:
        self.params = dict(params)
        self.cfg = cfg
        self.state: dict[str, dict[str, torch.Tensor]] = {}

    def zero_grad(self) -> None:
        for p in self.params.values():
            p.grad = None  # a parameter no loss term reaches must stay without a gradient

    @torch.no_grad()
    def step(self, rows: torch.Tensor | None = None) -> None:
        names = [n for n, p in self.params.items() if p.grad is not None]  # as torch: no
        if not names:  # gradient, no update (moments and step count untouched)
            return
        states = [self.state.get(n) or self._init(n, self.params[n]) for n in names]
        if rows is None:
            self._update([self.params[n] for n in names],
                         [self.params[n].grad for n in names], states)
            return
        xs = [self.params[n][rows] for n in names]
        subs = [{k: v[rows] for k, v in st.items()} for st in states]
        self._update(xs, [self.params[n].grad[rows] for n in names], subs)
        for n, x, st, sub in zip(names, xs, states, subs, strict=True):
            self.params[n].index_copy_(0, rows, x)
            for k, v in sub.items():
                st[k].index_copy_(0, rows, v)

    def _init(self, name: str, p: torch.Tensor) -> dict[str, torch.Tensor]:
        state = {"step": torch.zeros(p.shape[0], dtype=torch.float32, device=p.device)}
        if self.cfg.optimizer == "adam":
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        elif self.cfg.momentum:
            state["momentum_buffer"] = torch.zeros_like(p)
        self.state[name] = state
        return state

    def _update(self, xs: list[torch.Tensor], grads: list[torch.Tensor],
                sts: list[dict[str, torch.Tensor]]) -> None:
        """One step of every row of the tensors ``xs`` (in place, with their states ``sts``):
        torch's foreach ops, each per-row scalar broadcast over its row."""
        cfg = self.cfg
        if cfg.weight_decay:
            grads = torch._foreach_add(grads, xs, alpha=cfg.weight_decay)
        steps = [st["step"] for st in sts]
        rowwise = [(-1,) + (1,) * (x.dim() - 1) for x in xs]
        if cfg.optimizer == "sgd":
            if cfg.momentum:
                bufs = [st["momentum_buffer"] for st in sts]
                torch._foreach_mul_(bufs, cfg.momentum)
                torch._foreach_add_(bufs, grads)
                for buf, g, s, shape in zip(bufs, grads, steps, rowwise, strict=True):
                    buf.copy_(torch.where((s == 0).view(shape), g, buf))  # first: the grad
                grads = bufs
            torch._foreach_add_(steps, 1)
            torch._foreach_add_(xs, grads, alpha=-cfg.lr)
            return
        beta1, beta2 = _BETAS
        m, v = [st["exp_avg"] for st in sts], [st["exp_avg_sq"] for st in sts]
        counts = torch.stack(steps)  # (tensors, rows): one check, one device sync
        if bool((counts == counts[:, :1]).all()):  # the common case: one fused kernel
            from torch.optim.adam import adam

            shared = [s[0].clone() for s in steps]  # torch's scalar step, stepped inside
            adam(xs, grads, m, v, [], shared, fused=True, amsgrad=False, beta1=beta1,
                 beta2=beta2, lr=cfg.lr, weight_decay=0.0, eps=_EPS, maximize=False)
            torch._foreach_add_(steps, 1)
            return
        torch._foreach_add_(steps, 1)
        torch._foreach_lerp_(m, grads, 1 - beta1)
        torch._foreach_mul_(v, beta2)
        torch._foreach_addcmul_(v, grads, grads, 1 - beta2)
        # Bias corrections in double, as torch computes them from the Python step count.
        count = torch.stack(steps).double()
        size = (cfg.lr / (1 - beta1 ** count) * -1).to(xs[0].dtype)
        bc2 = ((1 - beta2 ** count) ** 0.5).to(xs[0].dtype)
        # The denominator is built in the gradients' buffers, which are spent by now: no
        # temporary as large as the parameters (torch's capturable form of the same update).
        denom = grads
        torch._foreach_copy_(denom, v)
        torch._foreach_sqrt_(denom)
        torch._foreach_div_(denom, [b.view(s) for b, s in zip(bc2, rowwise, strict=True)])
        torch._foreach_add_(denom, _EPS)
        torch._foreach_div_(denom, [a.view(s) for a, s in zip(size, rowwise, strict=True)])
        torch._foreach_addcdiv_(xs, m, denom)

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
