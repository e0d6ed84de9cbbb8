"""Partial information decomposition (PID) of two modalities' information about a label.

``pid_discrete`` gives the exact BROJA PID of discrete samples; ``pid`` (and ``slice_pid``
for learned slices) first clusters continuous features with k-means; ``pid_split`` turns a
PID into r:u:s slice weights; ``dataset_pid`` is the ``parsefl pid`` command's computation.

Redundancy estimators live in ``PID_ESTIMATORS`` (``broja``, ``broja_dit``, ``mmi``); a new
one is one decorated function ``fn(p, seed) -> R`` (see ``parsefl.pid.estimators``).
"""

from parsefl.pid import estimators  # noqa: F401  (registers broja, broja_dit, mmi)
from parsefl.pid.cli_support import dataset_pid
from parsefl.pid.discretize import SparseJointWarning, discretize
from parsefl.pid.estimate import pid, pid_discrete, pid_from_joint, slice_pid
from parsefl.pid.guided import pid_split
from parsefl.pid.registry import PID_ESTIMATORS
from parsefl.pid.result import PID

__all__ = [
    "PID",
    "PID_ESTIMATORS",
    "SparseJointWarning",
    "dataset_pid",
    "discretize",
    "pid",
    "pid_discrete",
    "pid_from_joint",
    "pid_split",
    "slice_pid",
]
