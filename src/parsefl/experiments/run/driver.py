"""The one driver over rounds: every runtime (the simulator, each distributed worker) steps its
round engine through :func:`run_rounds`; what happens between rounds (evaluation, metrics,
checkpoints, progress, logs) is a list of hooks, called in order after each round."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from parsefl.runtime import Engine, Evaluation, RoundStats


@dataclass
class RoundEnd:
    """What one round produced, handed to each hook in turn. ``evaluation`` is filled by an
    :class:`Evaluate` hook on the rounds it evaluates, for the hooks after it."""

    round: int  # 0-based
    stats: RoundStats
    last: bool  # the run's final round
    evaluation: Evaluation | None = None

    @property
    def done(self) -> int:
        """Rounds completed, counting this one."""
        return self.round + 1


class Hook(Protocol):
    def __call__(self, end: RoundEnd) -> None: ...


def run_rounds(loop: Engine, rounds: int, hooks: Sequence[Hook], start: int = 0) -> None:
    """Rounds ``start .. rounds-1`` of ``loop``, each followed by every hook in order. A hook
    may end the run early by setting ``end.last`` (the hooks after it see a final round)."""
    for r in range(start, rounds):
        end = RoundEnd(r, loop.step(r), r == rounds - 1)
        for hook in hooks:
            hook(end)
        if end.last:
            break


def scheduled(end: RoundEnd, every: int) -> bool:
    """Every ``every`` rounds, and always after the final one."""
    return end.done % every == 0 or end.last


class Evaluate:
    """On scheduled rounds: bring the agents up to date (``loop.sync``), evaluate them."""

    def __init__(self, loop: Engine, every: int, evaluate: Callable[[], Evaluation]) -> None:
        self.loop, self.every, self.evaluate = loop, every, evaluate

    def __call__(self, end: RoundEnd) -> None:
        if scheduled(end, self.every):
            self.loop.sync()
            end.evaluation = self.evaluate()


class Checkpoint:
    """Every ``every`` rounds and after the final one: ``save(rounds_done)`` (after
    ``loop.sync``, so that the agents hold the current parameters)."""

    def __init__(self, loop: Engine, every: int, save: Callable[[int], Any]) -> None:
        self.loop, self.every, self.save = loop, every, save

    def __call__(self, end: RoundEnd) -> None:
        if scheduled(end, self.every):
            self.loop.sync()
            self.save(end.done)


def progress(callback: Callable[[RoundStats, Evaluation | None], None]) -> Hook:
    """A hook from a ``(stats, evaluation)`` callback (the CLI's progress bar)."""
    return lambda end: callback(end.stats, end.evaluation)
