"""Bring your own data: ``data.name: npz:PATH`` loads a user's ``.npz`` file.

The file (``np.savez`` / ``np.savez_compressed``) holds:

* ``x_<modality>``: one numeric array per modality, first axis = samples, any trailing shape
  (a 1-D array is one feature per sample and becomes shape ``(n, 1)``). Modalities keep the
  order of the archive. Names match ``[A-Za-z0-9_][A-Za-z0-9_.-]*`` (no ``+``: it joins
  modalities in mix keys), are case-sensitive, but two names equal up to case (``x_a`` and
  ``x_A``) are refused as confusable; ``ratio``, ``n_agents`` and ``modalities`` are reserved
  by the mix's ratio form. Values must be finite as float32.
* ``y``: the labels, 1-D. Integers must be ``>= 0`` and use every class ``0..C-1`` with
  ``C = max(y) + 1`` (a gap is refused rather than silently renumbered, so class ids in
  results stay the user's); class names are ``"0".."C-1"``. Strings are mapped to their
  sorted unique values (the class names). Every class needs at least one train sample, and
  there must be at least two classes (``load_dataset`` refuses one).
* ``split`` (optional): ``"train"`` / ``"test"`` per sample. Without it a stratified split
  seeded by ``seed`` holds out ``test_fraction`` (default 0.2) of the samples.
* ``agent`` (optional): a non-negative integer natural-partition id per sample (device,
  subject, site); the train rows' ids become ``MultimodalDataset.train_agent`` for the
  ``natural`` partition.

No other arrays are allowed. The file is always read with ``np.load(path,
allow_pickle=False)``, so object arrays are refused, never unpickled. Every problem raises a
DataError naming the file, the array and what is wrong. Features are standardized with
train statistics (``standardize: false`` keeps them raw).
"""

from __future__ import annotations

import math
import re
import zipfile
from pathlib import Path

import numpy as np

from parsefl.data._checks import check_float, check_int
from parsefl.data.base import SCHEMES, DatasetFactory, MultimodalDataset, Split
from parsefl.data.base import standardize as standardize_features
from parsefl.data.npz_checks import check_members
from parsefl.errors import ConfigError, DataError

RESERVED: frozenset[str] = frozenset({"ratio", "n_agents", "modalities"})
"""Modality names that the mix's ratio form uses as keys."""

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_KNOWN = ("y", "split", "agent")
_READ_ERRORS = (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile)


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of the archive at ``path``, read without pickle, by name (in order).

    Raises:
        DataError: Missing file, not a zip archive, a duplicated name, or an entry that is
            not a plain numpy array (object arrays, pickles, other files).
    """
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        with open(path, "rb") as fh:
            fh.read(4)
    except PermissionError:
        raise DataError(f"{path}: permission denied (this user cannot read the file)") from None
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not a .npz file (not a zip archive); write it with np.savez")
    check_members(path, _READ_ERRORS)
    try:
        archive = np.load(path, allow_pickle=False)
    except _READ_ERRORS as exc:
        raise DataError(f"{path}: cannot be read as .npz ({exc})") from exc
    arrays: dict[str, np.ndarray] = {}
    with archive:
        for name in archive.files:
            if name in arrays:
                raise DataError(f"{path}: array {name!r} appears twice in the archive")
            try:
                value = archive[name]
            except _READ_ERRORS as exc:
                raise DataError(
                    f"{path}: array {name!r} cannot be loaded without pickle ({exc}); "
                    "store numbers or fixed-width strings, not Python objects"
                ) from exc
            if not isinstance(value, np.ndarray) or value.dtype.hasobject:
                raise DataError(f"{path}: entry {name!r} is not a numpy array (.npy member)")
            arrays[name] = value
    return arrays


def _check_names(arrays: dict[str, np.ndarray], where: str) -> list[str]:
    """The ``x_*`` keys, after refusing unknown, malformed and confusable names."""
    keys: list[str] = []
    seen: dict[str, str] = {}
    for key in arrays:
        if key in _KNOWN:
            continue
        if not key.startswith("x_"):
            raise DataError(f"{where}: unknown array {key!r}; allowed: x_<modality>, y, "
                            "split, agent")
        modality = key[2:]
        if not _NAME.fullmatch(modality) or modality in RESERVED:
            raise DataError(f"{where}: array {key!r}: bad modality name {modality!r}; use "
                            f"letters, digits, '_', '.', '-' (not {', '.join(sorted(RESERVED))})")
        if modality.casefold() in seen:
            raise DataError(f"{where}: arrays {seen[modality.casefold()]!r} and {key!r} name "
                            "the same modality up to case; rename one")
        seen[modality.casefold()] = key
        keys.append(key)
    if not keys:
        raise DataError(f"{where}: no x_<modality> arrays (e.g. x_audio, x_video)")
    if "y" not in arrays:
        raise DataError(f"{where}: missing array 'y' (the labels)")
    return keys


def _features(arr: np.ndarray, key: str, n: int, where: str) -> np.ndarray:
    """A modality array as finite float32 of shape ``(n, ...)`` (1-D -> ``(n, 1)``)."""
    if arr.dtype.kind not in "biuf":
        raise DataError(f"{where}: array {key!r} has dtype {arr.dtype}; expected numbers")
    if arr.ndim == 0 or arr.shape[0] != n:
        raise DataError(f"{where}: array {key!r} has shape {arr.shape}, but 'y' has {n} "
                        "samples; the first axis must index the same samples")
    with np.errstate(over="ignore"):  # overflow to inf is reported just below
        out = arr.astype(np.float32, copy=False)  # float32 already: no copy
        out = out.reshape(n, -1) if arr.ndim == 1 else out
    # Finite float32 values cannot overflow a float64 sum: it is finite iff they all are.
    if np.isfinite(np.add.reduce(out, axis=None, dtype=np.float64)):
        return out
    bad = ~np.isfinite(out)
    if bad.any():
        first = int(np.flatnonzero(bad.reshape(n, -1).any(axis=1))[0])
        raise DataError(f"{where}: array {key!r} has {int(np.isnan(out).sum())} NaN and "
                        f"{int(np.isinf(out).sum())} infinite values as float32 "
                        f"(first in sample {first})")
    return out


def _labels(y: np.ndarray, where: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Labels as int64 ``0..C-1`` and the class names (see the module docstring)."""
    if y.ndim != 1 or len(y) == 0:
        raise DataError(f"{where}: array 'y' must be 1-D and non-empty, got shape {y.shape}")
    if y.dtype.kind in "US":
        names = y.astype(str) if y.dtype.kind == "U" else _decode(y, where)
        if (names == "").any():
            raise DataError(f"{where}: array 'y' has empty-string labels")
        classes, index = np.unique(names, return_inverse=True)
        return index.astype(np.int64), tuple(str(c) for c in classes)
    if y.dtype.kind not in "iu":
        raise DataError(f"{where}: array 'y' has dtype {y.dtype}; expected integers or strings")
    if y.min() < 0:
        raise DataError(f"{where}: array 'y' has negative labels (e.g. {int(y.min())})")
    if y.max() >= len(y):  # every class must occur, so C <= n; checked before counting
        raise DataError(f"{where}: array 'y' has label {int(y.max())} but only {len(y)} "
                        f"samples; integer labels must be 0..C-1 with every class present")
    n_classes = int(y.max()) + 1
    missing = np.setdiff1d(np.arange(n_classes), y)
    if len(missing):
        raise DataError(f"{where}: array 'y': integer labels must use every class "
                        f"0..{n_classes - 1}, but {missing[:5].tolist()} never occur; relabel "
                        "them or use string labels")
    return y.astype(np.int64), tuple(str(c) for c in range(n_classes))


def _decode(y: np.ndarray, where: str) -> np.ndarray:
    try:
        return np.array([v.decode("utf-8") for v in y.tolist()], dtype=str)
    except UnicodeDecodeError as exc:
        raise DataError(f"{where}: array 'y' has labels that are not UTF-8 ({exc})") from exc


def _given_split(split: np.ndarray, n: int, where: str) -> np.ndarray:
    """The ``split`` array as a boolean is-train mask."""
    if split.dtype.kind not in "US" or split.shape != (n,):
        raise DataError(f"{where}: array 'split' must be {n} strings 'train'/'test', got "
                        f"dtype {split.dtype} and shape {split.shape}")
    values = split.astype(str)
    bad = sorted(set(values.tolist()) - {"train", "test"})
    if bad:
        raise DataError(f"{where}: array 'split' has values {bad[:5]}; allowed: 'train', 'test'")
    is_train = values == "train"
    if is_train.all() or not is_train.any():
        side = "test" if is_train.all() else "train"
        raise DataError(f"{where}: array 'split' has no {side!r} sample")
    return is_train


def _drawn_split(
    y: np.ndarray, names: tuple[str, ...], seed: int, fraction: float, where: str
) -> np.ndarray:
    """A seeded stratified is-train mask holding out ``fraction`` of the samples."""
    counts = np.bincount(y, minlength=len(names))
    if counts.min() < 2:
        raise DataError(f"{where}: array 'y': class {names[int(counts.argmin())]!r} has "
                        f"{int(counts.min())} sample(s); a stratified split needs 2 per "
                        "class — add a 'split' array")
    n, n_classes = len(y), len(names)
    n_test = math.ceil(fraction * n)
    if min(n_test, n - n_test) < n_classes:
        raise ConfigError("data.params.test_fraction",
                          f"{fraction} leaves fewer than {n_classes} (the number of classes) "
                          f"of the {n} samples of {where} in one split")
    from sklearn.model_selection import train_test_split  # lazy: `parsefl list` stays fast

    _, test_idx = train_test_split(np.arange(n), test_size=n_test, stratify=y, random_state=seed)
    is_train = np.ones(n, dtype=bool)
    is_train[test_idx] = False
    return is_train


def _split_mask(
    arrays: dict[str, np.ndarray],
    y: np.ndarray,
    names: tuple[str, ...],
    seed: int,
    test_fraction: float | None,
    where: str,
) -> np.ndarray:
    """The is-train mask: the file's ``split`` array, or a seeded stratified draw."""
    if "split" in arrays:
        if test_fraction is not None:
            raise ConfigError("data.params.test_fraction",
                              f"{where} has a 'split' array; remove test_fraction")
        is_train = _given_split(arrays["split"], len(y), where)
    else:
        fraction = check_float("data.params.test_fraction",
                               0.2 if test_fraction is None else test_fraction, 0.0, 1.0)
        is_train = _drawn_split(y, names, seed, fraction, where)
    empty = np.setdiff1d(np.arange(len(names)), y[is_train])
    if len(empty):
        raise DataError(f"{where}: array 'y': class {names[int(empty[0])]!r} has no train sample")
    return is_train


def _agents(agent: np.ndarray, n: int, where: str) -> np.ndarray:
    if agent.dtype.kind not in "iu" or agent.shape != (n,):
        raise DataError(f"{where}: array 'agent' must be {n} integers, got dtype "
                        f"{agent.dtype} and shape {agent.shape}")
    if agent.min() < 0:
        raise DataError(f"{where}: array 'agent' has negative ids (e.g. {int(agent.min())})")
    return agent.astype(np.int64)


def load_npz(
    path: str | Path, seed: int, test_fraction: float | None = None, standardize: bool = True
) -> MultimodalDataset:
    """Load a user's ``.npz`` file as a MultimodalDataset (format: module docstring).

    Args:
        path: The ``.npz`` file.
        seed: Seed of the stratified split when the file has no ``split`` array.
        test_fraction: Held-out fraction for that split (default 0.2); must be left unset
            when the file has a ``split`` array.
        standardize: Scale every feature with train statistics.

    Raises:
        DataError: The file is missing or malformed (the message names the array).
        ConfigError: A bad ``data.params`` value.
    """
    seed = check_int("seed", seed, 0)
    if not isinstance(standardize, bool):
        raise ConfigError("data.params.standardize", f"expected true or false, got {standardize!r}")
    file = Path(path).expanduser()
    where = str(file)
    arrays = read_npz(file)
    keys = _check_names(arrays, where)
    y, names = _labels(arrays["y"], where)
    x = {key[2:]: _features(arrays[key], key, len(y), where) for key in keys}
    is_train = _split_mask(arrays, y, names, seed, test_fraction, where)
    agent = _agents(arrays["agent"], len(y), where)[is_train] if "agent" in arrays else None
    full = Split(x=x, y=y)
    train, test = full.subset(np.flatnonzero(is_train)), full.subset(np.flatnonzero(~is_train))
    if standardize:
        train, test = standardize_features(train, test)
    return MultimodalDataset(name=f"npz:{path}", modalities=tuple(x), n_classes=len(names),
                             train=train, test=test, class_names=names, train_agent=agent)


def npz_factory(path: str) -> DatasetFactory:
    """The dataset factory ``(seed, test_fraction=None, standardize=True)`` of one file."""

    def npz(
        seed: int, test_fraction: float | None = None, standardize: bool = True
    ) -> MultimodalDataset:
        """A user's .npz file (x_<modality> arrays, y, optional split and agent)."""
        return load_npz(path, seed, test_fraction=test_fraction, standardize=standardize)

    return npz


SCHEMES["npz"] = npz_factory
