"""Compression operators: what a component's tensors become on the wire, and back.

A compressor works on rows: ``encode_rows(x, keys)`` takes a ``(B, *shape)`` block (B copies
of one parameter tensor: one row in the reference runtime, every holder of a component in the
vectorized backend) and returns its *parts* (a dict of tensors, e.g. values, indices, scale),
each with the row axis first; ``decode_rows(parts, shape, dtype)`` gives the block back. Both
backends call the same two functions, so they see the same numbers; a message carries one
row's parts, named ``<param>#<part>`` (:func:`encode_tensors`), and the meter bills exactly
those tensors' bytes: what is encoded is what is counted.

``keys`` are 32-bit integers, one per row (seed, round, sender, component, tensor): a
stochastic operator draws its noise from them by a counter-based hash, so that the noise is
the same in every process and backend without any shared generator state.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from typing import ClassVar

import torch

from parsefl.registry import COMPRESSORS

SEP = "#"  # encoded tensor names: "<param>#<part>" (parameter names contain dots)
MASK = 0xFFFFFFFF
Spec = tuple[torch.dtype, tuple[int, ...]]  # dtype, shape
Shape = tuple[int, ...]


class CodecError(ValueError):
    """A received encoded copy that does not decode to the receiver's component."""


class Compressor:
    """One operator. Subclasses give ``parts``, ``encode_rows`` and ``decode_rows``."""

    name: ClassVar[str] = "base"
    identity: ClassVar[bool] = False  # True: the copy travels as is (no encoding at all)
    # CHOCO's consensus step size when the config sets none: 1 for operators close to the
    # identity (with the identity, CHOCO with gamma = 1 is plain gossip).
    gamma: ClassVar[float] = 1.0

    def parts(self, shape: Shape, dtype: torch.dtype) -> dict[str, Spec]:
        """The encoded parts of one tensor of ``shape``: part -> (dtype, shape of one row)."""
        raise NotImplementedError

    def encode_rows(self, x: torch.Tensor, keys: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def decode_rows(self, parts: Mapping[str, torch.Tensor], shape: Shape,
                    dtype: torch.dtype) -> torch.Tensor:
        raise NotImplementedError

    def check_parts(self, parts: Mapping[str, torch.Tensor], shape: Shape) -> None:
        """Raise :class:`CodecError` when received parts cannot be decoded safely (beyond
        names, dtypes and shapes, which :func:`decode_tensors` checks)."""

    def bytes(self, shape: Shape, dtype: torch.dtype) -> int:
        """Encoded bytes of one tensor of ``shape`` (values + indices + scales)."""
        return sum(math.prod(s) * dt.itemsize for dt, s in self.parts(shape, dtype).values())

    def roundtrip(self, x: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """What the receivers of rows ``x`` (``(B, *shape)``) decode."""
        if self.identity:
            return x
        return self.decode_rows(self.encode_rows(x, keys), tuple(x.shape[1:]), x.dtype)


@COMPRESSORS.register("none")
class NoCompression(Compressor):
    """No compression: the copy travels as is (4 bytes per float32 element)."""

    name = "none"
    identity = True

    def parts(self, shape: Shape, dtype: torch.dtype) -> dict[str, Spec]:
        return {"v": (dtype, tuple(shape))}

    def encode_rows(self, x: torch.Tensor, keys: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"v": x}

    def decode_rows(self, parts: Mapping[str, torch.Tensor], shape: Shape,
                    dtype: torch.dtype) -> torch.Tensor:
        return parts["v"].to(dtype)


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (lowbias32-style; every product stays below 2**63, so int64
    arithmetic is exact)."""
    for mult in (0x7FEB352D, 0x4C8E9CF5):
        x = ((x ^ (x >> 16)) * mult) & MASK
    return x ^ (x >> 16)


_TABLES: dict[tuple[int, str], torch.Tensor] = {}


def uniform(keys: torch.Tensor, n: int) -> torch.Tensor:
    """``(B, n)`` float32 uniforms in [0, 1) from row keys ``(B,)``: a fixed table of hashed
    positions rotated by each row's hashed key, ``u = (t[pos] + k[row]) mod 1``. For any one
    element, ``u`` is uniform, independent across rows (keys) and rounds; the table is hashed
    once per size, so a round costs two float passes instead of a hash of every element.
    Values are multiples of 2**-23, so the sum and the wrap are exact in float32: every
    backend and process gets the same bits."""
    device = keys.device
    table = _TABLES.get((n, str(device)))
    if table is None:
        pos = (torch.arange(n, dtype=torch.int64, device=device) * 0x9E3779B1) & MASK
        table = (_mix32(pos) >> 9).to(torch.float32) * 2.0 ** -23
        _TABLES[n, str(device)] = table
    offset = (_mix32(keys.to(torch.int64) & MASK) >> 9).to(torch.float32) * 2.0 ** -23
    u = table[None, :] + offset[:, None]
    return torch.where(u >= 1, u - 1, u)


def row_key(seed: int, sender: int, component: str, tensor: str) -> int:
    """The 32-bit base key of one (sender, component, tensor); :func:`round_keys` adds the
    round. ``zlib.crc32``, not ``hash``: the same in every process."""
    return zlib.crc32(f"{seed}/{sender}/{component}/{tensor}".encode())


def round_keys(base: torch.Tensor, r: int) -> torch.Tensor:
    """Row keys of round ``r`` from base keys (int64 tensor)."""
    return (base + (r + 1) * 0x2545F491) & MASK


def encode_tensors(comp: Compressor, tensors: Mapping[str, torch.Tensor],
                   keys: Mapping[str, int]) -> dict[str, torch.Tensor]:
    """One copy of a component as an encoded body: ``<param>#<part>`` -> tensor (the parts of
    one row, without the row axis); ``keys``: each tensor's row key for this round."""
    body = {}
    for name, t in tensors.items():
        key = torch.tensor([keys[name]], dtype=torch.int64, device=t.device)
        for part, value in comp.encode_rows(t.detach()[None], key).items():
            body[f"{name}{SEP}{part}"] = value[0]
    return body


def decode_tensors(comp: Compressor, body: Mapping[str, torch.Tensor],
                   like: Mapping[str, Spec]) -> dict[str, torch.Tensor]:
    """An encoded body back as the receiver's tensors (``like``: name -> (dtype, shape)).
    A body that already has the component's own names is a plain copy (a warm start, or a
    copy decoded by the transport) and is returned as is; anything else must be exactly the
    parts this compressor produces for these tensors, or :class:`CodecError` is raised."""
    if set(body) == set(like):
        return dict(body)
    out = {}
    expected = encoded_spec(comp, like)
    if set(body) != set(expected):
        raise CodecError(f"encoded tensor names {sorted(body)[:6]} != expected "
                         f"{sorted(expected)[:6]}")
    for key, (dt, shape) in expected.items():
        t = body[key]
        if t.dtype != dt or tuple(t.shape) != tuple(shape):
            raise CodecError(f"{key}: dtype/shape {(t.dtype, tuple(t.shape))} != {(dt, shape)}")
    for name, (dt, shape) in like.items():
        parts = {p: body[f"{name}{SEP}{p}"][None] for p in comp.parts(shape, dt)}
        comp.check_parts(parts, shape)
        out[name] = comp.decode_rows(parts, tuple(shape), dt)[0]
    return out


def encoded_spec(comp: Compressor, like: Mapping[str, Spec]) -> dict[str, Spec]:
    """The encoded body's tensors for a component of tensors ``like``."""
    return {f"{n}{SEP}{p}": spec for n, (dt, shape) in like.items()
            for p, spec in comp.parts(tuple(shape), dt).items()}
