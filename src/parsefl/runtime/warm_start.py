"""Warm start: an agent that gains a component (a modality back, or it joined the run) starts
it from its planned peers' copies, sent through the transport, rather than from scratch. The
copies pass the receive checks (``runtime.checks``) as gossiped ones do: a rejected copy is
counted and treated as one that never arrived, on every backend (the distributed transport
checks every message it delivers; the in-memory one checks nothing, so the check is here)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from parsefl.runtime.transport import Message
from parsefl.sharing.base import Capability

if TYPE_CHECKING:
    from parsefl.runtime.protocols import Engine


def warm_start(engine: Engine, caps: dict[int, Capability], known: dict | None) -> None:
    """Each agent's newly gained components (``Capability.warming``) start from its planned
    peers' copies, sent through the transport and averaged with its MH weights renormalised
    over the copies that arrived and passed the receive checks (none: it keeps its own
    copy). ``known`` is the handshake's discovery (what each agent learned of its
    neighbours' capabilities)."""
    plans, known, agents = engine.plans, known or {}, engine.agents
    wanted = [(j, i, c, path) for j, plan in plans.items() for c, peers in plan.paths.items()
              for i, path in peers.items() if c in known[j][i][0].warming]
    if wanted or any(cap.warming for cap in caps.values()):
        engine.sync()  # a stacked backend's copies are the current ones
    msgs = [Message(j, i, "params", agents[j].get_component(c), path, c)
            for j, i, c, path in wanted]
    inbox = engine.transport.exchange(msgs)
    changed = []
    for i, cap in caps.items():
        got: dict[str, dict[int, dict]] = {}
        for msg in inbox.get(i, []):
            c = msg.component
            # Against the receiver's own copy (names, shapes, dtypes, values), as a gossiped
            # copy; a copy the distributed transport rejected never gets here (counted once).
            if c in agents[i].component_params and engine.checks.check(
                    agents[i].get_component(c), msg.body, f"{c} {msg.src}->{i} (warm start)"):
                got.setdefault(c, {})[msg.src] = msg.body
        for c in cap.warming:
            w = plans[i].weights.get(c, {})
            arrived = {j: w[j] for j in sorted(got.get(c, {})) if j in w}
            total = sum(arrived.values())
            if not arrived or total <= 0:
                continue
            names = agents[i].component_params[c]
            agents[i].set_component(c, {n: sum(wj / total * got[c][j][n]
                                               for j, wj in arrived.items()) for n in names})
            changed.append(i)
    if changed:
        engine.executor.reload(sorted(set(changed)))
