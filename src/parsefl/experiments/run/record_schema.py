"""The bounds a run record must meet before it is used: the record a checkpoint holds (resume)
and the record each rank publishes in its summary (``parsefl merge``, rank 0's merge).

Two layers. The *schema* (pydantic, strict: no coercion) bounds every type, size and range
— finite accuracies in [0, 1], byte counts below 2^53, strings and lists of bounded length —
before anything is allocated from the values. The *fit* checks that the record belongs to
this run: rounds inside the run and each once, agents those this part hosts, links between
agents that exist. A record that fails either is one line naming the file (exit 2)."""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError

from parsefl.errors import ConfigError

Count = Annotated[int, Strict(), Field(ge=0, le=2**53)]
Prob = Annotated[float, Strict(), Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Loss = Annotated[float, Strict()] | None  # NaN: an agent that did not train (range: a fit check)
Name = Annotated[str, Strict(), Field(max_length=256)]
Key = Annotated[str, Strict(), Field(pattern=r"^[0-9]{1,9}$")]  # an agent id or a round
Flag = Annotated[bool, Strict()]
MAX_ITEMS = 10_000_000  # list lengths: far above any real record, far below an exhaustion


def _items(n: int = MAX_ITEMS) -> Any:
    return Field(max_length=n)


class _Strict(BaseModel):
    # Every leaf is Strict (no coercion); containers are lax so that a JSON array is a tuple.
    model_config = ConfigDict(extra="forbid")


class EvalRow(_Strict):
    id: Count
    group: Name
    modalities: Annotated[list[Name], _items(64)]
    accuracy: Prob
    macro_f1: Prob


class RoundRecord(_Strict):
    round: Count
    losses: dict[Key, Loss]
    links: Annotated[list[tuple[Count, Count, Count]], _items()]
    cosine: dict[Name, Loss] | None = None


class History(_Strict):
    rounds: Annotated[list[RoundRecord], _items()]
    evals: dict[Key, Annotated[list[EvalRow], _items()]]


class Curves(_Strict):
    source: Name
    groups: dict[Key, Name]
    curves: dict[Key, Annotated[list[tuple[Count, Prob]], _items()]]
    sizes: dict[Key, Count] = {}  # each agent's validation samples
    # the network stop rule's points: (rounds done, group -> (correct, total))
    network: Annotated[list[tuple[Count, dict[Name, tuple[Count, Count]]]], _items()] = []


class PhaseState(_Strict):
    starts: Annotated[list[Count | None], _items(64)]
    ended_by: Annotated[list[Name | None], _items(64)]


class Screened(_Strict):
    """A screening aggregator's counts (``Robust.report``)."""

    copies: Count
    rejected: Count
    offset: Count
    spread: Count
    loss: Count
    rejected_from: Annotated[list[tuple[Count, Count]], _items()]


class Record(BaseModel):
    """What :meth:`RunSession.summary` and a checkpoint record share (other keys: the
    runtime's own, checked where they are used)."""

    model_config = ConfigDict(extra="allow")
    history: History
    validation: Curves | None = None
    phases: PhaseState | None = None
    plateau: Flag = False
    rejected: dict[Name, Count] = {}
    screened: Screened | None = None
    overlay_links: Annotated[list[tuple[Name, Count, Count, Count]], _items()] = []
    privacy_steps: dict[Key, Count] = {}  # DP-SGD steps each private agent took (accounting)
    wall_s: Annotated[float, Strict(), Field(ge=0.0, le=1e9)] = 0.0


class Summary(Record):
    """A rank's published summary (:meth:`Worker.run`)."""

    rank: Count
    agents: Annotated[list[Count], _items()]
    wire: dict[Name, Count]
    lost: dict[Key, Annotated[str, Field(max_length=2000)]]
    resumed_from: Count
    world_size: Count
    placement: Name = "block"
    cross_edge_share: Prob | None = None
    backend: Name = "reference"
    transport: Name = "gloo"
    insecure: Flag = False
    authenticated: Flag = False
    encrypted: Flag = False


def check_record(data: Any, where: str, field: str, *, agents: Collection[int],
                 n_agents: int, rounds: int, done: int | None = None,
                 summary: bool = False) -> dict[str, Any]:
    """``data`` if it is a record of this run (see the module docstring), else
    :class:`ConfigError` on ``field`` naming ``where``. ``agents``: the ids this part hosts;
    ``rounds``: the run's length (its last round is ``rounds - 1``); ``done``: a checkpoint's
    round, whose record must hold exactly rounds ``0 .. done - 1``."""
    try:
        model = (Summary if summary else Record).model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        at = ".".join(str(p) for p in first["loc"])
        raise ConfigError(field, f"{where} is not a valid run record ({at}: {first['msg']}; "
                          f"{err.error_count()} problem(s))") from None
    why = _misfit(model, set(agents), n_agents, rounds, done)
    if why:
        raise ConfigError(field, f"{where} does not fit this run: {why}")
    return data


def _misfit(rec: Record, agents: set[int], n: int, rounds: int, done: int | None) -> str:
    seen = [r.round for r in rec.history.rounds]
    if done is not None and seen != list(range(done)):
        return f"it holds rounds {_span(seen)}, its checkpoint is of round {done}"
    if seen != sorted(set(seen)) or (seen and seen[-1] >= rounds):
        return f"rounds {_span(seen)} are not each once inside the run's {rounds}"
    joined = (rec.model_extra or {}).get("joined")  # a process that rejoined skipped rounds
    if seen and seen != list(range(seen[0], seen[-1] + 1)) and not joined:
        return f"rounds {_span(seen)} have gaps"
    ran = set(seen)
    if any(int(r) >= rounds or int(r) not in ran for r in rec.history.evals):
        return "an evaluation of a round it did not run"
    ids = {int(k) for r in rec.history.rounds for k in r.losses} \
        | {row.id for rows in rec.history.evals.values() for row in rows} \
        | {int(k) for k in rec.privacy_steps}
    if rec.validation is not None:
        ids |= {int(k) for k in (*rec.validation.groups, *rec.validation.curves)}
        if any(r > rounds for c in rec.validation.curves.values() for r, _ in c) \
                or any(r > rounds for r, _ in rec.validation.network):
            return "a validation point past the run's last round"
        if any(c > t for _, tally in rec.validation.network for c, t in tally.values()):
            return "a network validation count above its total"
    if ids - agents:
        return f"agents {sorted(ids - agents)[:8]} are not this part's"
    if any(max(u, v) >= n for r in rec.history.rounds for u, v, _ in r.links) \
            or any(max(u, v) >= n for _, u, v, _ in rec.overlay_links):
        return f"a link between agents that do not exist (the run has {n})"
    if any(not math.isnan(x) and abs(x) > 1e12 for r in rec.history.rounds
           for x in r.losses.values() if x is not None):
        return "a loss out of range"
    if isinstance(rec, Summary):
        if set(rec.agents) != agents:
            return f"it claims agents {sorted(rec.agents)[:8]}, the run placed {sorted(agents)[:8]}"
        if rec.resumed_from >= max(rounds, 1):
            return f"resumed from round {rec.resumed_from} of {rounds}"
    return ""


def _span(rounds: list[int]) -> str:
    return "none" if not rounds else f"{rounds[0]}..{rounds[-1]} ({len(rounds)})"
