"""Per-component overlay kinds (one file each), registered in ``OVERLAYS`` (``overlay.name``).

The registry imports this package on first use (``registry.OVERLAYS``), so the kinds are known
wherever overlays are read.
"""

from parsefl.overlays import auto, induced, relay, rewire  # noqa: F401  (fill the registry)
from parsefl.overlays.base import Overlay
from parsefl.overlays.factory import build_overlay, make_overlay

__all__ = ["Overlay", "build_overlay", "make_overlay"]
