"""The network rule of ``rounds: auto`` (``train.stop_rule: network``, the default): the agents
pool their validation counts per modality group into one network-wide accuracy per group, by an
exact consensus over the graph, and the run stops once every group's smoothed curve has gained
nothing for ``train.patience`` rounds.

Why the network and not each agent: an agent's validation split is a dozen samples, and a rule
that waits until every agent's own curve has flattened stopped the same method at rounds up to
2.5x apart across seeds (docs/results.md, "A stopping rule that measures the network"). Pooled
over a group, the curve is read from every agent's samples at once.

The consensus: each agent floods the (group, correct, total) of its own split; in each exchange
an agent sends its neighbours the entries it learned in the one before. After diameter-many
exchanges through the transport (the same count in every process) every agent of a connected
graph holds every agent's entry and adds up the same integers: the decision is identical in
every agent and every process, bit for bit — no floating-point gossip, whose approximate
averages could differ by a rounding between agents. A graph that is disconnected in an
evaluation round leaves every agent short of someone's entry: that round records no point.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx

from parsefl.config import TrainConfig
from parsefl.experiments.run.driver import RoundEnd, scheduled
from parsefl.runtime.transport import Message
from parsefl.sharing.phases import Phases

MIN_GAIN = 0.005  # accuracy (a fraction: 0.5 points) a plateaued curve gains at most
COUNTS = "val"  # the control message kind (body {"counts": [[agent, group, correct, total]]})
Entry = tuple[str, int, int]  # one agent's group, correct and total on its validation split
Tally = dict[str, tuple[int, int]]  # group -> (correct, total) over the network
Curve = list[tuple[int, float]]  # (rounds done, accuracy)


def exchanges(graph: nx.Graph) -> int:
    """How many exchanges carry an entry to every agent (the diameter; n - 1 if disconnected:
    the bound that does not depend on which agents are joined)."""
    return nx.diameter(graph) if nx.is_connected(graph) else graph.number_of_nodes() - 1


def flood(own: Mapping[int, Entry], graph: nx.Graph, transport: Any) -> dict[int, dict[int, Entry]]:
    """Each local agent's view (agent -> entry) after flooding ``own`` over ``graph``; agents
    not in ``own`` live in other processes, which call this with the same graph. Every agent
    sends every neighbour a message in every exchange (empty once it has nothing new), as the
    stop flag does, so that no transport waits for a message that never comes."""
    known = {i: {i: e} for i, e in own.items()}
    fresh = {i: dict(v) for i, v in known.items()}
    for _ in range(exchanges(graph)):
        msgs = [Message(i, j, COUNTS, {"counts": [[a, *e] for a, e in sorted(fresh[i].items())]},
                        (i, j))
                for i in sorted(known) for j in sorted(graph.neighbors(i))]
        inbox = transport.exchange(msgs)
        fresh = {i: {} for i in known}
        for i, view in known.items():
            for msg in sorted(inbox.get(i, []), key=lambda m: m.src):  # first sender wins
                for a, g, c, n in msg.body["counts"] if msg.kind == COUNTS else ():
                    if a not in view:
                        view[a] = fresh[i][a] = (g, c, n)
    return known


def tally(entries: Sequence[Entry]) -> Tally:
    """(correct, total) summed per group, groups sorted."""
    sums: dict[str, tuple[int, int]] = {}
    for g, c, n in entries:
        c0, n0 = sums.get(g, (0, 0))
        sums[g] = (c0 + c, n0 + n)
    return dict(sorted(sums.items()))


def network_tally(own: Mapping[int, Entry], graph: nx.Graph, transport: Any) -> Tally | None:
    """The network's counts per group, as every local agent computes them from its view; None
    when some local agent did not learn every agent's entry (a disconnected graph, where no
    agent does) or when this process hosts no agent."""
    views = flood(own, graph, transport)
    everyone = graph.number_of_nodes()
    if not views or any(len(v) < everyone for v in views.values()):
        return None
    return tally(list(next(iter(views.values())).values()))


def pooled(curves: Mapping[int, Curve], sizes: Mapping[int, int],
           groups: Mapping[int, str]) -> list[tuple[int, Tally]]:
    """The network's counts per evaluation round, from every agent's validation curve and split
    size (what :func:`network_tally` gives the agents during the run, read off the record)."""
    rounds: dict[int, list[Entry]] = {}
    for i, curve in curves.items():
        for r, a in curve:
            rounds.setdefault(r, []).append((groups[i], round(a * sizes[i]), sizes[i]))
    return [(r, tally(e)) for r, e in sorted(rounds.items())]


def group_curves(points: Sequence[tuple[int, Tally]]) -> dict[str, Curve]:
    """Each group's network accuracy per evaluation round (groups without samples left out)."""
    out: dict[str, Curve] = {}
    for r, counts in points:
        for g, (c, n) in counts.items():
            if n:
                out.setdefault(g, []).append((r, c / n))
    return out


@dataclass(frozen=True)
class StopRule:
    """Smoothed, with patience: the curve's exponential moving average (weight ``smoothing`` on
    the newest point, restarted at the phase's first round) has not risen above its best by
    more than ``min_gain``, or by more than one sample of the group's validation (a gain that
    small is one sample answered differently), for ``patience`` rounds."""

    patience: int
    smoothing: float
    min_gain: float = MIN_GAIN

    @classmethod
    def of(cls, train: TrainConfig) -> StopRule:
        return cls(train.patience, train.smoothing)

    def judge(self, curve: Curve, done: int, since: int = 0,
              samples: int = 0) -> dict[str, Any]:
        """The points of rounds ``since+1 .. done`` of a curve over ``samples`` validation
        samples (0: unknown): their smoothed values, the round of the last gain
        (``best_round``) and whether the curve has ``stalled`` since."""
        gain = max(self.min_gain, 1 / samples if samples else 0.0)
        s: float | None = None
        best, best_round, smoothed = 0.0, None, []
        for r, a in curve:
            if not since < r <= done:
                continue
            s = a if s is None else self.smoothing * a + (1 - self.smoothing) * s
            smoothed.append((r, s))
            if best_round is None or s > best + gain:
                best, best_round = s, r
        return {"stalled": best_round is not None and done - best_round >= self.patience,
                "best_round": best_round, "smoothed": smoothed}

    def groups(self, points: Sequence[tuple[int, Tally]], done: int,
               since: int = 0) -> dict[str, dict[str, Any]]:
        """:meth:`judge` of every group's network curve."""
        samples = {g: n for _, t in points for g, (_, n) in t.items()}
        return {g: self.judge(c, done, since, samples[g])
                for g, c in group_curves(points).items()}

    def stalled(self, points: Sequence[tuple[int, Tally]], done: int, since: int = 0) -> bool:
        """Every group's network curve stalled (False with none)."""
        judged = self.groups(points, done, since)
        return bool(judged) and all(j["stalled"] for j in judged.values())


def network_record(points: Sequence[tuple[int, Tally]], rule: StopRule, rounds: int,
                   since: int = 0) -> dict[str, Any]:
    """results.json's ``convergence.network``: the rule, and per group the network curve
    (round, accuracy, correct, total), its smoothed values, the round of its last gain and
    whether it had stalled by ``rounds`` in the phase from ``since``; ``plateaued``: all had."""
    counts = {(r, g): v for r, t in points for g, v in t.items()}
    curves = group_curves(points)
    groups = {g: {"stalled": j["stalled"], "best_round": j["best_round"],
                  "curve": [[r, round(a, 6), *counts[r, g]] for r, a in curves[g]],
                  "smoothed": [[r, round(v, 6)] for r, v in j["smoothed"]]}
              for g, j in rule.groups(points, rounds, since).items()}
    return {"rule": "network", "patience": rule.patience, "smoothing": rule.smoothing,
            "min_gain": rule.min_gain, "groups": groups,
            "plateaued": bool(groups) and all(v["stalled"] for v in groups.values())}


def conclude(phases: Phases, k: int, end: RoundEnd) -> bool:
    """A plateau in phase ``k`` at ``end``: the next phase begins with the next round, or, in
    the final phase, the run ends (True). No run stops inside a phase that is not its last."""
    if k < phases.last:
        phases.begin_next(end.done)
        return False
    if end.last:
        return False
    end.last = True
    return True


class NetworkStop:
    """``rounds: auto`` by the network rule. On every evaluation round — before the phase's
    first ``min_rounds`` too, so that the curve is whole — the agents pool their validation
    counts (:func:`network_tally`) into ``validate.network`` (checkpointed with the curves);
    from ``min_rounds`` into the phase on, once every group's network curve has stalled in
    the phase (:class:`StopRule`), the phase ends: the run, if it is the final one. Put it
    after :class:`~parsefl.experiments.run.convergence.Validate`. ``stopped`` tells whether it
    ended the run."""

    def __init__(self, loop: Any, validate: Any, rule: StopRule, every: int,
                 min_rounds: int) -> None:
        self.loop, self.validate, self.rule = loop, validate, rule
        self.every, self.min_rounds = every, min_rounds
        self.stopped = False

    def __call__(self, end: RoundEnd) -> None:
        if not scheduled(end, self.every):
            return
        own = {a.id: (a.group, *self.validate.counts[a.id]) for a in self.validate.agents}
        point = network_tally(own, self.loop.topology.at(end.round), self.loop.transport)
        if point is not None:
            self.validate.network.append((end.done, point))
        phases = self.loop.strategy.phases
        k = phases.index(end.round)
        since = phases.starts[k]
        if end.done - since < self.min_rounds or point is None:
            return
        if self.rule.stalled(self.validate.network, end.done, since):
            self.stopped = conclude(phases, k, end) or self.stopped
