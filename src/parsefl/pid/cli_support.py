"""What ``parsefl pid DATASET --modalities a,b [--json]`` computes, as a plain function."""

from __future__ import annotations

from collections.abc import Sequence

from parsefl.data import load_dataset
from parsefl.errors import ConfigError
from parsefl.pid.discretize import discretize
from parsefl.pid.estimate import pid_discrete


def _check_pair(modalities: Sequence[str]) -> tuple[str, str]:
    """Two distinct modality names; ``"a,b"`` is accepted as well as ``("a", "b")``."""
    names = modalities.split(",") if isinstance(modalities, str) else list(modalities)
    names = [str(name).strip() for name in names]
    if len(names) != 2 or names[0] == names[1] or not all(names):
        raise ConfigError("modalities", f"expected two distinct modality names, got {modalities!r}")
    return names[0], names[1]


def dataset_pid(
    name_or_npz: str,
    modalities: Sequence[str],
    seed: int = 0,
    k: int | tuple[int, int] | None = None,
    estimator: str = "broja",
) -> dict[str, object]:
    """PID (bits) of a dataset's training split between two modalities about the label.

    The dataset is built with ``load_dataset(name_or_npz, seed, {}, modalities)`` (so an
    ``npz:PATH`` name works once that dataset is registered), each modality is clustered with
    k-means (k by the rule of ``parsefl.pid.discretize`` unless given) and the cluster codes
    are decomposed with ``estimator``.

    Args:
        name_or_npz: Registered dataset name (or ``npz:PATH``).
        modalities: The two modalities ``(a, b)``, in the order of the PID's sources.
        seed: Dataset seed, also the k-means and estimator seed.
        k: Clusters per modality (an int, a pair, or None for the rule).
        estimator: Name in ``PID_ESTIMATORS``.

    Returns:
        ``{"redundancy": R, "unique": {a: U1, b: U2}, "synergy": S, "k": {a: k1, b: k2},
        "n": n_train}``.

    Raises:
        ConfigError: Unknown dataset, modality or estimator, or not two distinct modalities.
    """
    first, second = _check_pair(modalities)
    dataset = load_dataset(name_or_npz, seed, {}, [first, second])
    train = dataset.train
    codes = discretize(train.x[first], train.x[second], train.y, k, seed)
    result = pid_discrete(codes.codes1, codes.codes2, codes.y, estimator, seed)
    out = result.as_dict(names=(first, second))
    out["k"] = {first: codes.k[0], second: codes.k[1]}
    out["n"] = len(train)
    return out
