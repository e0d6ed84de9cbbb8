"""Batch index streams. With ``train.local_steps`` every agent takes exactly ``batch_size``
indices per step from an endless stream of seeded permutations of its samples, so that agents
of unequal data size step together (and can be stacked by the vectorized backend, which draws
from the very same streams)."""

from __future__ import annotations

import torch


class BatchStream:
    """Fixed-size index batches from consecutive seeded permutations of ``range(n)``."""

    def __init__(self, n: int, generator: torch.Generator) -> None:
        self.n = n
        self.generator = generator
        self.perm = torch.empty(0, dtype=torch.long)
        self.pos = 0

    def take(self, size: int) -> torch.Tensor:
        """The next ``size`` indices (wrapping into a fresh permutation when one runs out)."""
        parts = []
        while size > 0:
            if self.pos == len(self.perm):
                self.perm = torch.randperm(self.n, generator=self.generator)
                self.pos = 0
            k = min(size, len(self.perm) - self.pos)
            parts.append(self.perm[self.pos : self.pos + k])
            self.pos += k
            size -= k
        return parts[0] if len(parts) == 1 else torch.cat(parts)
