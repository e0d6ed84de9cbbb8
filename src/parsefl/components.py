"""Importing this module fills every registry (one import line per component family)."""

from parsefl import data, model, sharing, topology  # noqa: F401
