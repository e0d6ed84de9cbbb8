"""The send path of every per-message sender (the reference executor, and the stacked
distributed worker for what crosses processes): an adversary's messages of one round replaced
by what its agents send, one recipient at a time (through the same :meth:`Adversary.tamper` the
vectorized backend calls on all recipients at once); then every copy encoded by the run's
communication policy as it travels, and decoded (before the receive checks) as it arrives.

The attack math stays in ``parsefl.attacks`` and the codecs in ``parsefl.compressors``; this
module only applies them to messages, so neither package imports the runtime.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING

import torch

from parsefl.aggregation.base import flatten, fold_missing, unflatten
from parsefl.compressors.base import CodecError
from parsefl.compressors.communication import like_of
from parsefl.runtime.transport import Message

if TYPE_CHECKING:
    from parsefl.attacks.base import Adversary
    from parsefl.compressors.choco import Choco
    from parsefl.compressors.communication import Communication
    from parsefl.runtime.checks import ReceiveChecks

Own = Mapping[tuple[int, str], Mapping[str, torch.Tensor]]


def tamper_messages(adversary: Adversary, msgs: Sequence[Message], own: Own, plans: Mapping,
                    r: int) -> list[Message]:
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


def encode_messages(comm: Communication, choco: Choco | None, msgs: Sequence[Message],
                    own: Own, r: int, plan_key: Hashable) -> list[Message]:
    """Each copy as it travels: encoded once per (sender, component); with error feedback
    (``choco``), the compressed difference to the sender's public copy. A copy an adversary
    replaced is encoded on its own (it does not move the public copy). The public copies
    restart whenever the engine's ``plan_key`` changes."""
    if choco is not None:
        choco.start(plan_key)
    sent = {key: choco.send(key[0], key[1], x, r) if choco is not None
            else comm.encode(key[1], key[0], r, x) for key, x in own.items()}
    out = []
    for m in msgs:
        if m.body is own[m.src, m.component]:
            body = sent[m.src, m.component]
        elif choco is not None:
            body = choco.encode(m.src, m.component, m.body, r)
        else:
            body = comm.encode(m.component, m.src, r, m.body)
        out.append(dataclasses.replace(m, body=body))
    return out


def decode_message(comm: Communication, msg: Message, own: Own,
                   checks: ReceiveChecks) -> dict[str, torch.Tensor] | None:
    """An arrived copy as the receiver's tensors (None: not for a component it holds, or it
    does not decode, which is counted as a rejection for its names)."""
    mine = own.get((msg.dst, msg.component))  # type: ignore[arg-type]
    if mine is None:
        return None
    try:
        return comm.decode(msg.component, msg.body, like_of(mine))  # type: ignore[arg-type]
    except CodecError as err:
        checks.reject("names", f"{msg.component} {msg.src}->{msg.dst} ({err})")
        return None
