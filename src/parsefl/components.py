"""Importing this module fills every registry (one import line per component family), then
imports the installed packages' ``parsefl.plugins`` entry points (see parsefl.plugins)."""

from parsefl import data, model, sharing, topology  # noqa: F401
from parsefl.plugins import load_plugins

load_plugins()
