"""Containers for multimodal datasets, train-only standardization and the registry loader."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from parsefl.data._checks import check_params
from parsefl.errors import ConfigError, DataError
from parsefl.registry import DATASETS

_STD_FLOOR = 1e-8


def _check_modalities(requested: Sequence[str], available: Sequence[str]) -> None:
    """Raise a ConfigError on ``data.modalities`` for names not in ``available``."""
    unknown = [m for m in requested if m not in available]
    if unknown:
        raise ConfigError(
            "data.modalities",
            f"unknown modality {unknown[0]!r}; available: {', '.join(available)}",
        )


@dataclass(frozen=True)
class Split:
    """One split (train or test) of a multimodal dataset.

    Attributes:
        x: Modality name -> float32 array whose first axis indexes samples.
        y: int64 labels in ``0..C-1``, one per sample.
    """

    x: dict[str, np.ndarray]
    y: np.ndarray

    def __post_init__(self) -> None:
        # Coerce once here so every consumer can rely on the documented dtypes.
        y = np.asarray(self.y, dtype=np.int64)
        if y.ndim != 1:
            raise DataError(f"labels must be 1-D, got shape {y.shape}")
        x = {name: np.asarray(arr, dtype=np.float32) for name, arr in self.x.items()}
        for name, arr in x.items():
            if arr.ndim < 1 or arr.shape[0] != y.shape[0]:
                raise DataError(
                    f"modality {name!r} has shape {arr.shape} but there are {y.shape[0]} labels"
                )
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def subset(self, idx: np.ndarray, modalities: Sequence[str] | None = None) -> Split:
        """The rows ``idx`` (indices or boolean mask), keeping only ``modalities`` if given.

        A unimodal agent calls this with its own modality so it never holds the others' arrays.
        """
        names = list(self.x) if modalities is None else list(dict.fromkeys(modalities))
        _check_modalities(names, list(self.x))
        idx = np.asarray(idx)
        if idx.dtype.kind in "iu" and idx.ndim == 1 and len(idx) and idx[0] >= 0 and \
                np.array_equal(idx, np.arange(idx[0], idx[0] + len(idx))):
            idx = slice(int(idx[0]), int(idx[0]) + len(idx))  # consecutive rows: views
        return Split(x={name: self.x[name][idx] for name in names}, y=self.y[idx])


@dataclass(frozen=True)
class MultimodalDataset:
    """A dataset whose samples are observed through several modalities.

    Attributes:
        name: Registered dataset name.
        modalities: Modality names in the dataset's canonical order.
        n_classes: Number of classes C (labels are ``0..C-1``).
        train: Training split.
        test: Test split.
        class_names: Human-readable name of each class, indexed by label.
        train_agent: Optional natural partition of the train split: one non-negative int64
            group id per train sample (e.g. the device or subject that recorded it), used by
            the ``natural`` partition; ``None`` when the data has none.
    """

    name: str
    modalities: tuple[str, ...]
    n_classes: int
    train: Split
    test: Split
    class_names: tuple[str, ...]
    train_agent: np.ndarray | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "modalities", tuple(self.modalities))
        object.__setattr__(self, "class_names", tuple(self.class_names))
        if self.train_agent is not None:
            agent = np.asarray(self.train_agent, dtype=np.int64)
            if agent.shape != (len(self.train),):
                raise DataError(
                    f"{self.name}: train_agent has shape {agent.shape}, "
                    f"expected ({len(self.train)},)"
                )
            object.__setattr__(self, "train_agent", agent)
        for split_name, split in (("train", self.train), ("test", self.test)):
            if set(split.x) != set(self.modalities):
                raise DataError(
                    f"{self.name} {split_name} split has modalities {sorted(split.x)}, "
                    f"expected {list(self.modalities)}"
                )
        if len(self.class_names) != self.n_classes:
            raise DataError(
                f"{self.name}: {len(self.class_names)} class names for {self.n_classes} classes"
            )

    def input_shape(self, modality: str) -> tuple[int, ...]:
        """Per-sample shape of ``modality`` (its array shape without the sample axis)."""
        _check_modalities([modality], self.modalities)
        return tuple(self.train.x[modality].shape[1:])

    def select(self, modalities: Sequence[str]) -> MultimodalDataset:
        """A copy keeping only ``modalities`` (returned in canonical order)."""
        if isinstance(modalities, str):
            # A bare string would otherwise be read as a sequence of one-letter names.
            modalities = [modalities]
        if not modalities:
            raise ConfigError(
                "data.modalities", f"empty; choose from: {', '.join(self.modalities)}"
            )
        _check_modalities(modalities, self.modalities)
        wanted = set(modalities)
        keep = tuple(m for m in self.modalities if m in wanted)
        if keep == self.modalities:  # nothing to drop: no copy of the arrays
            return self
        return dataclasses.replace(
            self,
            modalities=keep,
            train=self.train.subset(np.arange(len(self.train)), keep),
            test=self.test.subset(np.arange(len(self.test)), keep),
        )


def standardize(train: Split, test: Split) -> tuple[Split, Split]:
    """Scale every feature to zero mean and unit variance using TRAIN statistics only.

    Using train statistics for the test split too keeps test data from leaking into
    preprocessing. Features whose train std is below 1e-8 (constant) are only centered.

    Returns:
        The standardized ``(train, test)`` splits.
    """
    if len(train) == 0:
        raise DataError("cannot standardize with an empty train split")
    train_x: dict[str, np.ndarray] = {}
    test_x: dict[str, np.ndarray] = {}
    for name, arr in train.x.items():
        mean, std = _moments(arr)
        std = np.where(std < _STD_FLOOR, 1.0, std)
        train_x[name] = _scaled(arr, mean, std)
        test_x[name] = ((test.x[name] - mean) / std).astype(np.float32)
    return Split(x=train_x, y=train.y), Split(x=test_x, y=test.y)


_ROWS = 4096  # rows per block: float64 scratch of a few MiB, not of the whole array


def _moments(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each column's mean and standard deviation, accumulated in float64 (float32 sums over
    thousands of rows lose precision): numpy's ``mean``/``std`` (``dtype=float64``) bit for
    bit, in blocks of rows when ``arr`` is C-contiguous (numpy then adds row after row, and
    each block's sum continues from the previous blocks', prepended as its first row)."""
    if arr.ndim != 2 or not arr.flags.c_contiguous:
        return arr.mean(axis=0, dtype=np.float64), arr.std(axis=0, dtype=np.float64)
    n = len(arr)
    scratch = np.empty((min(n, _ROWS) + 1, arr.shape[1]))

    def column_sum(term) -> np.ndarray:
        total = None
        for k in range(0, n, _ROWS):
            rows, first = arr[k : k + _ROWS], int(total is not None)
            out = scratch[: first + len(rows)]
            term(rows, out[first:])
            if total is not None:
                out[0] = total
            total = np.add.reduce(out, axis=0)
        return total

    mean = column_sum(lambda rows, out: np.copyto(out, rows)) / n

    def squared(rows: np.ndarray, out: np.ndarray) -> None:
        np.subtract(rows, mean, out=out)
        np.multiply(out, out, out=out)

    return mean, np.sqrt(column_sum(squared) / n)


def _scaled(arr: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``((arr - mean) / std).astype(float32)`` through one block-sized float64 scratch."""
    out = np.empty(arr.shape, np.float32)
    scratch = np.empty((min(len(arr), _ROWS), *arr.shape[1:]))
    for k in range(0, len(arr), _ROWS):
        rows = arr[k : k + _ROWS]
        tmp = scratch[: len(rows)]
        np.subtract(rows, mean, out=tmp)
        np.divide(tmp, std, out=tmp)
        out[k : k + _ROWS] = tmp
    return out


DatasetFactory = Callable[..., MultimodalDataset]
"""A dataset factory: ``(seed, **params) -> MultimodalDataset``."""

SCHEMES: dict[str, Callable[[str], DatasetFactory]] = {}
"""Dataset-name schemes: ``"npz"`` -> (path -> factory) makes ``data.name: npz:PATH`` work.

Filled by the modules that implement a scheme (``parsefl.data.npz``)."""


def resolve_dataset(name: str) -> DatasetFactory:
    """The factory of dataset ``name``: a registered name or ``SCHEME:ARGUMENT``.

    Raises:
        ConfigError: On ``data.name``: unknown name, unknown scheme or empty argument.
    """
    if not isinstance(name, str):
        raise ConfigError("data.name", f"expected a dataset name, got {name!r}")
    scheme, sep, argument = name.partition(":")
    if name in DATASETS:
        return DATASETS.get(name, field="data.name")
    if not sep:
        raise ConfigError("data.name", f"unknown dataset {name!r}; choose one of: "
                          f"{', '.join(DATASETS.names())}, or npz:PATH (your own .npz file)")
    if scheme not in SCHEMES:
        choices = ", ".join(f"{s}:PATH" for s in sorted(SCHEMES)) or "(none)"
        raise ConfigError("data.name", f"unknown dataset scheme {scheme!r}; allowed: {choices}")
    if not argument.strip():
        raise ConfigError("data.name", f"{scheme}: needs a path, e.g. {scheme}:data/my.{scheme}")
    return SCHEMES[scheme](argument)


def dataset_slug(name: str) -> str:
    """A file-name-safe short form of a dataset name (``npz:/a/b/my.npz`` -> ``npz-my``)."""
    scheme, sep, argument = name.partition(":")
    if not sep:
        return name
    stem = argument.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in stem)
    return f"{scheme}-{safe or 'data'}"


def _check_classes(name: str, dataset: MultimodalDataset) -> None:
    """Refuse training labels of fewer than two classes: every prediction would be right, and
    the run would report accuracy 1.000 whatever it learned."""
    present = np.unique(dataset.train.y)
    if len(present) < 2:
        found = f"only class {dataset.class_names[int(present[0])]!r}" if len(present) else \
            "no label"
        raise DataError(f"{name}: the training labels hold {found}; classification needs at "
                        "least 2 classes")


def load_dataset(
    name: str,
    seed: int,
    params: Mapping[str, object] | None = None,
    modalities: Sequence[str] | None = None,
) -> MultimodalDataset:
    """Build the registered dataset ``name``.

    Args:
        name: Registered dataset name (config field ``data.name``), or ``npz:PATH`` for a
            user's own ``.npz`` file (see :mod:`parsefl.data.npz`).
        seed: Seed of the dataset's own randomness (train/test split, synthetic draws).
        params: Keyword parameters of the dataset factory (``data.params``).
        modalities: Keep only these modalities; ``None`` keeps all.

    Raises:
        ConfigError: Unknown dataset, parameter or modality, or a bad parameter value.
        DataError: The data cannot be obtained or is malformed.
    """
    factory = resolve_dataset(name)
    params = dict(params or {})
    check_params(factory, params, "data.params", skip=1)
    dataset = factory(seed, **params)
    _check_classes(name, dataset)
    if modalities is not None:
        dataset = dataset.select(modalities)
    return dataset
