"""parsefl: multimodal decentralized federated learning with PID-guided partial alignment.

Python API (loaded on first use, so that ``import parsefl`` stays fast)::

    import parsefl
    result = parsefl.run(rounds=10, method="local")      # -> parsefl.RunResult
    table = parsefl.compare(methods="parse,local", seeds="0,1", rounds=10)  # -> CompareResult
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["CompareResult", "MethodSummary", "RunResult", "compare", "load_plugins",
           "resolve_config", "run"]
_API = {"CompareResult", "MethodSummary", "RunResult", "compare", "resolve_config", "run"}

if TYPE_CHECKING:
    from parsefl.api import (
        CompareResult,
        MethodSummary,
        RunResult,
        compare,
        resolve_config,
        run,
    )
    from parsefl.plugins import load_plugins


def __getattr__(name: str) -> Any:
    if name in _API:
        from parsefl import api

        return getattr(api, name)
    if name == "load_plugins":
        from parsefl.plugins import load_plugins

        return load_plugins
    raise AttributeError(f"module 'parsefl' has no attribute {name!r}")
