"""Stochastic int8 quantization with one float32 scale per tensor (n + 4 bytes).

``scale = max|x| / 127``; each element becomes ``floor(x / scale + u)`` with ``u`` uniform in
[0, 1) (stochastic rounding: unbiased, ``E[decoded] = x``), clamped to [-127, 127]. The
uniforms come from the row keys (``compressors.base.uniform``): the same in every process.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from parsefl.compressors.base import CodecError, Compressor, Spec, uniform
from parsefl.registry import COMPRESSORS


@COMPRESSORS.register("int8")
class Int8(Compressor):
    """Stochastic int8 rounding, one float32 scale per tensor (n + 4 bytes)."""

    name = "int8"

    def parts(self, n: int, dtype: torch.dtype) -> dict[str, Spec]:
        return {"q": (torch.int8, (n,)), "s": (torch.float32, ())}

    def encode_rows(self, x: torch.Tensor, keys: torch.Tensor) -> dict[str, torch.Tensor]:
        x = x.to(torch.float32)
        scale = x.abs().amax(dim=1) / 127.0  # (B,)
        safe = torch.where(scale > 0, scale, torch.ones_like(scale))
        v = x / safe[:, None]
        q = torch.floor(v + uniform(keys, x.shape[1]).to(x.device)).clamp_(-127, 127)
        return {"q": q.to(torch.int8), "s": scale}

    def decode_rows(self, parts: Mapping[str, torch.Tensor], n: int,
                    dtype: torch.dtype) -> torch.Tensor:
        return (parts["q"].to(torch.float32) * parts["s"][:, None]).to(dtype)

    def check_parts(self, parts: Mapping[str, torch.Tensor], n: int) -> None:
        if bool((parts["q"] == -128).any()):
            raise CodecError("int8 value -128 is never sent (the range is [-127, 127])")
