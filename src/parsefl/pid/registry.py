"""The registry of PID redundancy estimators (its own module, so that the estimators that
register into it never import the package that re-exports them)."""

from parsefl.registry import Registry

PID_ESTIMATORS: Registry = Registry("pid estimator")
"""Redundancy estimators ``fn(p[x1, x2, y], seed) -> R in bits``, by name."""
