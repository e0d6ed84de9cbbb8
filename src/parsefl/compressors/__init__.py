"""Compression operators (one file each) and their registry ``COMPRESSORS``
(``communication.compressor``), the run's communication policy (compressor and period per
component kind) and CHOCO-SGD error feedback. See docs/communication.md."""

from parsefl.compressors import cast, int8, topk  # noqa: F401  (fill the registry)
from parsefl.compressors.base import (
    CodecError,
    Compressor,
    NoCompression,
    decode_tensors,
    encode_tensors,
    encoded_spec,
    uniform,
)
from parsefl.compressors.choco import Choco
from parsefl.compressors.communication import KINDS, Communication, Rule, kind_of, like_of

__all__ = [
    "KINDS", "Choco", "CodecError", "Communication", "Compressor", "NoCompression", "Rule",
    "decode_tensors", "encode_tensors", "encoded_spec", "kind_of", "like_of", "uniform",
]
