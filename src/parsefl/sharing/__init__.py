"""Sharing strategies (one file each) and their registry."""

from parsefl.sharing import (  # noqa: F401  (fill the registry)
    centralized,
    dsgd_full,
    dsgd_hybrid,
    dsgd_modality,
    dsgd_task,
    harmony,
    local,
    parse,
    parse_distill,
    parse_proto,
    sliced_hybrid,
)
from parsefl.sharing.base import Capability, SharingStrategy

__all__ = ["Capability", "SharingStrategy"]
