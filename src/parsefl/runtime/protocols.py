"""The runtime's contracts, in one place: what an executor does for the engine
(:class:`Executor`, checkpoints of its state beyond the agents included), what a round engine
offers the run driver, its hooks and its executor (:class:`Engine`), and what one round reports
(:class:`RoundStats`). Every engine and executor implements its protocol in full, so callers
use these members directly and never probe for them.

Plans have two identifiers. ``Engine.plan_key`` is the key the current plans were made under
(the handshake key and the strategy's ``SharingStrategy.plan_key(r)``): the same in every
process, it changes exactly when the plans may change content, and error feedback's public
copies restart with it. ``Engine.plan_version`` counts the re-plans: it changes whenever the
plans are rebuilt (a distributed engine rebuilds every round, to drop lost peers), and an
executor may cache what it derives from the plans under it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Protocol

if TYPE_CHECKING:
    from parsefl.aggregation import Aggregator
    from parsefl.attacks import Adversary
    from parsefl.compressors import Communication
    from parsefl.runtime.agent import Agent
    from parsefl.runtime.checks import ReceiveChecks
    from parsefl.runtime.handshake import GossipPlan
    from parsefl.runtime.schedules import MembershipSchedule, ModalitySchedule
    from parsefl.runtime.transport import Transport
    from parsefl.sharing.base import SharingStrategy
    from parsefl.topology import GraphSchedule


@dataclass(frozen=True)
class RoundStats:
    round: int
    loss: float
    link_bytes: Counter  # (u, v) -> payload bytes that crossed that physical link this round
    gradient_cosine: dict[str, float] = field(default_factory=dict)  # see runtime.diagnostics


class Executor(Protocol):
    """How the local agents train and merge; the engine decides when."""

    backend_name: ClassVar[str]  # what records (results.json ``dynamics``) call the backend

    def train(self, phase: str | None) -> list[float]:
        """One round of local training of the online agents; their losses."""
        ...

    def gossip(self, plans: dict[int, GossipPlan], version: int) -> None:
        """Exchange and merge by ``plans``; ``version`` changes exactly when the plans do
        (an executor may cache what it derives from them under it)."""
        ...

    def sync(self) -> None:
        """Make every Agent object's model current (before evaluation or checkpoints)."""
        ...

    def reload(self, ids: Sequence[int]) -> None:
        """Agents ``ids`` were changed from outside (a warm start): take their values."""
        ...

    def checkpoint_state(self) -> dict[str, list]:
        """What resuming needs beyond the agents (``{"optimizers": [...]}``: one stacked
        optimizer state per training group; none for the reference executor, whose agents
        are its whole state)."""
        ...

    def load_checkpoint_state(self, state: dict[str, list]) -> None:
        """Take back what :meth:`checkpoint_state` gave (after the agents are restored)."""
        ...


class Engine(Protocol):
    """A round engine as the run driver, its hooks and its executor see it (the simulator's
    :class:`~parsefl.runtime.engine.RoundEngine`, a process's
    :class:`~parsefl.runtime.distributed.DistributedEngine`)."""

    agents: dict[int, Agent]  # the local agents, by id
    strategy: SharingStrategy
    topology: GraphSchedule
    transport: Transport
    aggregator: Aggregator
    modalities: ModalitySchedule
    membership: MembershipSchedule
    checks: ReceiveChecks
    adversary: Adversary | None  # None: nobody attacks
    communication: Communication | None  # None: every component as is, every round
    executor: Executor
    local_steps: Callable[[int, int], int | None] | None
    round: int  # the round being run
    online: frozenset[int]  # local agents online this round
    plans: dict[int, GossipPlan]  # this round's gossip plans of the local agents
    plan_version: int  # bumped whenever the plans are rebuilt

    @property
    def plan_key(self) -> Hashable:
        """The key the plans were last made under (the same in every process)."""
        ...

    @property
    def attackers(self) -> frozenset[int]:
        """Agents whose sent copies the adversary replaces."""
        ...

    def step(self, r: int) -> RoundStats:
        """Run round ``r``."""
        ...

    def sync(self) -> None:
        """Bring the Agent objects up to date (before evaluation or checkpoints)."""
        ...

    def replay_schedules(self, rounds: int) -> None:
        """Resuming after ``rounds`` rounds: apply the schedules of the rounds done."""
        ...
