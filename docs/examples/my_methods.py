"""A parsefl plugin defined outside the package (docs/extending.md walks through it):

* ``blobs2``, a dataset: Gaussian class blobs seen through two modalities, ``left`` (weak)
  and ``right`` (strong);
* ``parse_heads``, a sharing strategy: PARSE's partial alignment for the heads only; every
  encoder stays private to its agent;
* ``lazy_mean``, an aggregator: the gossip average, but each agent keeps a fixed share
  ``keep`` of its own copy (lazy Metropolis–Hastings gossip).

Use it by name:  parsefl run --plugin docs/examples/my_methods.py -o method=parse_heads
-o data.name=blobs2 -o aggregation.name=lazy_mean -o 'aggregation.params={keep: 0.5}'
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import numpy as np

from parsefl.aggregation import LinearAggregator, fold_missing
from parsefl.data.base import MultimodalDataset, Split, standardize
from parsefl.registry import AGGREGATION, DATASETS, SHARING
from parsefl.sharing.base import Capability
from parsefl.sharing.parse import Parse


@DATASETS.register("blobs2", "Gaussian class blobs seen by a weak (left) and a strong (right) view")
def blobs2(seed: int, n_samples: int = 800, n_classes: int = 4, dim: int = 8,
           test_fraction: float = 0.25) -> MultimodalDataset:
    """``n_samples`` points of ``n_classes`` blobs; each view adds its own noise to its own
    random projection of the class centre (the left view three times noisier)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n_samples)
    centres = rng.normal(size=(n_classes, dim))
    views = {name: (centres @ rng.normal(size=(dim, dim)))[y] + rng.normal(scale=s, size=(
        n_samples, dim)) for name, s in (("left", 3.0), ("right", 1.0))}
    n_test = int(n_samples * test_fraction)
    train = Split({m: v[n_test:] for m, v in views.items()}, y[n_test:])
    test = Split({m: v[:n_test] for m, v in views.items()}, y[:n_test])
    train, test = standardize(train, test)
    return MultimodalDataset("blobs2", ("left", "right"), n_classes, train, test,
                             tuple(f"blob {c}" for c in range(n_classes)))


@SHARING.register("parse_heads", "PARSE for the heads only: encoders stay private")
class ParseHeads(Parse):
    name = "parse_heads"

    def offered(self, me: Capability, round: int) -> set[str]:
        # What an agent offers may depend on its capability and the phase, nothing else.
        return {c for c in me.signatures if c.startswith("head")}


@AGGREGATION.register("lazy_mean", "gossip average that keeps a fixed share of the own copy")
class LazyMean(LinearAggregator):
    """``keep * own + (1 - keep) * (MH average)``: slower mixing, steadier copies. Linear, so
    the vectorized backend turns these weights into its mixing matrix; nothing else to write."""

    name = "lazy_mean"

    def __init__(self, keep: float = 0.5) -> None:
        if not 0.0 <= keep <= 1.0:
            raise ValueError(f"keep must be in [0, 1], got {keep}")
        self.keep = keep

    def mixing_weights(self, self_weight: float, weights: Mapping[int, float],
                       arrived: Collection[int]) -> tuple[float, dict[int, float]]:
        own, peers = fold_missing(self_weight, weights, arrived)  # a lost copy's weight stays home
        rest = 1.0 - self.keep
        return self.keep + rest * own, {j: rest * w for j, w in peers.items()}
