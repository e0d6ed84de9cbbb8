"""Sharing strategies: *what* travels to *whom* and *how* it is merged. Pure: no I/O, no
sockets, no global view: a strategy sees only an agent's own capability and what a
neighbour announced in the handshake. A strategy also names the model its agents carry."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from parsefl.model import AgentModel, ModelSpec, SlicedModel


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

    Subclasses override the hooks; each is a pure function of its arguments. Constructor
    keywords come from the config's ``method_params``; ``rounds`` is the run's length.
    """

    name = "base"
    centralized: ClassVar[bool] = False  # True: one model on pooled data, no graph

    def __init__(self, rounds: int = 1) -> None:
        self.rounds = rounds

    def build_model(
        self, modalities: Sequence[str], input_shapes: Mapping[str, Sequence[int]],
        spec: ModelSpec,
    ) -> AgentModel:
        """The model an agent holding ``modalities`` carries under this strategy."""
        return SlicedModel(modalities, input_shapes, spec)

    def phase(self, round: int) -> str | None:
        """A training phase name passed to the model's loss (multi-stage methods)."""
        return None

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


def with_prefix(components: set[str], *prefixes: str) -> set[str]:
    """The components whose names start with one of ``prefixes`` (or equal one)."""
    return {c for c in components if any(c == p or c.startswith(p + ".") for p in prefixes)}
