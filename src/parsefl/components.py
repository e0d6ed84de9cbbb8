"""Importing this module fills every registry (one import line per component family), then
imports the installed packages' ``parsefl.plugins`` entry points (see parsefl.plugins)."""

from parsefl import data, model, sharing, topology  # noqa: F401
from parsefl.pid.registry import PID_ESTIMATORS
from parsefl.plugins import load_plugins
from parsefl.registry import ALL, Registry

load_plugins()


def filled() -> dict[str, Registry]:
    """Every kind ``parsefl list`` shows, by name, each registry filled (importing this module
    filled them, with torch); :mod:`parsefl.registry_index` has the built-in names without."""
    return {**ALL, "pid": PID_ESTIMATORS}


def builtin_names() -> dict[str, dict[str, str]]:
    """kind -> name -> description of every component parsefl itself defines (a plugin's
    are left out), from the filled registries: what :mod:`parsefl.registry_index` must hold."""
    return {kind: {name: text for name, text in registry.describe().items()
                   if getattr(registry.get(name), "__module__", "").startswith("parsefl.")}
            for kind, registry in filled().items()}
