"""Attacks and the adversary that applies them in the engine's send path.

An attack is a pure function of an :class:`AttackInput`: for each (attacker, recipient) pair
of one component it gets the attacker's honest copy, the recipient's view (its own copy and
its peers' copies of this round, as the recipient will aggregate them) and the MH weights,
and returns the copy the attacker sends instead. Both simulator backends build the same input
from the same copies (the reference runtime one recipient at a time, the vectorized backend
every pair of a component at once), so they send the same numbers.

Omniscient attacks (ALIE, IPM, dissensus) read the honest copies in the view, as in the
papers. Under ``parsefl launch`` the attacker is a real process: its view holds only what its
own process has this round (the recipient's copy and honest peers' copies when that process
hosts them; otherwise the attacker's own copy stands in), which is stated in
docs/robustness.md.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from parsefl.aggregation.base import flatten
from parsefl.registry import ATTACKS


@dataclass
class AttackInput:
    """One component, P (attacker, recipient) pairs."""

    own: torch.Tensor  # (P, numel): the attacker's honest copy
    view: torch.Tensor  # (P, K, numel): recipient's own copy at [:, 0], its peers' copies after
    honest: torch.Tensor  # (P, K) bool: real copies from honest agents (recipient's own too)
    byzantine: torch.Tensor  # (P, K) bool: copies from attackers
    weights: torch.Tensor  # (P, K): the recipient's MH weights over the view
    initial: torch.Tensor  # (P, numel): the attacker's copy before any training
    keys: Sequence[tuple[int, int, int, str]]  # (round, sender, recipient, component) per pair
    seed: int = 0


class Attack:
    """What an attacker sends. ``data_poisoning`` attacks send honestly (``craft`` returns
    ``own``) and change the attacker's training data at build time instead."""

    name: ClassVar[str] = "base"
    omniscient: ClassVar[bool] = False
    data_poisoning: ClassVar[bool] = False

    def craft(self, inp: AttackInput) -> torch.Tensor:
        raise NotImplementedError

    def poison_labels(self, y: torch.Tensor, n_classes: int) -> torch.Tensor:
        return y


def honest_stats(inp: AttackInput) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean and (unbiased) std over each pair's honest copies, and their count; with no
    honest copy in the view the attacker's own copy stands in (std 0)."""
    h = inp.honest[..., None].to(inp.view.dtype)
    n = h.sum(dim=1)  # (P, 1)
    safe = torch.where(inp.honest[..., None], inp.view, torch.zeros_like(inp.view))
    mean = safe.sum(dim=1) / n.clamp_min(1)
    var = (((safe - mean[:, None]) * h) ** 2).sum(dim=1) / (n - 1).clamp_min(1)
    mean = torch.where(n > 0, mean, inp.own)
    return mean, var.sqrt(), n


def build_attack(name: str, params: Mapping[str, Any] | None = None) -> Attack:
    """The registered attack ``name`` with ``params`` (checked against its constructor)."""
    return ATTACKS.create(name, params, "adversary.attack", "adversary.params")


def pair_seed(seed: int, key: tuple[int, int, int, str]) -> int:
    """A seed per (round, sender, recipient, component): the same in every backend."""
    r, src, dst, comp = key
    return (seed * 1_000_003 + r * 7919 + src * 104_729 + dst * 1_299_709
            + zlib.crc32(comp.encode())) % (2**63)


class Adversary:
    """Which agents attack, from which round, with which attack; the one send-path hook
    (:meth:`tamper`) both executors call."""

    def __init__(self, agents: Sequence[int], attack: Attack, from_round: int = 0,
                 seed: int = 0) -> None:
        self.agents = frozenset(agents)
        self.attack, self.from_round, self.seed = attack, int(from_round), seed
        self.initial: dict[tuple[int, str], torch.Tensor] = {}

    def capture(self, agents: Sequence) -> None:
        """Remember each local attacker's components before any training (``free_rider``)."""
        for a in agents:
            if a.id in self.agents:
                for comp in a.component_params:
                    self.initial[a.id, comp] = flatten(a.get_component(comp))

    def active(self, r: int) -> bool:
        return r >= self.from_round and not self.attack.data_poisoning

    def tamper(self, values: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor,
               byz: torch.Tensor, pairs: tuple[torch.Tensor, torch.Tensor],
               ids: Sequence[tuple[int, int]], comp: str, r: int) -> torch.Tensor:
        """``values`` (H, K, numel) with the attackers' entries ``pairs = (rows, cols)``
        replaced by what they send; ``ids`` lists each pair's (sender, recipient)."""
        rows, cols = pairs
        inp = AttackInput(
            own=values[rows, cols], view=values[rows], honest=(mask & ~byz)[rows],
            byzantine=(mask & byz)[rows], weights=weights[rows],
            initial=torch.stack([self.initial.get((s, comp), values[h, k])
                                 for (s, _), h, k in zip(ids, rows.tolist(), cols.tolist(),
                                                         strict=True)]),
            keys=[(r, s, d, comp) for s, d in ids], seed=self.seed)
        out = values.clone()
        out[rows, cols] = self.attack.craft(inp).to(values.dtype)
        return out

    def describe(self) -> dict[str, Any]:
        return {"agents": sorted(self.agents), "attack": self.attack.name,
                "from_round": self.from_round, "params": dict(vars(self.attack))}
