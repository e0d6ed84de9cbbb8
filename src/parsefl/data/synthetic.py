"""Synthetic two-modality data whose label information is redundant, unique or synergistic.

Each sample has five fair bits ``r, u1, u2, s1, s2``. Modality ``m1`` observes ``(r, u1, s1)``
and ``m2`` observes ``(r, u2, s2)``, so under partial information decomposition (PID):

* ``r`` is *redundant* (both modalities see it),
* ``u1`` is *unique* to ``m1`` (``u2`` to ``m2``),
* ``s1 XOR s2`` is *synergistic* (neither modality alone says anything about it).

The label picks which kind of information the task needs. Observed bits become +-1, are
embedded by a random linear map ``3 -> dim`` per modality, and get Gaussian noise.

Two options generalise the toy (their defaults reproduce the binary data bit for bit):

* ``arity=K``: every latent is uniform over ``0..K-1``; synergy is ``(s1 + s2) mod K`` and the
  mixed label is the base-K number ``K^2 r + K u1 + (s1 + s2) mod K`` (K^3 classes). A value
  ``v`` is observed as the level ``(2v/(K-1) - 1) * sqrt(3(K-1)/(K+1))`` (equally spaced in
  ``[-a, a]`` with unit variance; +-1 for K = 2) before the linear map.
* ``distractors=d``: ``d`` extra pure-noise N(0, 1) features are appended to each modality
  (drawn after everything else, so the first ``dim`` features do not change).

Row alignment with the latents: the train split is the first ``len(train)`` samples and the
test split is the rest, in generation order, so ``synthetic_pid_latents(seed, n_samples)[k]``
sliced the same way matches ``dataset.train`` / ``dataset.test`` row for row. (The bits are
i.i.d., so a contiguous split is as random as a shuffled one.)
"""

from __future__ import annotations

import math

import numpy as np

from parsefl.data._checks import check_float, check_int
from parsefl.data.base import MultimodalDataset, Split, standardize
from parsefl.errors import ConfigError
from parsefl.registry import DATASETS

MAX_CLASSES = 4_096  # arity 16 with label mixed; arity 1000 was 10^9 class names in memory

LATENT_NAMES: tuple[str, ...] = ("r", "u1", "u2", "s1", "s2")
"""Latent bits in the order they are drawn."""

MODALITY_BITS: dict[str, tuple[str, ...]] = {"m1": ("r", "u1", "s1"), "m2": ("r", "u2", "s2")}
"""Which latent bits each modality observes (modalities in canonical order)."""

LABELS: dict[str, tuple[str, ...]] = {
    "redundancy": ("r=0", "r=1"),
    "uniqueness": ("u1=0", "u1=1"),
    "synergy": ("s1^s2=0", "s1^s2=1"),
    "mixed": tuple(f"r={r},u1={u},s1^s2={s}" for r in (0, 1) for u in (0, 1) for s in (0, 1)),
}
"""Label rule name -> class names (indexed by label)."""


def _draw_bits(
    rng: np.random.Generator, n_samples: int, arity: int = 2
) -> dict[str, np.ndarray]:
    # This must stay the generator's FIRST draw: synthetic_pid_latents relies on it.
    bits = rng.integers(0, arity, size=(n_samples, len(LATENT_NAMES)), dtype=np.int64)
    return {name: bits[:, i].copy() for i, name in enumerate(LATENT_NAMES)}


def synthetic_pid_latents(
    seed: int, n_samples: int = 2000, arity: int = 2
) -> dict[str, np.ndarray]:
    """The latents of ``synthetic_pid`` built with ``seed``, ``n_samples`` and ``arity``.

    They come from the same random stream as the dataset, so they agree with it exactly
    (train rows are the first ``len(dataset.train)`` entries, test rows the rest).

    Returns:
        ``{"r", "u1", "u2", "s1", "s2"}`` -> int64 arrays over ``0..arity-1`` of length
        ``n_samples``.
    """
    seed = check_int("seed", seed, 0)
    n_samples = check_int("data.params.n_samples", n_samples, 2)
    arity = check_int("data.params.arity", arity, 2)
    return _draw_bits(np.random.default_rng(seed), n_samples, arity)


def _check_label(label: object) -> str:
    if not isinstance(label, str) or label not in LABELS:
        raise ConfigError("data.params.label", f"unknown {label!r}; allowed: {', '.join(LABELS)}")
    return label


def _check_arity(label: str, arity: object) -> int:
    """``arity`` as an int >= 2 whose class count (K, or K^3 for ``mixed``) is at most
    MAX_CLASSES."""
    arity = check_int("data.params.arity", arity, 2)
    n_classes = arity**3 if label == "mixed" else arity
    if n_classes > MAX_CLASSES:
        raise ConfigError("data.params.arity", f"{arity} makes {n_classes} classes with label "
                          f"{label}; at most {MAX_CLASSES} (every agent's heads have a row "
                          "per class)")
    return arity


def class_names(label: str, arity: int = 2) -> tuple[str, ...]:
    """Class names of the rule ``label`` for latents over ``0..arity-1`` (indexed by label).

    For ``arity=2`` these are exactly ``LABELS[label]``.
    """
    label = _check_label(label)
    arity = check_int("data.params.arity", arity, 2)
    if arity == 2:
        return LABELS[label]
    values = range(arity)
    syn = f"(s1+s2)%{arity}"
    if label == "redundancy":
        return tuple(f"r={v}" for v in values)
    if label == "uniqueness":
        return tuple(f"u1={v}" for v in values)
    if label == "synergy":
        return tuple(f"{syn}={v}" for v in values)
    return tuple(f"r={r},u1={u},{syn}={s}" for r in values for u in values for s in values)


def synthetic_pid_labels(
    latents: dict[str, np.ndarray], label: str, arity: int = 2
) -> np.ndarray:
    """Labels of the rule ``label`` computed from the latents (see the module docstring).

    ``redundancy``: r; ``uniqueness``: u1; ``synergy``: (s1 + s2) mod K (XOR for K = 2);
    ``mixed``: K^2 r + K u1 + (s1 + s2) mod K, with K = ``arity``.
    """
    label = _check_label(label)
    arity = check_int("data.params.arity", arity, 2)
    synergy = (latents["s1"] + latents["s2"]) % arity
    if label == "redundancy":
        y = latents["r"]
    elif label == "uniqueness":
        y = latents["u1"]
    elif label == "synergy":
        y = synergy
    else:
        y = arity * arity * latents["r"] + arity * latents["u1"] + synergy
    return np.asarray(y, dtype=np.int64)


def _levels(values: np.ndarray, arity: int) -> np.ndarray:
    """Values ``0..K-1`` -> equally spaced unit-variance levels (exactly +-1 for K = 2)."""
    scale = math.sqrt(3.0 * (arity - 1) / (arity + 1))
    return (2.0 * values / (arity - 1) - 1.0) * scale


def _embed(
    rng: np.random.Generator,
    latents: dict[str, np.ndarray],
    dim: int,
    noise: float,
    arity: int = 2,
) -> dict[str, np.ndarray]:
    """Per modality: latent levels (+-1 bits) times a random 3 x dim map, plus noise."""
    # Scaling by 1/sqrt(3) gives each feature unit signal variance, so `noise` reads as a
    # noise-to-signal standard-deviation ratio.
    maps = {m: rng.normal(size=(3, dim)) / math.sqrt(3) for m in MODALITY_BITS}
    features: dict[str, np.ndarray] = {}
    for modality, names in MODALITY_BITS.items():
        signs = _levels(np.stack([latents[n] for n in names], axis=1), arity)
        n_samples = signs.shape[0]
        features[modality] = signs @ maps[modality] + noise * rng.normal(size=(n_samples, dim))
    return features


def _n_train(n_samples: int, test_fraction: float) -> int:
    """Train split size; the test split gets ``ceil(test_fraction * n)`` like sklearn's."""
    n_test = math.ceil(test_fraction * n_samples)
    if n_test >= n_samples:
        raise ConfigError(
            "data.params.test_fraction",
            f"{test_fraction} leaves no training samples out of n_samples={n_samples}",
        )
    return n_samples - n_test


@DATASETS.register(
    "synthetic_pid",
    "Two synthetic modalities with redundant, unique and synergistic label bits (PID toy)",
)
def synthetic_pid(
    seed: int,
    label: str = "mixed",
    n_samples: int = 2000,
    dim: int = 16,
    noise: float = 0.1,
    test_fraction: float = 0.2,
    arity: int = 2,
    distractors: int = 0,
) -> MultimodalDataset:
    """Two synthetic modalities with redundant, unique and synergistic label bits.

    Args:
        seed: Seed of every random draw (bits, embeddings, noise).
        label: ``redundancy`` (y=r), ``uniqueness`` (y=u1), ``synergy`` (y=s1 XOR s2) or
            ``mixed`` (y = 4r + 2u1 + (s1 XOR s2), 8 classes); for ``arity`` K see the
            module docstring (K, K, K and K^3 classes).
        n_samples: Total number of samples (train + test).
        dim: Feature dimension of each modality.
        noise: Std of the additive Gaussian noise (each feature's signal has unit variance).
        test_fraction: Fraction of samples in the test split, in (0, 1).
        arity: Number of values K >= 2 of every latent (2 = bits).
        distractors: Extra pure-noise features appended to each modality (>= 0).

    Returns:
        The dataset with modalities ``m1`` and ``m2`` of ``dim + distractors`` features
        each, standardized with train statistics.
    """
    seed = check_int("seed", seed, 0)
    label = _check_label(label)
    n_samples = check_int("data.params.n_samples", n_samples, 2)
    dim = check_int("data.params.dim", dim, 1)
    noise = check_float("data.params.noise", noise, 0.0, low_open=False)
    test_fraction = check_float("data.params.test_fraction", test_fraction, 0.0, 1.0)
    arity = _check_arity(label, arity)
    distractors = check_int("data.params.distractors", distractors, 0)
    n_train = _n_train(n_samples, test_fraction)
    rng = np.random.default_rng(seed)
    latents = _draw_bits(rng, n_samples, arity)
    features = _embed(rng, latents, dim, noise, arity)
    if distractors:
        # Drawn last, so the informative features are those of distractors=0.
        for modality, arr in features.items():
            extra = rng.normal(size=(n_samples, distractors))
            features[modality] = np.hstack([arr, extra])
    full = Split(x=features, y=synthetic_pid_labels(latents, label, arity))
    train, test = standardize(
        full.subset(np.arange(n_train)), full.subset(np.arange(n_train, n_samples))
    )
    return MultimodalDataset(
        name="synthetic_pid",
        modalities=tuple(MODALITY_BITS),
        n_classes=len(class_names(label, arity)),
        train=train,
        test=test,
        class_names=class_names(label, arity),
    )
