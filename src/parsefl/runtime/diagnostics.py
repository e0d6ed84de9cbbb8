"""Training diagnostics computed from the local agents after a round of local training."""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F

from parsefl.runtime.agent import Agent
from parsefl.sharing.base import SharingStrategy


def gradient_cosine(
    agents: Iterable[Agent], strategy: SharingStrategy, round: int
) -> dict[str, float]:
    """The gradient-conflict diagnostic: for every component that unimodal and multimodal
    agents both hold (same signature) and would exchange this round, the cosine between the
    mean round gradient of the unimodal holders and that of the multimodal holders."""
    sums: dict[tuple[str, str], dict[bool, list[torch.Tensor]]] = {}
    for agent in agents:
        if not agent.grad_sum:
            continue
        cap = agent.capability()
        for comp in strategy.offered(cap, round):
            names = agent.component_params[comp]
            if any(n not in agent.grad_sum for n in names):
                continue  # not trained this round (e.g. frozen in this phase)
            vec = torch.cat([agent.grad_sum[n].flatten() for n in names])
            key = (comp, cap.signatures[comp])
            sums.setdefault(key, {True: [], False: []})[cap.multimodal].append(vec)
    out: dict[str, float] = {}
    keys = sorted(k for k, v in sums.items() if v[True] and v[False])
    for comp, sig in keys:
        uni = torch.stack(sums[comp, sig][False]).mean(0)
        multi = torch.stack(sums[comp, sig][True]).mean(0)
        name = comp if sum(k[0] == comp for k in keys) == 1 else f"{comp}@{sig[:6]}"
        out[name] = float(F.cosine_similarity(uni, multi, dim=0))
    return out
