"""Sharing strategies (one file each) and their registry."""

from parsefl.sharing import local, parse  # noqa: F401  (fill the registry)
from parsefl.sharing.base import Capability, SharingStrategy

__all__ = ["Capability", "SharingStrategy"]
