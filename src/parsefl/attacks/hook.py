"""The send-path hook of the reference executor and of the stacked distributed worker: the
attackers' messages of one round replaced by what they send, one recipient at a time, through
the same :meth:`Adversary.tamper` the vectorized backend calls on all recipients at once."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import torch

from parsefl.aggregation.base import flatten, fold_missing, unflatten
from parsefl.attacks.base import Adversary
from parsefl.runtime.transport import Message


def tamper_messages(adversary: Adversary, msgs: Sequence[Message],
                    own: Mapping[tuple[int, str], Mapping[str, torch.Tensor]],
                    plans: Mapping, r: int) -> list[Message]:
    """``msgs`` with every attacker's params message replaced. The recipient's view is its
    own copy (when this process hosts it; else the first attacker's copy stands in) and the
    copies sent to it from this process, sorted by sender, as the recipient aggregates them."""
    out = list(msgs)
    groups: dict[tuple[int, str], list[int]] = {}
    for k, m in enumerate(out):
        if m.kind == "params":
            groups.setdefault((m.dst, m.component), []).append(k)
    for (dst, comp), ks in groups.items():
        ks = sorted(ks, key=lambda k: out[k].src)
        if not any(out[k].src in adversary.agents for k in ks):
            continue
        first = next(out[k] for k in ks if out[k].src in adversary.agents)
        recipient = own.get((dst, comp), first.body)
        values = torch.stack([flatten(recipient)] + [flatten(out[k].body) for k in ks])[None]
        byz = torch.tensor([[False] + [out[k].src in adversary.agents for k in ks]])
        weights = _weights(plans.get(dst), comp, [out[k].src for k in ks], values.dtype)
        mask = torch.ones_like(byz)
        cols = byz[0].nonzero().flatten()
        pairs = (torch.zeros_like(cols), cols)
        ids = [(out[ks[c - 1]].src, dst) for c in cols.tolist()]
        crafted = adversary.tamper(values, mask, weights.to(values.device), byz.to(values.device),
                                   (pairs[0].to(values.device), pairs[1].to(values.device)),
                                   ids, comp, r)
        for c in cols.tolist():
            k = ks[c - 1]
            out[k] = dataclasses.replace(out[k], body=unflatten(crafted[0, c], out[k].body))
    return out


def _weights(plan, comp: str, senders: list[int], dtype: torch.dtype) -> torch.Tensor:  # noqa: ANN001
    """The recipient's MH weights over [own, senders...]; uniform when it is not local."""
    if plan is None or comp not in plan.weights:
        return torch.full((1, 1 + len(senders)), 1 / (1 + len(senders)), dtype=dtype)
    w_own, w = fold_missing(plan.self_weight[comp], plan.weights[comp], senders)
    return torch.tensor([[w_own, *(w.get(j, 0.0) for j in senders)]], dtype=dtype)
