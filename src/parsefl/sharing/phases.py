"""A method's phases: their names in run order and the round each starts at.

A staged method (harmony: modality-wise encoders, then multimodal fusion) declares its phases
here, so that what reads the run's time sees them: the engine re-plans when the phase changes
(the plan key), and ``rounds: auto`` (``experiments.run.network_stop.NetworkStop``, or
``convergence.PlateauStop`` under ``train.stop_rule: agents``) never ends a run inside a phase
that is not the last. Under ``rounds: auto`` a phase also ends early, once the stop rule finds it
plateaued: the rule moves the next phase's start to that round (:meth:`Phases.begin_next`),
the same round in every process, since the agents agree on it through the transport. The
starts are run state: they are checkpointed and restored.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from typing import Any


class Phases:
    """Phase names in run order and the first round of each (``starts[0]`` is 0)."""

    def __init__(self, names: Sequence[str | None] = (None,),
                 starts: Sequence[int] = (0,)) -> None:
        if len(names) != len(starts) or not names or starts[0] != 0 \
                or any(b < a for a, b in zip(starts, starts[1:], strict=False)):
            raise ValueError(f"phases {names!r} need one start each, the first 0, in order; "
                             f"got {starts!r}")
        self.names = tuple(names)
        self.starts = list(starts)
        self.ended_by: list[str | None] = [None] * len(names)  # "plateau" | "schedule"

    @property
    def last(self) -> int:
        """The index of the final phase."""
        return len(self.names) - 1

    def index(self, r: int) -> int:
        """The index of the phase round ``r`` (0-based) belongs to."""
        return bisect_right(self.starts, r) - 1

    def at(self, r: int) -> str | None:
        """The name of round ``r``'s phase (None: a method without named phases)."""
        return self.names[self.index(r)]

    def begin_next(self, r: int) -> None:
        """The phase of round ``r - 1`` plateaued: the next one starts at round ``r`` (the
        phases after it move by as much, keeping their lengths)."""
        k = self.index(r - 1)
        if k == self.last:
            raise ValueError("the final phase has no next one")
        shift = self.starts[k + 1] - r
        self.starts[k + 1 :] = [s - shift for s in self.starts[k + 1 :]]
        self.ended_by[k] = "plateau"

    def spans(self, rounds: int) -> list[dict[str, Any]]:
        """The phases that ran in a run of ``rounds`` rounds: name, first round, rounds run,
        and what ended each (``plateau``, ``schedule``: its planned length; the last one's is
        the run's ``stopped_by``)."""
        out = []
        for k, name in enumerate(self.names):
            start = self.starts[k]
            if start >= rounds:
                break
            end = min(self.starts[k + 1], rounds) if k < self.last else rounds
            ended = self.ended_by[k] or ("schedule" if end < rounds else None)
            out.append({"name": name, "start": start, "rounds": end - start,
                        "ended_by": ended})
        return out

    def state(self) -> dict[str, Any]:
        return {"starts": list(self.starts), "ended_by": list(self.ended_by)}

    def load(self, state: dict[str, Any]) -> None:
        """Starts saved by :meth:`state` (a resumed ``rounds: auto`` run), checked."""
        starts, ended = list(state["starts"]), list(state["ended_by"])
        if len(starts) != len(self.names) or len(ended) != len(self.names):
            raise ValueError(f"saved phases {starts!r} do not fit {self.names!r}")
        self.starts, self.ended_by = starts, ended
