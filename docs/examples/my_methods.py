"""A parsefl plugin defined outside the package (docs/extending.md walks through it):

* ``blobs2``, a dataset: Gaussian class blobs seen through two modalities, ``left`` (weak)
  and ``right`` (strong);
* ``parse_heads``, a sharing strategy: PARSE's partial alignment for the heads only; every
  encoder stays private to its agent.

Use it by name:  parsefl run --plugin docs/examples/my_methods.py -o method=parse_heads
-o data.name=blobs2
"""

from __future__ import annotations

import numpy as np

from parsefl.data.base import MultimodalDataset, Split, standardize
from parsefl.registry import DATASETS, SHARING
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
