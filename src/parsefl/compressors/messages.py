"""The reference runtime's send and receive hooks: copies encoded as they travel, and decoded
(before the receive checks) as they arrive."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import torch

from parsefl.compressors.base import CodecError
from parsefl.compressors.choco import Choco
from parsefl.compressors.communication import Communication, like_of

if TYPE_CHECKING:
    from parsefl.runtime.checks import ReceiveChecks
    from parsefl.runtime.transport import Message

Own = Mapping[tuple[int, str], Mapping[str, torch.Tensor]]


def encode_messages(comm: Communication, choco: Choco | None, msgs: Sequence[Message],
                    own: Own, r: int, epoch: Hashable) -> list[Message]:
    """Each copy as it travels: encoded once per (sender, component); with error feedback
    (``choco``), the compressed difference to the sender's public copy. A copy an adversary
    replaced is encoded on its own (it does not move the public copy)."""
    if choco is not None:
        choco.start(epoch)
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
        out.append(replace(m, body=body))
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
