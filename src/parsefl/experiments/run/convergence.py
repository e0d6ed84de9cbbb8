"""Whether a run converged: each agent's validation split (a seeded, stratified share of its
own training data), validation curves per agent and per group, the window rule, and the first
``rounds: auto`` stop (``train.stop_rule: agents``), which the agents agree on by gossiping a
flag through the transport (so it works the same in the simulator and under ``parsefl
launch``). The default stop, on the network's pooled counts, is ``network_stop``.

Window rule: over the last ``WINDOW`` of the rounds run, the mean accuracy gained less than
``MIN_GAIN`` (0.5 points) over its mean in the window before. Without a validation split
(``train.val_fraction: 0``) the curves are the test accuracy: a report, never a decision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import networkx as nx
import numpy as np
import torch

from parsefl.experiments.run.driver import Engine, RoundEnd, scheduled
from parsefl.experiments.run.network_stop import (
    MIN_GAIN,
    StopRule,
    Tally,
    conclude,
    network_record,
    pooled,
)
from parsefl.runtime import Agent
from parsefl.runtime.transport import Message
from parsefl.sharing.phases import Phases

WINDOW = 0.2  # share of the rounds run that the plateau is judged on
FLAG = "flag"  # the control message kind of the stop flag (body {"plateau": 0 | 1})
Curve = list[tuple[int, float]]  # (rounds done, accuracy)
Held = dict[int, tuple[dict[str, torch.Tensor], torch.Tensor]]  # agent -> (x, y) validation


def hold_out(
    parts: Sequence[np.ndarray], y: np.ndarray, fraction: float, seed: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Each agent's indices cut into (train, validation): ``fraction`` of each class's samples
    (largest remainder over the classes, so the total is ``round(fraction * n)``), seeded per
    agent; at least two samples always stay for training."""
    train, val = [], []
    for i, idx in enumerate(parts):
        rng = np.random.default_rng([seed, i, 71])
        classes = [rng.permutation(idx[y[idx] == c]) for c in np.unique(y[idx])]
        want = min(round(fraction * len(idx)), max(0, len(idx) - 2))
        raw = [fraction * len(c) for c in classes]
        take = [int(v) for v in raw]
        for k in sorted(range(len(raw)), key=lambda k: raw[k] - take[k], reverse=True):
            if sum(take) >= want:
                break
            take[k] += 1
        while sum(take) > want:  # the floors alone may exceed the cap on tiny agents
            take[int(np.argmax(take))] -= 1
        val.append(np.sort(np.concatenate([c[:t] for c, t in zip(classes, take, strict=True)])))
        train.append(np.sort(np.concatenate([c[t:] for c, t in zip(classes, take, strict=True)])))
    return train, val


def plateau_gain(curve: Sequence[tuple[int, float]], rounds: int, since: int = 0) -> float | None:
    """Mean accuracy over the last ``WINDOW`` of the rounds ``since .. rounds`` minus that over
    the window before (None until both windows hold a point). ``since``: the first round of
    the phase being judged (points before it belong to an earlier phase)."""
    span = rounds - since
    w = max(1, round(WINDOW * span))
    last = [a for r, a in curve if rounds - w < r <= rounds]
    prev = [a for r, a in curve if max(rounds - 2 * w, since) < r <= rounds - w]
    return float(np.mean(last) - np.mean(prev)) if last and prev else None


def plateaued(curve: Sequence[tuple[int, float]], rounds: int, since: int = 0) -> bool:
    gain = plateau_gain(curve, rounds, since)
    return gain is not None and gain < MIN_GAIN


@torch.no_grad()
def validation_counts(agents: Sequence[Agent], held: Held) -> dict[int, tuple[int, int]]:
    """Each agent's (correct, total) on its own validation split (agents without one are left
    out; an empty split is (0, 0))."""
    return {a.id: (int((a.predict(held[a.id][0]) == held[a.id][1]).sum()), len(held[a.id][1]))
            for a in agents if a.id in held}


class Validate:
    """On evaluation rounds: every local agent's validation accuracy (its own split), or, with
    no split, its test accuracy from the evaluation before this hook."""

    def __init__(self, loop: Engine, agents: Sequence[Agent], held: Held, every: int) -> None:
        self.loop, self.agents, self.held, self.every = loop, agents, held, every
        self.source = "validation" if held else "test"
        self.curves: dict[int, Curve] = {}
        self.groups = {a.id: a.group for a in agents}
        self.sizes = {a.id: len(held[a.id][1]) for a in agents if a.id in held}
        self.counts: dict[int, tuple[int, int]] = {}  # this evaluation's, for the stop rule
        self.network: list[tuple[int, Tally]] = []  # the network rule's points (network_stop)

    def __call__(self, end: RoundEnd) -> None:
        if not scheduled(end, self.every):
            return
        if self.held:
            self.loop.sync()
            self.counts = validation_counts(self.agents, self.held)
            accs = {i: c / n for i, (c, n) in self.counts.items() if n}
        else:
            rows = end.evaluation.agents if end.evaluation else []
            accs = {row["id"]: row["accuracy"] for row in rows}
            self.groups.update({row["id"]: row["group"] for row in rows})
        for i, acc in accs.items():
            self.curves.setdefault(i, []).append((end.done, acc))

    def summary(self, rounds: int, since: int = 0) -> dict[str, Any]:
        return convergence_summary(self.to_json(), rounds, since)

    def load(self, data: dict[str, Any], keep: Any) -> None:
        """Curves from :meth:`to_json` (a resumed run), only the points ``keep(round)``."""
        self.curves = {int(i): [(int(r), float(a)) for r, a in c if keep(int(r))]
                       for i, c in data["curves"].items()}
        self.groups.update({int(i): g for i, g in data["groups"].items()})
        self.network = [(int(r), {g: (int(c), int(n)) for g, (c, n) in t.items()})
                        for r, t in data.get("network", []) if keep(int(r))]

    def to_json(self) -> dict[str, Any]:
        """What :func:`convergence_summary` needs (a worker publishes it; rank 0 merges)."""
        return {"source": self.source, "groups": {str(i): g for i, g in self.groups.items()},
                "curves": {str(i): [list(p) for p in c] for i, c in self.curves.items()},
                "sizes": {str(i): n for i, n in self.sizes.items()},
                "network": [[r, {g: list(v) for g, v in t.items()}] for r, t in self.network]}


def convergence_summary(parts: dict[str, Any] | Sequence[dict[str, Any]],
                        rounds: int, since: int = 0,
                        rule: StopRule | None = None) -> dict[str, Any]:
    """results.json's ``convergence`` from one or more :meth:`Validate.to_json` records:
    per-agent and per-group curves, gains and flags, judged in the run's final phase (from
    round ``since``). With a validation split and the network ``rule``: also ``network``
    (:func:`network_record`), and the run converged when it says every group's network curve
    had stalled; else when every group's mean curve plateaued by the window rule."""
    parts = [parts] if isinstance(parts, dict) else list(parts)
    curves = {int(i): [(int(r), float(a)) for r, a in c]
              for p in parts for i, c in p["curves"].items()}
    names = {int(i): g for p in parts for i, g in p["groups"].items()}
    by_group: dict[str, list[Curve]] = {}
    for i, curve in curves.items():
        by_group.setdefault(names[i], []).append(curve)
    groups = {g: _judge(_mean_curve(cs), rounds, since) for g, cs in sorted(by_group.items())}
    out = {"source": parts[0]["source"] if parts else "none", "window": WINDOW,
           "min_gain": MIN_GAIN, "rounds": rounds, "judged_from": since,
           "converged": bool(groups) and all(v["converged"] for v in groups.values()),
           "groups": groups,
           "agents": {str(i): _judge(c, rounds, since) for i, c in sorted(curves.items())}}
    sizes = {int(i): int(n) for p in parts for i, n in p.get("sizes", {}).items()}
    if rule is not None and sizes and out["source"] == "validation":
        out["network"] = network_record(pooled(curves, sizes, names), rule, rounds, since)
        out["converged"] = out["network"]["plateaued"]
    return out


def _mean_curve(curves: Sequence[Curve]) -> Curve:
    points: dict[int, list[float]] = {}
    for curve in curves:
        for r, a in curve:
            points.setdefault(r, []).append(a)
    return [(r, float(np.mean(v))) for r, v in sorted(points.items())]


def _judge(curve: Curve, rounds: int, since: int) -> dict[str, Any]:
    gain = plateau_gain(curve, rounds, since)
    return {"converged": gain is not None and gain < MIN_GAIN, "gain": gain,
            "curve": [[r, round(a, 6)] for r, a in curve]}


class PlateauStop:
    """``rounds: auto``: on evaluation rounds each local agent raises its flag when its own
    validation curve has plateaued in the current phase (judged anew each time, so that a
    stopped run's summary reads converged: the group curves are means of plateaued curves);
    the agents AND them by flooding them over the physical graph (diameter-many control
    exchanges through the transport, the same number in every process). When all are up, the
    run ends if this is the method's final phase (``strategy.phases``), else the next phase
    begins with the next round: no run stops inside a phase. Put it after :class:`Validate`.
    ``stopped`` tells whether it ended the run."""

    def __init__(self, loop: Any, validate: Validate, every: int, min_rounds: int) -> None:
        self.loop, self.validate, self.every, self.min_rounds = loop, validate, every, min_rounds
        self.stopped = False

    def __call__(self, end: RoundEnd) -> None:
        phases = self.loop.strategy.phases
        k = phases.index(end.round)
        since = phases.starts[k]
        if not scheduled(end, self.every) or end.done - since < self.min_rounds:
            return
        curves = self.validate.curves
        flags = {a.id: plateaued(curves.get(a.id, []), end.done, since)
                 for a in self.validate.agents}
        if agree(flags, self.loop.topology.at(end.round), self.loop.transport):
            self.stopped = conclude(phases, k, end) or self.stopped


def agree(flags: Mapping[int, bool], graph: nx.Graph, transport: Any) -> bool:
    """The AND of every agent's flag, as each local agent learns it by flooding over
    ``graph`` (agents not in ``flags`` live in other processes, which run the same rounds).
    True when every local agent learned True (they learn the same on a connected graph)."""
    rounds = nx.diameter(graph) if nx.is_connected(graph) else graph.number_of_nodes() - 1
    state = dict(flags)
    for _ in range(rounds):
        msgs = [Message(i, j, FLAG, {"plateau": int(v)}, (i, j))
                for i, v in state.items() for j in graph.neighbors(i)]
        inbox = transport.exchange(msgs)
        state = {i: v and all(m.body["plateau"] for m in inbox.get(i, []) if m.kind == FLAG)
                 for i, v in state.items()}
    return all(state.values())


def unconverged(results: Mapping[Any, Mapping[str, Any]]) -> list[str]:
    """The names (``run_id`` of each key, else its str) of runs whose curves had not
    plateaued (``convergence.converged`` false; runs without the record are skipped)."""
    return [str(getattr(spec, "run_id", spec)) for spec, res in results.items()
            if not res.get("convergence", {}).get("converged", True)]


def warn_unconverged(results: Mapping[Any, Mapping[str, Any]]) -> str | None:
    """One warning line naming the runs that had not plateaued (None when all had)."""
    names = unconverged(results)
    if not names:
        return None
    return (f"warning: {len(names)} of {len(results)} runs had not plateaued (results.json "
            "convergence: with a validation split, by train.stop_rule's measure; without, "
            f"the test curve gained >= {100 * MIN_GAIN:g} points over the last {WINDOW:.0%} "
            "of rounds), so their numbers measure speed, not what the method reaches: "
            f"{', '.join(names)} (raise rounds, or use rounds: auto with train.val_fraction)")


def stop_record(phases: Phases, rounds: int, plateau: bool) -> dict[str, Any]:
    """results.json's ``stopped_by`` (``plateau``: ``rounds: auto`` ended the run in its final
    phase; ``max_rounds``: the configured rounds ran out) and the ``phases`` that ran."""
    return {"stopped_by": "plateau" if plateau else "max_rounds",
            "phases": phases.spans(rounds)}


def final_phase_start(phases: Phases, rounds: int) -> int:
    """The first round of the phase the run ended in (what convergence is judged on)."""
    return phases.starts[phases.index(rounds - 1)] if rounds else 0
