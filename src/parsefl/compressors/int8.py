"""Stochastic int8 quantization with a float32 scale per tensor (n + 4 bytes) or, with
``per_row: true``, per row of a matrix (n + 4 * rows bytes; vectors keep one scale).

``scale = max|x| / 127`` (over the tensor or the row); each element becomes
``floor(x / scale + u)`` with ``u`` uniform in [0, 1) (stochastic rounding: unbiased,
``E[decoded] = x``), clamped to [-127, 127]. The uniforms come from the row keys
(``compressors.base.uniform``): the same in every process and backend.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from parsefl.compressors.base import CodecError, Compressor, Shape, Spec, uniform
from parsefl.errors import ConfigError
from parsefl.registry import COMPRESSORS


@COMPRESSORS.register("int8")
class Int8(Compressor):
    """Stochastic int8 rounding, a float32 scale per tensor (or per_row) (n + 4 bytes)."""

    name = "int8"

    def __init__(self, per_row: bool = False) -> None:
        if not isinstance(per_row, bool):
            raise ConfigError("per_row", f"expected true or false, got {per_row!r}")
        self.per_row = per_row

    def _rows(self, shape: Shape) -> int | None:
        """Scales per tensor: the rows of a matrix with ``per_row`` (None: one, a scalar)."""
        return shape[0] if self.per_row and len(shape) >= 2 else None

    def parts(self, shape: Shape, dtype: torch.dtype) -> dict[str, Spec]:
        rows = self._rows(shape)
        return {"q": (torch.int8, tuple(shape)), "s": (torch.float32, () if rows is None
                                                       else (rows,))}

    def _quantize(self, x: torch.Tensor, keys: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor, int | None]:
        """``(q as float32 (B, rows or 1, m), scale (B, rows or 1), rows)``."""
        shape, b = tuple(x.shape[1:]), x.shape[0]
        rows = self._rows(shape)
        flat = x.to(torch.float32).reshape(b, rows or 1, -1)
        scale = flat.abs().amax(dim=2) / 127.0
        safe = torch.where(scale > 0, scale, torch.ones_like(scale))
        u = uniform(keys, math.prod(shape)).to(x.device).reshape(flat.shape)
        return torch.floor(flat / safe[..., None] + u).clamp_(-127, 127), scale, rows

    def encode_rows(self, x: torch.Tensor, keys: torch.Tensor) -> dict[str, torch.Tensor]:
        q, scale, rows = self._quantize(x, keys)
        return {"q": q.to(torch.int8).reshape(x.shape),
                "s": scale[:, 0] if rows is None else scale}

    def roundtrip(self, x: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """``decode_rows(encode_rows(x))`` without the int8 casts (the same values: every q
        is an integer in [-127, 127], exact in float32)."""
        q, scale, _ = self._quantize(x, keys)
        return (q * scale[..., None]).reshape(x.shape).to(x.dtype)

    def decode_rows(self, parts: Mapping[str, torch.Tensor], shape: Shape,
                    dtype: torch.dtype) -> torch.Tensor:
        q, s = parts["q"], parts["s"]
        b = q.shape[0]
        scale = s.reshape(b, -1, 1)  # (B, rows or 1, 1)
        return (q.to(torch.float32).reshape(b, scale.shape[1], -1) * scale) \
            .reshape(q.shape).to(dtype)

    def check_parts(self, parts: Mapping[str, torch.Tensor], shape: Shape) -> None:
        if bool((parts["q"] == -128).any()):
            raise CodecError("int8 value -128 is never sent (the range is [-127, 127])")
