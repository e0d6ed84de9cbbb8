"""Half-precision casts: every value travels as a 16-bit float (2 bytes per element)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch

from parsefl.compressors.base import Compressor, Shape, Spec
from parsefl.registry import COMPRESSORS


class _Cast(Compressor):
    half: ClassVar[torch.dtype]

    def parts(self, shape: Shape, dtype: torch.dtype) -> dict[str, Spec]:
        return {"v": (self.half, tuple(shape))}

    def encode_rows(self, x: torch.Tensor, keys: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"v": x.to(self.half)}  # round to nearest even (deterministic)

    def decode_rows(self, parts: Mapping[str, torch.Tensor], shape: Shape,
                    dtype: torch.dtype) -> torch.Tensor:
        return parts["v"].to(dtype)


@COMPRESSORS.register("fp16")
class Float16(_Cast):
    """IEEE half precision (2 bytes per element; values beyond 65504 become inf: rejected)."""

    name = "fp16"
    half = torch.float16


@COMPRESSORS.register("bf16")
class BFloat16(_Cast):
    """bfloat16 (2 bytes per element, float32's range, 8 bits of mantissa)."""

    name = "bf16"
    half = torch.bfloat16
