"""Top-k sparsification: the ``fraction`` of each tensor's elements largest in magnitude
travel as (value, int32 index) pairs, the rest decode as 0 (8 bytes per kept element).
Meant with ``error_feedback: true`` (CHOCO-SGD): without it, the dropped entries of a copy are
simply zeros in the receivers' averages."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from parsefl.compressors.base import CodecError, Compressor, Shape, Spec
from parsefl.errors import ConfigError
from parsefl.registry import COMPRESSORS


@COMPRESSORS.register("topk")
class TopK(Compressor):
    """Top-k by magnitude, k = ceil(fraction * n) per tensor (values + int32 indices)."""

    name = "topk"
    # On the quickstart (60 rounds, fraction 0.1) gamma = 1 reached 0.566 overall accuracy,
    # 0.7 reached 0.885 (plain gossip: 0.907): docs/communication.md.
    gamma = 0.7

    def __init__(self, fraction: float = 0.1) -> None:
        if isinstance(fraction, bool) or not isinstance(fraction, int | float) \
                or not 0 < fraction <= 1:
            raise ConfigError("fraction",
                              f"expected a number in (0, 1], got {fraction!r}")
        self.fraction = float(fraction)

    def k(self, n: int) -> int:
        return min(n, max(1, math.ceil(self.fraction * n)))

    def parts(self, shape: Shape, dtype: torch.dtype) -> dict[str, Spec]:
        k = self.k(math.prod(shape))
        return {"v": (dtype, (k,)), "i": (torch.int32, (k,))}

    def encode_rows(self, x: torch.Tensor, keys: torch.Tensor) -> dict[str, torch.Tensor]:
        flat = x.reshape(x.shape[0], -1)
        idx = torch.topk(flat.abs(), self.k(flat.shape[1]), dim=1, sorted=False).indices
        idx = idx.sort(dim=1).values  # canonical order on the wire
        return {"v": flat.gather(1, idx), "i": idx.to(torch.int32)}

    def roundtrip(self, x: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """Decode(encode(x)) without the wire's canonical index order (values are the same)."""
        flat = x.reshape(x.shape[0], -1)
        idx = torch.topk(flat.abs(), self.k(flat.shape[1]), dim=1, sorted=False).indices
        return torch.zeros_like(flat).scatter_(1, idx, flat.gather(1, idx)).reshape(x.shape)

    def decode_rows(self, parts: Mapping[str, torch.Tensor], shape: Shape,
                    dtype: torch.dtype) -> torch.Tensor:
        values = parts["v"].to(dtype)
        out = torch.zeros(values.shape[0], math.prod(shape), dtype=dtype, device=values.device)
        out.scatter_(1, parts["i"].to(torch.int64), values)
        return out.reshape(values.shape[0], *shape)

    def check_parts(self, parts: Mapping[str, torch.Tensor], shape: Shape) -> None:
        n = math.prod(shape)
        idx = parts["i"]
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n):
            raise CodecError(f"top-k index outside [0, {n})")
