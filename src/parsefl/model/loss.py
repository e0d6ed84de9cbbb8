"""The training loss of a sliced agent (DESIGN.md §2). Every term has a weight; weight 0 turns
it off (and skips its computation)."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from parsefl.model.weights import LossWeights

if TYPE_CHECKING:
    from parsefl.model.output import Output


def sliced_loss(
    out: Output, y: torch.Tensor, w: LossWeights
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total loss and a dict of its (detached, tensor) terms."""
    terms: dict[str, torch.Tensor] = {"main": F.cross_entropy(out.logits, y)}
    if w.aux:
        heads = [*out.r_logits.values(), *out.u_logits.values()]
        if out.s_logits is not None:
            heads.append(out.s_logits)
        terms["aux"] = w.aux * torch.stack([F.cross_entropy(h, y) for h in heads]).mean()
    multimodal = len(out.r) > 1 or len(out.u) > 1
    if multimodal and w.unimodal_path:
        paths = [
            out.r_logits.get(m, 0) + out.u_logits.get(m, 0)
            for m in sorted(set(out.r_logits) | set(out.u_logits))
        ]
        terms["unimodal_path"] = w.unimodal_path * torch.stack(
            [F.cross_entropy(p, y) for p in paths]
        ).mean()
    if len(out.r) > 1 and w.align:
        terms["align"] = w.align * _alignment(list(out.r.values()), w)
    if w.decorrelation and y.shape[0] > 1:
        pairs = [(out.r[m], other[m]) for m in out.r for other in (out.u, out.s) if m in other]
        if pairs:
            terms["decorrelation"] = w.decorrelation * torch.stack(
                [cross_correlation(a, b) for a, b in pairs]
            ).mean()
    total = sum(terms.values())
    # Terms stay tensors (detached): no host sync here, and the loss can run under vmap.
    return total, {k: v.detach() for k, v in terms.items()}


def _alignment(rs: list[torch.Tensor], w: LossWeights) -> torch.Tensor:
    """Pull r_a and r_b of the same sample together (InfoNCE: and apart from other samples)."""
    losses = []
    for a, b in itertools.combinations(rs, 2):
        if w.align_kind == "cosine":
            losses.append(1 - F.cosine_similarity(a, b, dim=-1).mean())
            continue
        logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / w.temperature
        target = torch.arange(a.shape[0], device=a.device)
        losses.append((F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2)
    return torch.stack(losses).mean()


def cross_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared entry of the batch cross-correlation matrix of two slices (0 when the
    slices are linearly uncorrelated, 1 when each column of one copies a column of the other)."""
    a = (a - a.mean(0)) / (a.std(0, unbiased=False) + 1e-5)
    b = (b - b.mean(0)) / (b.std(0, unbiased=False) + 1e-5)
    return ((a.T @ b) / a.shape[0]).pow(2).mean()


def prototype_alignment(
    r: dict[str, torch.Tensor], protos: torch.Tensor, y: torch.Tensor, multimodal: bool
) -> torch.Tensor:
    """The ``parse_proto`` term (cosine, so the scale of r does not matter).

    A multimodal agent fits the class prototypes ``protos`` (classes x d_r) to its mean r
    slice over its modalities, held fixed: mean_i 1 - cos(P[y_i], mean_m r_m,i). A unimodal
    agent pulls each r slice toward the (gossiped, held fixed) prototype of its label:
    mean_m mean_i 1 - cos(r_m,i, P[y_i]). Gradients reach the prototypes only from
    multimodal agents, so gossip spreads their class geometry of the r space to everyone."""
    target = protos[y]
    if multimodal:
        mean_r = torch.stack(list(r.values())).mean(0).detach()
        return (1 - F.cosine_similarity(target, mean_r, dim=-1)).mean()
    fixed = target.detach()
    return torch.stack([(1 - F.cosine_similarity(v, fixed, dim=-1)).mean()
                        for v in r.values()]).mean()


def class_distillation(
    logits: torch.Tensor, r_logits: dict[str, torch.Tensor], teacher: torch.Tensor,
    y: torch.Tensor, multimodal: bool,
) -> torch.Tensor:
    """The ``parse_distill`` term: cross-modal distillation through the redundant head.

    ``teacher`` (classes x classes) holds, per class, the logits of the multimodal agents'
    mean prediction. A multimodal agent fits it to its own full prediction, held fixed:
    mean_i CE(softmax(logits_i), softmax(T[y_i])). A unimodal agent distils it, held fixed,
    into each redundant-head path: mean_m mean_i KL(softmax(T[y_i]) || softmax(H_r(r_m,i)))."""
    target = teacher[y]
    if multimodal:
        soft = F.softmax(logits.detach(), dim=-1)
        return -(soft * F.log_softmax(target, dim=-1)).sum(-1).mean()
    log_q = F.log_softmax(target.detach(), dim=-1)  # written out: vmap has no kl_div rule
    return torch.stack([(log_q.exp() * (log_q - F.log_softmax(v, dim=-1))).sum(-1).mean()
                        for v in r_logits.values()]).mean()
