"""Sharing strategies: *what* travels to *whom* and *how* it is merged. Pure: no I/O, no
sockets, no global view: a strategy sees only an agent's own capability and what a
neighbour announced in the handshake."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Capability:
    """What an agent announces to its neighbours in the capability handshake."""

    agent: int
    modalities: tuple[str, ...]
    signatures: Mapping[str, str]  # component name -> signature (names, shapes, dtypes)

    @property
    def multimodal(self) -> bool:
        return len(self.modalities) > 1


class SharingStrategy:
    """Default rule (partial alignment): component c crosses edge (i, j) only when both hold c
    with the same signature; merge is the Metropolis–Hastings weighted gossip average.

    Subclasses override the hooks; each is a pure function of its arguments.
    """

    name = "base"

    def offered(self, me: Capability, round: int) -> set[str]:
        """The components this agent is willing to exchange this round."""
        return set(me.signatures)

    def exchanges(self, component: str, me: Capability, peer: Capability, round: int) -> bool:
        """Whether ``component`` travels between ``me`` and ``peer`` this round."""
        return (
            component in self.offered(me, round)
            and component in self.offered(peer, round)
            and me.signatures[component] == peer.signatures[component]
        )

    def merge(
        self,
        own: Mapping[str, torch.Tensor],
        received: Mapping[int, Mapping[str, torch.Tensor]],
        self_weight: float,
        weights: Mapping[int, float],
    ) -> dict[str, torch.Tensor]:
        """Gossip average: w_ii * own + sum_j w_ij * x_j, over the copies that arrived (weights
        of missing neighbours go back to the agent's own copy, so the row still sums to 1)."""
        missing = sum(w for j, w in weights.items() if j not in received)
        out = {}
        for name, value in own.items():
            acc = value * (self_weight + missing)
            # Sorted by sender so that every transport adds in the same order (bit-identical).
            for j in sorted(received):
                acc = acc + received[j][name] * weights[j]
            out[name] = acc
        return out
