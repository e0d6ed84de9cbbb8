"""The extra rows of a distributed worker's stacked gossip (``runtime.distributed_vectorized``):
copies a local holder merges but that are not some local holder's stacked row.

- A remote honest sender's copy: one row per sender (it sends the same copy, or the same
  encoded copy, to every receiver), filled from the message that arrived.
- An attacker's copy while the adversary is active: one row per (attacker, receiver), since an
  attacker crafts each receiver's copy. A local attacker's are crafted by the worker, as the
  reference sender crafts them (``runtime.send_path.tamper_messages``); a remote one's arrive
  crafted.

A row's id in the mix is its sender's id, or for a per-receiver row a fraction above it
(:func:`pair_row`): the aggregators add and order copies by sender id, so the receiver sees
its copies in the same order as on the reference path.

What every row holds is what its receivers decode (the transport decodes what arrives; the
worker encodes and decodes a local crafted copy), so a compressing mix must not encode those
rows again: :class:`SplitCodec` encodes only the local holders' rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from parsefl.runtime.handshake import GossipPlan
from parsefl.runtime.stacked_codec import Block, StackedCodec
from parsefl.runtime.stacked_gossip import StackedMix

Row = int | float  # a sender's id, or a per-receiver row's id (pair_row)


def pair_row(sender: int, receiver: int, n_agents: int) -> float:
    """The id of ``sender``'s row for ``receiver`` alone: between ``sender`` and
    ``sender + 1``, so it sorts where the sender does."""
    return sender + (receiver + 1) / (2 * n_agents + 2)


class Inbox:
    """The extra rows of one component, stacked like a training group
    (``stacked_gossip.Stacked``); ``rows[k]`` is row k's id."""

    def __init__(self, like: Mapping[str, torch.Tensor], rows: list[Row]) -> None:
        self.rows = rows
        self.params = {n: t.new_zeros((len(rows), *t.shape)) for n, t in like.items()}

    def fill(self, bodies: Mapping[Row, Mapping[str, torch.Tensor]]) -> None:
        for k, row in enumerate(self.rows):
            body = bodies.get(row)
            for n, t in self.params.items():
                if body is None:
                    t[k].zero_()  # not arrived: its weight goes back to the receivers' own
                else:
                    t[k].copy_(body[n])

    def flat(self) -> Block:
        return {n: t.flatten(1) for n, t in self.params.items()}


def row_plans(plans: Mapping[int, GossipPlan], comp: str, holders: list[int],
              route: Mapping[tuple[int, int], Row]) -> dict[int, GossipPlan]:
    """The local holders' plans of ``comp`` over row ids: peer j of holder i is row
    ``route[j, i]`` (j itself unless j's copy for i has its own row)."""
    out = {}
    for i in holders:
        plan = plans[i]
        out[i] = GossipPlan({comp: {route[j, i]: p for j, p in plan.paths[comp].items()}},
                            {comp: plan.self_weight[comp]},
                            {comp: {route[j, i]: w for j, w in plan.weights[comp].items()}})
    return out


def routes(plans: Mapping[int, GossipPlan], comp: str, holders: list[int],
           per_pair: frozenset[int], n_agents: int) -> dict[tuple[int, int], Row]:
    """(sender, local holder) -> the row holding that sender's copy for that holder: the
    sender's own row, or a per-receiver row for a sender in ``per_pair`` (active attackers)."""
    out: dict[tuple[int, int], Row] = {}
    for i in holders:
        for j in plans[i].weights[comp]:
            out[j, i] = pair_row(j, i, n_agents) if j in per_pair else j
    return out


@dataclass
class SplitCodec(StackedCodec):
    """A compressing mix whose rows past the first ``local`` arrived decoded (``arrived``):
    only the local holders' rows are encoded with their keys; the others are what arrived
    (with error feedback: the decoded differences that move the receivers' public copies)."""

    local: int = 0
    arrived: Block | None = None

    def roundtrip(self, mix: StackedMix, block: Mapping[str, torch.Tensor], r: int,
                  senders: tuple[int, ...] | None = None) -> Block:
        if senders is not None or self.arrived is None:
            return super().roundtrip(mix, block, r, senders)
        mine = super().roundtrip(mix, {n: x[: self.local] for n, x in block.items()}, r,
                                 tuple(mix.order[: self.local]))
        return {n: torch.cat([mine[n], self.arrived[n].to(mine[n])]) for n in block}


def split(codec: StackedCodec | None, local: int, inbox: Inbox | None) -> StackedCodec | None:
    """``codec`` for a mix whose rows past ``local`` are ``inbox``'s (None: no codec)."""
    if codec is None or inbox is None:
        return codec
    return SplitCodec(codec.comm, codec.compressor, codec.hat, local, inbox.flat())
