"""The capability handshake: how an agent learns, from messages alone, which neighbours (within
the overlay's radius) hold which components, and the Metropolis–Hastings weights to use.

Phase 1 (discovery): for ``radius`` steps (the overlay's) every agent forwards what it knows
(capabilities and the physical path to their owner) to its physical neighbours. Phase 2
(degrees): each agent picks, per component, the peers it exchanges with (the sharing strategy
says which may, the overlay which it links to, and whether links are then made symmetric),
tells each of them its overlay degree, and computes MH weights from the degrees it hears back.

Signed runs (the transport's ``seal``): a message is signed by its sender, but a relayed
capability entry describes another agent, so each entry is also signed by the agent it
describes, for the handshake's epoch (the round it runs for), and relays forward it unchanged.
A receiver uses an entry only if that signature verifies; an unsigned, altered, foreign-signed
or stale (replayed from an earlier handshake) entry is a counted rejection and is dropped.
What is authenticated is the capability (agent, modalities, component signatures, warming),
not the path: the path is whatever the relays say, and a relay can still drop an entry (it
cannot make one up or change one). Unsigned runs and the simulator send entries as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import networkx as nx

from parsefl.overlays import make_overlay
from parsefl.overlays.base import Overlay
from parsefl.runtime.transport import SEAL, Message, Transport
from parsefl.sharing.base import Capability, SharingStrategy
from parsefl.topology import mh_weights_local

Known = dict[int, tuple[Capability, tuple[int, ...]]]  # peer -> (capability, path peer..me)


@dataclass
class GossipPlan:
    """One agent's exchange plan for one round, per component."""

    paths: dict[str, dict[int, tuple[int, ...]]] = field(default_factory=dict)  # me ... peer
    self_weight: dict[str, float] = field(default_factory=dict)
    weights: dict[str, dict[int, float]] = field(default_factory=dict)


def cap_to_json(cap: Capability) -> dict:
    out = {"agent": cap.agent, "modalities": list(cap.modalities),
           "signatures": dict(cap.signatures)}
    if cap.warming:
        out["warming"] = list(cap.warming)
    return out


def cap_from_json(data: Mapping) -> Capability:
    warming = data.get("warming", [])
    return Capability(int(data["agent"]), tuple(data["modalities"]), dict(data["signatures"]),
                      tuple(str(c) for c in warming) if isinstance(warming, list) else ())


def overlay_radius(kind: str, hops: int) -> int:
    """How far capabilities travel for the registered overlay ``kind`` (its ``radius``)."""
    return make_overlay(kind, hops).radius


def discover(
    caps: Mapping[int, Capability], graph: nx.Graph, transport: Transport, radius: int,
    epoch: int = 0,
) -> dict[int, Known]:
    """Phase 1 for the local agents ``caps``: what each knows after ``radius`` forwarding steps.
    ``epoch``: the round this handshake runs for, which a signed entry is bound to (the same
    in every process: the engine re-runs the handshake in lockstep)."""
    seal = transport.seal
    # agent -> (entry as forwarded, capability, path peer..me); a signed entry is forwarded
    # with its owner's signature, so it is kept as it arrived (normalised)
    tables: dict[int, dict[int, tuple[dict, Capability, tuple[int, ...]]]] = {
        i: {i: (cap_to_json(cap) if seal is None else seal.sign(cap_to_json(cap), epoch),
                cap, (i,))}
        for i, cap in caps.items()}
    for _ in range(radius):
        msgs = [
            Message(i, n, "caps", [(entry, list(p)) for entry, _, p in table.values()], (i, n))
            for i, table in tables.items()
            for n in sorted(graph.neighbors(i))
        ]
        inbox = transport.exchange(msgs)
        for i, table in tables.items():
            offers: dict[int, tuple[dict, Capability, tuple[int, ...]]] = {}
            for msg in inbox.get(i, []):
                for received, path in msg.body:
                    cap = cap_from_json(received)
                    entry = _as_forwarded(cap, received, seal is not None)
                    if seal is not None and not seal.admits(entry, epoch, f"agent {msg.src}"):
                        continue
                    candidate = (*path, i)
                    if cap.agent in table:
                        continue
                    # Deterministic choice among equally short paths: the smallest.
                    if cap.agent not in offers or candidate < offers[cap.agent][2]:
                        offers[cap.agent] = (entry, cap, candidate)
            table.update(offers)
    return {i: {j: (cap, path) for j, (_, cap, path) in table.items()}
            for i, table in tables.items()}


def _as_forwarded(cap: Capability, received: Mapping, signed: bool) -> dict:
    """A received entry as this agent uses and forwards it: the capability it reads (nothing a
    relay added beside it) and, in a signed run, the seal it came with."""
    entry = cap_to_json(cap)
    if signed:
        entry.update({k: received[k] for k in SEAL if k in received})
    return entry


def plan_gossip(
    caps: Mapping[int, Capability],
    known: Mapping[int, Known],
    strategy: SharingStrategy,
    transport: Transport,
    round: int,
    overlay: Overlay,
    graph: nx.Graph | None = None,
) -> dict[int, GossipPlan]:
    """Phase 2: choose overlay peers per component (the overlay picks among the holders the
    strategy allows; a link exchange then makes one-sided choices symmetric where the overlay
    asks for it), swap degrees, compute MH weights. ``graph``: the physical graph, for
    overlays whose choice needs it (``auto``)."""
    plans = {i: GossipPlan() for i in caps}
    for i, me in caps.items():
        for comp in sorted(strategy.offered(me, round)):
            peers = {
                j: tuple(reversed(path))
                for j, (cap, path) in known[i].items()
                if j != i and comp in cap.signatures
                and strategy.exchanges(comp, me, cap, round)
            }
            peers = overlay.select(i, peers, graph)
            if peers:
                plans[i].paths[comp] = peers
    if overlay.symmetrize:
        _symmetrize(plans, known, transport)
    msgs = []
    for i, plan in plans.items():
        degree_to: dict[int, dict[str, int]] = {}
        for comp, peers in plan.paths.items():
            for j in peers:
                degree_to.setdefault(j, {})[comp] = len(peers)
        msgs += [Message(i, j, "degree", d, _path_to(plan, j)) for j, d in degree_to.items()]
    inbox = transport.exchange(msgs)
    for i, plan in plans.items():
        heard: dict[str, dict[int, int]] = {}
        for msg in inbox.get(i, []):
            for comp, degree in msg.body.items():
                heard.setdefault(comp, {})[msg.src] = int(degree)
        for comp in list(plan.paths):
            # A planned peer whose degree never arrived has vanished mid-handshake (a lost
            # process): plan without it, from the degrees that did arrive.
            degrees = {j: d for j, d in heard.get(comp, {}).items() if j in plan.paths[comp]}
            plan.paths[comp] = {j: p for j, p in plan.paths[comp].items() if j in degrees}
            if not plan.paths[comp]:
                del plan.paths[comp]
                continue
            plan.self_weight[comp], plan.weights[comp] = mh_weights_local(len(degrees), degrees)
    return plans


def _symmetrize(plans: dict[int, GossipPlan], known: Mapping[int, Known],
                transport: Transport) -> None:
    """Tell each chosen peer it was chosen (per component); add whoever chose us."""
    msgs = []
    for i, plan in plans.items():
        chosen: dict[int, list[str]] = {}
        for comp, peers in plan.paths.items():
            for j in peers:
                chosen.setdefault(j, []).append(comp)
        msgs += [Message(i, j, "link", comps, _path_to(plan, j)) for j, comps in chosen.items()]
    inbox = transport.exchange(msgs)
    for i, plan in plans.items():
        for msg in inbox.get(i, []):
            if msg.src not in known[i]:  # a link from an agent never discovered: forged
                continue
            path = tuple(reversed(known[i][msg.src][1]))
            for comp in msg.body:
                plan.paths.setdefault(comp, {}).setdefault(msg.src, path)


def _path_to(plan: GossipPlan, peer: int) -> tuple[int, ...]:
    return next(paths[peer] for paths in plan.paths.values() if peer in paths)
