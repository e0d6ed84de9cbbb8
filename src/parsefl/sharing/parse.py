"""PARSE: partial alignment of redundant, unique and synergistic components."""

from __future__ import annotations

from parsefl.registry import SHARING
from parsefl.sharing.base import SharingStrategy


@SHARING.register("parse", "PARSE: each slice's component gossiped only with its audience")
class Parse(SharingStrategy):
    """The audiences follow from the component names and signatures: ``enc.<m>`` and
    ``head_u.<m>`` are held only by holders of m, ``enc_s.<m>`` only by multimodal holders,
    ``synergy.<set>`` only by agents with that exact modality set, ``head_r`` by everyone.
    Holding it with the same signature is the whole rule."""

    name = "parse"
