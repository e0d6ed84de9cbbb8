"""Aggregators: how an agent combines its own copy of a component with the copies that arrived.

An aggregator is a pure object, applied per component (all of its tensors together) over the
copies that arrived this round, with the Metropolis–Hastings weights of the agent's plan. It
is one of two kinds, so that every backend runs it without re-implementing the rule:

- :class:`LinearAggregator` gives its *mixing weights*; the reference runtime adds the copies
  with them and the vectorized backend builds one sparse mixing matrix from them.
- :class:`StackedAggregator` gives one batched ``combine`` over a padded
  ``(holders, max_peers + 1, numel)`` tensor and a mask; the reference runtime calls it with
  one holder, the vectorized backend with every holder of a component at once.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, ClassVar

import torch

from parsefl.registry import AGGREGATION
from parsefl.types import Tensors


def fold_missing(
    self_weight: float, weights: Mapping[int, float], arrived: Collection[int]
) -> tuple[float, dict[int, float]]:
    """The weights over the copies that arrived: a planned peer whose copy did not arrive
    gives its weight back to the agent's own copy, so the row still sums to 1."""
    missing = sum(w for j, w in weights.items() if j not in arrived)
    return self_weight + missing, {j: weights[j] for j in sorted(arrived)}


class Aggregator:
    """Combines an agent's own copy of a component with its neighbours' copies.

    ``merge(own, received, self_weight, weights)``: ``own`` maps the component's parameter
    names to tensors, ``received`` maps a sender to its copy (same names and shapes),
    ``self_weight`` and ``weights`` are the agent's MH weights for this component (``weights``
    covers every planned peer, including ones whose copy did not arrive).
    """

    name: ClassVar[str] = "base"
    linear: ClassVar[bool] = False  # True: a fixed weighted sum (see LinearAggregator)

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps of the aggregator (JSON-able; empty: it keeps nothing
        across rounds)."""
        return {}

    def load(self, state: dict[str, Any]) -> None:
        """Take back :meth:`state` (a checkpoint's); raises ValueError on a state that is not
        one of this aggregator's."""
        if state:
            raise ValueError(f"aggregator {self.name!r} keeps no state, got {sorted(state)}")

    def end_round(self) -> None:
        """Called by every executor after each round's merges (a stateful rule updates)."""

    def merge(self, own: Tensors, received: Mapping[int, Tensors], self_weight: float,
              weights: Mapping[int, float]) -> dict[str, torch.Tensor]:
        raise NotImplementedError


class LinearAggregator(Aggregator):
    """The merged copy is ``w_own * own + sum_j w_j * copy_j`` with the weights
    :meth:`mixing_weights` gives: the vectorized backend's mixing matrix uses the same ones."""

    linear = True

    def mixing_weights(self, self_weight: float, weights: Mapping[int, float],
                       arrived: Collection[int]) -> tuple[float, dict[int, float]]:
        """``(weight of the own copy, {sender: weight})`` over the copies that arrived."""
        raise NotImplementedError

    def merge(self, own: Tensors, received: Mapping[int, Tensors], self_weight: float,
              weights: Mapping[int, float]) -> dict[str, torch.Tensor]:
        w_own, w = self.mixing_weights(self_weight, weights, received.keys())
        out = {}
        for name, value in own.items():
            acc = value * w_own
            # Sorted by sender so that every transport adds in the same order (bit-identical).
            for j in sorted(received):
                acc = acc + received[j][name] * w[j]
            out[name] = acc
        return out


class StackedAggregator(Aggregator):
    """A non-linear rule (median, trimmed mean, clipping, ...) written once, batched."""

    linear = False

    def combine(self, values: torch.Tensor, mask: torch.Tensor,
                weights: torch.Tensor) -> torch.Tensor:
        """The merged copies, ``(H, numel)``.

        Args:
            values: ``(H, K, numel)``: holder h's own copy (flattened, all the component's
                tensors in order) at ``[h, 0]``, its peers' copies at ``[h, 1:]`` (sorted by
                sender), padding where ``mask`` is False.
            mask: ``(H, K)`` bool: which entries are real copies (``[:, 0]`` always is).
            weights: ``(H, K)``: MH weights over the real copies (a missing peer's weight is
                folded into the own copy's; 0 on padding).
        """
        raise NotImplementedError

    def merge(self, own: Tensors, received: Mapping[int, Tensors], self_weight: float,
              weights: Mapping[int, float]) -> dict[str, torch.Tensor]:
        w_own, w = fold_missing(self_weight, weights, received.keys())
        senders = sorted(received)
        rows = [flatten(own)] + [flatten(received[j]) for j in senders]
        values = torch.stack(rows)[None]
        mask = torch.ones(values.shape[:2], dtype=torch.bool, device=values.device)
        wts = torch.tensor([[w_own, *(w[j] for j in senders)]], dtype=values.dtype,
                           device=values.device)
        return unflatten(self.combine(values, mask, wts)[0], own)


class ScreeningAggregator(StackedAggregator):
    """A stacked rule that also judges each copy by the receiver's loss with it (screening on
    own data) and remembers who sent what across rounds. Every executor that supports it
    calls :meth:`combine_screened` with the losses (``runtime.screening`` computes them, the
    same way in both backends); plain :meth:`combine` is its declared fallback for copies it
    cannot evaluate. ``batch`` and ``seed`` choose the receiver's screening batch."""

    batch: int = 32
    seed: int = 0  # the run's seed (set by the experiment builder)

    def combine_screened(self, values: torch.Tensor, mask: torch.Tensor,
                         weights: torch.Tensor, losses: torch.Tensor,
                         receivers: Sequence[int], senders: Sequence[Sequence[int]],
                         ) -> torch.Tensor:
        """As :meth:`combine`, with ``losses`` ``(H, K)``: holder h's loss on its screening
        batch with copy k in place of its own (``[:, 0]``: its own copy); ``receivers[h]``
        holder h's agent id, ``senders[h]`` the sender of each of its columns ``1 ..``."""
        raise NotImplementedError


def flatten(tensors: Tensors) -> torch.Tensor:
    """A component's tensors as one vector, in the mapping's (the component's) name order."""
    return torch.cat([t.reshape(-1) for t in tensors.values()])


def unflatten(vector: torch.Tensor, like: Tensors) -> dict[str, torch.Tensor]:
    """The inverse of :func:`flatten`, shaped like ``like``."""
    out, start = {}, 0
    for name, t in like.items():
        out[name] = vector[start : start + t.numel()].view(t.shape)
        start += t.numel()
    return out


def build_aggregator(name: str, params: Mapping[str, Any] | None = None) -> Aggregator:
    """The registered aggregator ``name`` with ``params`` (checked against its constructor)."""
    return AGGREGATION.create(name, params, "aggregation.name", "aggregation.params")
