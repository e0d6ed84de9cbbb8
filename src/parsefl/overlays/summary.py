"""What an overlay cost, per component: links, relayed links and the hops they add.

Read from the gossip plans (each agent's peers with the physical path to each), so it is the
overlay the run actually used, whatever its kind. A link is counted once (both ends plan it);
its bytes per round are the component's size × its path's hops × 2 (one copy each way).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from parsefl.types import OverlayLink


def plan_links(plans: Mapping[int, Any]) -> list[OverlayLink]:
    """Every planned link of the given agents' plans (``GossipPlan``s): component, ends, hops."""
    return sorted({(comp, min(i, j), max(i, j), len(path) - 1)
                   for i, plan in plans.items()
                   for comp, peers in plan.paths.items()
                   for j, path in peers.items()})


def overlay_summary(links: Iterable[OverlayLink]) -> dict[str, dict[str, int]]:
    """Per component: ``links``, ``relayed_links`` (paths of two hops or more), ``hops`` (all
    links' physical hops) and ``relay_hops`` (the hops of relayed links only)."""
    out: dict[str, dict[str, int]] = {}
    for comp, _, _, hops in sorted(set(links)):
        row = out.setdefault(comp, {"links": 0, "relayed_links": 0, "hops": 0, "relay_hops": 0})
        row["links"] += 1
        row["hops"] += hops
        if hops > 1:
            row["relayed_links"] += 1
            row["relay_hops"] += hops
    return out


def overlay_line(summary: Mapping[str, Mapping[str, int]]) -> str:
    """One line for the terminal: the relayed links and hops per component that needed any."""
    relayed = {c: s for c, s in summary.items() if s["relayed_links"]}
    if not relayed:
        return "overlay: direct links only (no relayed paths)"
    parts = [f"{c} {s['relayed_links']} ({s['relay_hops']} hops)"
             for c, s in sorted(relayed.items())]
    return "overlay relayed links (hops): " + ", ".join(parts)
