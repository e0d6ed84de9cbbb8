"""Datasets, train/test splits, partitions over agents and the agent modality mix.

Importing this package registers every dataset (``DATASETS``) and partition (``PARTITIONS``).
"""

from parsefl.data import mfeat, partition, synthetic  # noqa: F401  (registers components)
from parsefl.data.base import MultimodalDataset, Split, load_dataset, standardize
from parsefl.data.mfeat import fetch_mfeat
from parsefl.data.mix import group_name, parse_mix
from parsefl.data.partition import partition_indices
from parsefl.data.synthetic import synthetic_pid_labels, synthetic_pid_latents

__all__ = [
    "MultimodalDataset",
    "Split",
    "fetch_mfeat",
    "group_name",
    "load_dataset",
    "parse_mix",
    "partition_indices",
    "standardize",
    "synthetic_pid_labels",
    "synthetic_pid_latents",
]
