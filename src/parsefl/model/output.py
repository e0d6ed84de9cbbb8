"""What a sliced model's forward pass returns, and its loss reads (its own module, so that the
model and its loss need not import each other)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Output:
    """Per-head logits and slices of one forward pass (absent heads are simply missing)."""

    logits: torch.Tensor
    r: dict[str, torch.Tensor]
    u: dict[str, torch.Tensor]
    s: dict[str, torch.Tensor]
    r_logits: dict[str, torch.Tensor]
    u_logits: dict[str, torch.Tensor]
    s_logits: torch.Tensor | None
