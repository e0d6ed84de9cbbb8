"""Physical graphs, per-component overlays and Metropolis–Hastings mixing weights.

Importing this package registers every topology (``TOPOLOGIES``); the overlay kinds
(``OVERLAYS``) live in ``parsefl.overlays``, which the registry loads on first use.
"""

from parsefl.topology import dynamic, edgelist, generators  # noqa: F401  (registers them)
from parsefl.topology.graphs import GraphSchedule, StaticGraph, TimeVaryingGraph, build_topology
from parsefl.topology.mixing import mh_weights_local, mixing_matrix
from parsefl.topology.overlays import k_hop_paths

__all__ = [
    "GraphSchedule",
    "StaticGraph",
    "TimeVaryingGraph",
    "build_topology",
    "k_hop_paths",
    "mh_weights_local",
    "mixing_matrix",
]
