"""Datasets, train/test splits, partitions over agents and the agent modality mix.

Importing this package registers every dataset (``DATASETS``), the ``npz:PATH`` dataset
scheme and every partition (``PARTITIONS``).
"""

from parsefl.data import (  # noqa: F401  (registers components)
    basic_motions,
    eog,
    hapt,
    mfeat,
    npz,
    partition,
    synthetic,
)
from parsefl.data.base import (
    MultimodalDataset,
    Split,
    dataset_slug,
    load_dataset,
    resolve_dataset,
    standardize,
)
from parsefl.data.basic_motions import fetch_basic_motions
from parsefl.data.describe import (
    describe_partition,
    plot_partition,
    render_table,
    split_over_agents,
)
from parsefl.data.eog import fetch_eog
from parsefl.data.imperfect import missing_labels, missing_modality_mask, noisy_labels
from parsefl.data.mfeat import fetch_mfeat
from parsefl.data.mix import group_name, parse_mix, ratio_mix
from parsefl.data.npz import load_npz
from parsefl.data.partition import partition_indices
from parsefl.data.synthetic import synthetic_pid_labels, synthetic_pid_latents

__all__ = [
    "MultimodalDataset",
    "Split",
    "dataset_slug",
    "describe_partition",
    "fetch_basic_motions",
    "fetch_eog",
    "fetch_mfeat",
    "group_name",
    "load_dataset",
    "load_npz",
    "missing_labels",
    "missing_modality_mask",
    "noisy_labels",
    "parse_mix",
    "partition_indices",
    "plot_partition",
    "ratio_mix",
    "render_table",
    "resolve_dataset",
    "split_over_agents",
    "standardize",
    "synthetic_pid_labels",
    "synthetic_pid_latents",
]
