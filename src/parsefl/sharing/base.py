"""Sharing strategies: *what* travels to *whom*, and when that answer may change (the plan
key). Pure: no I/O, no sockets, no global view: a strategy sees only an agent's own capability
and what a neighbour announced in the handshake. A strategy also names the model its agents
carry. *How* the copies are merged is an aggregator's job (``parsefl.aggregation``)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from parsefl.model import AgentModel, ModelSpec, SlicedModel
from parsefl.sharing.phases import Phases


@dataclass(frozen=True)
class Capability:
    """What an agent announces to its neighbours in the capability handshake."""

    agent: int
    modalities: tuple[str, ...]
    signatures: Mapping[str, str]  # component name -> signature (names, shapes, dtypes)
    # Components the agent has just gained (a modality back, or it joined): its planned
    # peers send it their copies for a warm start before it trains (``RoundEngine``).
    warming: tuple[str, ...] = ()

    @property
    def multimodal(self) -> bool:
        return len(self.modalities) > 1


class SharingStrategy:
    """Default rule (partial alignment): component c crosses edge (i, j) only when both hold c
    with the same signature.

    Subclasses override the hooks; each is a pure function of its arguments. Constructor
    keywords come from the config's ``method_params``; ``rounds`` is the run's length.
    """

    name = "base"
    centralized: ClassVar[bool] = False  # True: one model on pooled data, no graph

    def __init__(self, rounds: int = 1) -> None:
        self.rounds = rounds
        # A staged method declares its phases here (``sharing.phases``): the stop rule of
        # ``rounds: auto`` reads them, and may end a phase early when it has plateaued.
        self.phases = Phases()

    def build_model(
        self, modalities: Sequence[str], input_shapes: Mapping[str, Sequence[int]],
        spec: ModelSpec,
    ) -> AgentModel:
        """The model an agent holding ``modalities`` carries under this strategy."""
        return SlicedModel(modalities, input_shapes, spec)

    def phase(self, round: int) -> str | None:
        """The training phase of ``round``, passed to the model's loss (multi-stage methods
        name theirs in ``self.phases``; a method without phases has one, None)."""
        return self.phases.at(round)

    def plan_key(self, round: int) -> Hashable:
        """When the answers of ``offered`` and ``exchanges`` may change. Every runtime reuses
        a round's gossip plans while the graph, the agents' capabilities and this key stay the
        same, so those answers must be a function of the capabilities and this key alone.
        Default: the phase (every built-in strategy changes its offer only with it); a
        strategy whose offer changes with the round itself returns ``round``."""
        return self.phase(round)

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


def with_prefix(components: set[str], *prefixes: str) -> set[str]:
    """The components whose names start with one of ``prefixes`` (or equal one)."""
    return {c for c in components if any(c == p or c.startswith(p + ".") for p in prefixes)}
