"""Tests of the continuous PID (k-means + k rule) on synthetic_pid, and of dataset_pid."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from parsefl.data import load_dataset
from parsefl.errors import ConfigError, DataError
from parsefl.pid import PID, SparseJointWarning, dataset_pid, discretize, pid, pid_split, slice_pid

LABELS = ("redundancy", "uniqueness", "synergy", "mixed")
EXPECTED = {
    "redundancy": (1, 0, 0, 0),
    "uniqueness": (0, 1, 0, 0),
    "synergy": (0, 0, 0, 1),
    "mixed": (1, 1, 0, 1),
}


def train_arrays(label: str, **params: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    split = load_dataset("synthetic_pid", 0, {"label": label, **params}).train
    return split.x["m1"], split.x["m2"], split.y


@pytest.fixture(scope="module")
def synthetic_pids() -> dict[str, PID]:
    return {label: pid(*train_arrays(label)) for label in LABELS}


@pytest.mark.parametrize("label", LABELS)
def test_default_pid_recovers_the_generating_bits(
    synthetic_pids: dict[str, PID], label: str
) -> None:
    np.testing.assert_allclose(synthetic_pids[label].as_tuple(), EXPECTED[label], atol=0.15)


def test_rule_keeps_all_eight_patterns_per_modality() -> None:
    for label in ("mixed", "synergy"):
        assert discretize(*train_arrays(label)).k == (8, 8)
    # Strong noise blurs the clusters; the inertia elbow still sits at 8 patterns.
    assert discretize(*train_arrays("synergy", noise=0.6)).k == (8, 8)


def test_too_few_clusters_lose_information(synthetic_pids: dict[str, PID]) -> None:
    coarse = pid(*train_arrays("mixed"), k=6)
    assert coarse.redundancy < 0.85 and coarse.synergy < 0.7
    assert coarse.total < synthetic_pids["mixed"].total - 0.4


def test_synergy_dataset_is_more_synergistic(synthetic_pids: dict[str, PID]) -> None:
    syn, red = synthetic_pids["synergy"], synthetic_pids["redundancy"]
    assert syn.synergy > red.synergy + 0.5
    assert red.redundancy > syn.redundancy + 0.5


def test_pid_split_follows_the_dataset(synthetic_pids: dict[str, PID]) -> None:
    splits = {label: pid_split(result, floor=0.1) for label, result in synthetic_pids.items()}
    assert splits["synergy"][2] > splits["redundancy"][2]
    assert splits["redundancy"][0] > splits["synergy"][0]
    for weights in splits.values():
        assert min(weights) >= 0.1 - 1e-12 and sum(weights) == pytest.approx(1)
    r, u, s = splits["mixed"]
    assert r == pytest.approx(0.4, abs=0.03) and s == pytest.approx(0.4, abs=0.03) and u < r


def test_pid_is_deterministic_and_slice_pid_takes_tensors() -> None:
    x1, x2, y = train_arrays("mixed", n_samples=1000)
    first = pid(x1, x2, y, seed=3)
    assert pid(x1, x2, y, seed=3) == first
    tensors = [torch.from_numpy(a).requires_grad_() for a in (x1, x2)]
    assert slice_pid(*tensors, torch.from_numpy(y), seed=3) == first


def test_sparse_joint_warns() -> None:
    x1, x2, y = train_arrays("mixed", n_samples=300)
    with pytest.warns(SparseJointWarning, match="joint cells"):
        pid(x1, x2, y, k=12)
    with pytest.warns(SparseJointWarning, match="capped"):
        assert discretize(x1, x2, y).k == (5, 5)  # 240 train samples: sqrt(240 / 8) -> 5


def test_bad_inputs() -> None:
    x1, x2, y = train_arrays("synergy", n_samples=100)
    with pytest.raises(ConfigError, match="k"):
        pid(x1, x2, y, k=0)
    with pytest.raises(ConfigError, match="k"):
        pid(x1, x2, y, k=(2, 3, 4))
    with pytest.raises(DataError, match="same length"):
        pid(x1[:-1], x2, y)
    with pytest.raises(DataError, match="NaN"):
        pid(np.full_like(x1, np.nan), x2, y)


def test_one_dimensional_features_and_pairs_of_k() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 200)
    x1 = y + 0.05 * rng.normal(size=400)  # 1-D, carries y
    x2 = rng.normal(size=(400, 3))  # noise
    result = pid(x1, x2, y, k=(2, 3))
    assert result.unique1 == pytest.approx(1, abs=0.01)
    assert result.redundancy + result.unique2 < 0.05


def test_dataset_pid_reports_names_k_and_n() -> None:
    out = dataset_pid("synthetic_pid", ("m2", "m1"))
    assert set(out) == {"redundancy", "unique", "synergy", "k", "n"}
    assert out["n"] == 1600 and out["k"] == {"m2": 8, "m1": 8}
    assert out["unique"]["m1"] == pytest.approx(1, abs=0.15)
    assert out["unique"]["m2"] == pytest.approx(0, abs=0.15)
    swapped = dataset_pid("synthetic_pid", "m1,m2", k=8)
    assert swapped["unique"] == pytest.approx(out["unique"], abs=1e-9)
    with pytest.raises(ConfigError, match="modalities"):
        dataset_pid("synthetic_pid", ("m1", "m1"))
    with pytest.raises(ConfigError, match="data.modalities"):
        dataset_pid("synthetic_pid", ("m1", "m3"))
