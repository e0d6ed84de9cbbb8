"""CHOCO-SGD error feedback (compressed gossip) for the reference runtime.

Koloskova, Stich and Jaggi, "Decentralized Stochastic Optimization and Gossip Algorithms with
Compressed Communication", ICML 2019 (arXiv:1902.00340), Algorithm 2 (CHOCO-SGD); the same
steps as the authors' code, epfml/ChocoSGD ``dl_code/pcode/optim/parallel_choco.py``. Every
agent i keeps a public copy ``x_hat_i`` of each component it shares (starting at 0) and, for
each peer j, its view of ``x_hat_j``. After local training (``x_i`` is then x^{t+1/2}):

    q_i      = C(x_i - x_hat_i)                      only q_i travels, to every peer
    x_hat_j += q_j                                   for j = i and every peer j (same q_j)
    x_i     += gamma * sum_j w_ij (x_hat_j - x_hat_i)

The last line is ``x_i + gamma * (mix(x_hat)_i - x_hat_i)`` where ``mix`` is the configured
aggregator applied to the public copies (for ``mean``: the MH-weighted sum, exactly the
formula; a robust aggregator gives a robust CHOCO). The residual ``x_i - x_hat_i`` that C
dropped is not lost: it is part of the next round's difference. With C the identity and
gamma = 1 this is plain gossip.

Public copies must agree between a sender and its receivers, so all of them restart at 0
whenever the engine re-plans under a new plan key (a new graph, modalities, members or
strategy phase: the same key in every process).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Mapping

import torch

from parsefl.aggregation import Aggregator
from parsefl.compressors.communication import Communication, like_of
from parsefl.types import Tensors


def advance(hat: Tensors, q: Tensors) -> dict[str, torch.Tensor]:
    """A public copy moved by the decoded difference that travelled: ``x_hat + q``."""
    return {n: hat[n] + q[n] for n in q}


def consensus(x: Tensors, hat: Tensors, mixed: Tensors, gamma: float) -> dict[str, torch.Tensor]:
    """The CHOCO consensus step, ``x + gamma * (mix(x_hat) - x_hat)`` (``mixed``: the
    aggregator applied to the public copies). Both backends take it from here: the reference
    one per agent, the stacked ones on every holder's rows at once."""
    return {n: x[n] + gamma * (mixed[n] - hat[n]) for n in x}


class Choco:
    """The public copies of one executor's agents and their views of their peers'."""

    def __init__(self, comm: Communication) -> None:
        self.comm = comm
        self.own: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
        self.views: dict[tuple[int, int, str], dict[str, torch.Tensor]] = {}
        self.plan_key: Hashable = None

    def start(self, plan_key: Hashable) -> None:
        """Begin a round under the engine's ``plan_key`` (a new key: every copy restarts at 0)."""
        if plan_key != self.plan_key:
            self.own, self.views, self.plan_key = {}, {}, plan_key

    def send(self, i: int, component: str, x: Tensors, r: int) -> dict[str, torch.Tensor]:
        """Encode ``q_i = C(x_i - x_hat_i)`` and move the public copy by what it decodes to."""
        hat = self.own.get((i, component)) or {n: torch.zeros_like(t) for n, t in x.items()}
        body = self.encode(i, component, x, r)
        q = self.comm.decode(component, body, like_of(x))
        self.own[i, component] = advance(hat, q)
        return body

    def encode(self, i: int, component: str, y: Tensors, r: int) -> dict[str, torch.Tensor]:
        """``C(y - x_hat_i)`` against the current public copy (an attacker's crafted ``y`` is
        sent so, without moving the public copy)."""
        hat = self.own.get((i, component))
        diff = {n: t - hat[n] for n, t in y.items()} if hat else dict(y)
        return self.comm.encode(component, i, r, diff)

    def receive(self, i: int, j: int, component: str, q: Tensors) -> None:
        """Agent ``i``'s view of ``x_hat_j`` moves by the decoded difference ``q``."""
        view = self.views.get((i, j, component))
        self.views[i, j, component] = dict(q) if view is None else advance(view, q)

    def merger(self, aggregator: Aggregator, i: int, component: str) -> Callable[..., dict]:
        """``merge(x, received, self_weight, weights)`` for agent ``i``'s ``component``, as
        an aggregator's: the received differences move ``i``'s views, then :meth:`merge`."""
        def merge(x: Tensors, received: Mapping[int, Tensors], self_weight: float,
                  weights: Mapping[int, float]) -> dict[str, torch.Tensor]:
            for j, q in received.items():
                self.receive(i, j, component, q)
            return self.merge(aggregator, i, component, x, received, self_weight, weights)
        return merge

    def merge(self, aggregator: Aggregator, i: int, component: str, x: Tensors,
              arrived: Collection[int], self_weight: float,
              weights: Mapping[int, float]) -> dict[str, torch.Tensor]:
        """``x_i + gamma * (mix(x_hat)_i - x_hat_i)`` over the peers whose difference arrived
        (a missing one gives its weight back to the own copy, as in plain gossip)."""
        hat = self.own[i, component]
        mixed = aggregator.merge(hat, {j: self.views[i, j, component] for j in sorted(arrived)},
                                 self_weight, weights)
        return consensus(x, hat, mixed, self.comm.gamma_for(component))
