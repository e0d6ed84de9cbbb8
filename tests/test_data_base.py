"""Tests of the dataset containers, standardization and the registry loader."""

from __future__ import annotations

import numpy as np
import pytest

from parsefl.data import MultimodalDataset, Split, load_dataset, standardize
from parsefl.errors import ConfigError, DataError


def _split(n: int = 6) -> Split:
    x = {"a": np.arange(n * 2, dtype=np.float64).reshape(n, 2), "b": np.ones((n, 3, 2))}
    return Split(x=x, y=np.arange(n) % 3)


def _dataset() -> MultimodalDataset:
    return MultimodalDataset(
        name="toy",
        modalities=("a", "b"),
        n_classes=3,
        train=_split(6),
        test=_split(3),
        class_names=("x", "y", "z"),
    )


def test_split_coerces_dtypes_and_subsets_rows_and_modalities() -> None:
    split = _split()
    assert split.x["a"].dtype == np.float32
    assert split.y.dtype == np.int64
    assert len(split) == 6
    sub = split.subset(np.array([4, 1]), ["a"])
    assert list(sub.x) == ["a"]  # a unimodal agent holds only its own array
    np.testing.assert_array_equal(sub.x["a"], [[8, 9], [2, 3]])
    np.testing.assert_array_equal(sub.y, [1, 1])
    assert list(split.subset(np.arange(2)).x) == ["a", "b"]


def test_split_rejects_mismatched_lengths() -> None:
    with pytest.raises(DataError, match="modality 'a'"):
        Split(x={"a": np.zeros((5, 2))}, y=np.zeros(4))


def test_subset_unknown_modality() -> None:
    with pytest.raises(ConfigError) as info:
        _split().subset(np.arange(2), ["c"])
    assert info.value.field == "data.modalities"


def test_input_shape_and_select_keep_canonical_order() -> None:
    data = _dataset()
    assert data.input_shape("a") == (2,)
    assert data.input_shape("b") == (3, 2)
    picked = data.select(["b", "a"])
    assert picked.modalities == ("a", "b")
    only_b = data.select(["b"])
    assert only_b.modalities == ("b",)
    assert list(only_b.train.x) == ["b"] and list(only_b.test.x) == ["b"]
    assert data.modalities == ("a", "b")  # the original is untouched


@pytest.mark.parametrize("bad", [["c"], ["a", "nope"], []])
def test_select_rejects_unknown_or_empty(bad: list[str]) -> None:
    with pytest.raises(ConfigError, match="a, b") as info:
        _dataset().select(bad)
    assert info.value.field == "data.modalities"


def test_dataset_checks_modalities_and_class_names() -> None:
    with pytest.raises(DataError):
        MultimodalDataset("t", ("a",), 3, _split(), _split(), ("x", "y", "z"))
    with pytest.raises(DataError):
        MultimodalDataset("t", ("a", "b"), 2, _split(), _split(), ("x", "y", "z"))


def test_standardize_uses_train_statistics_only() -> None:
    train = Split(x={"a": np.array([[1.0, 5.0], [3.0, 5.0]])}, y=np.array([0, 1]))
    test = Split(x={"a": np.array([[5.0, 7.0]])}, y=np.array([1]))
    std_train, std_test = standardize(train, test)
    # Column 0: mean 2, std 1. Column 1 is constant: only centered (std floored to 1).
    np.testing.assert_allclose(std_train.x["a"], [[-1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(std_test.x["a"], [[3.0, 2.0]])
    assert std_test.x["a"].dtype == np.float32
    np.testing.assert_array_equal(std_test.y, [1])


def test_load_dataset_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match="mfeat") as info:
        load_dataset("nope", 0, {}, None)
    assert info.value.field == "data.name"
    with pytest.raises(ConfigError, match="allowed: label, n_samples") as info:
        load_dataset("synthetic_pid", 0, {"bogus": 1}, None)
    assert info.value.field == "data.params.bogus"
    with pytest.raises(ConfigError) as info:
        load_dataset("synthetic_pid", 0, {}, ["m3"])
    assert info.value.field == "data.modalities"


def test_load_dataset_passes_params_and_selects() -> None:
    data = load_dataset("synthetic_pid", 3, {"n_samples": 50, "dim": 4}, ["m2"])
    assert data.modalities == ("m2",)
    assert data.input_shape("m2") == (4,)
    assert len(data.train) + len(data.test) == 50


@pytest.mark.parametrize("n", [1, 5, 4096, 4097, 9000])
def test_standardize_in_blocks_is_numpys_one_reduction_bit_for_bit(n) -> None:
    rng = np.random.default_rng(n)
    a = (rng.normal(size=(n, 7)) * rng.uniform(0, 50, 7) + 7).astype(np.float32)
    a[:, 0] = 3.0  # a constant feature: only centered
    t = rng.normal(size=(4, 7)).astype(np.float32)
    train, test = standardize(Split(x={"c": a, "f": np.asfortranarray(a)}, y=np.zeros(n)),
                              Split(x={"c": t, "f": t}, y=np.zeros(4)))
    mean, std = a.mean(axis=0, dtype=np.float64), a.std(axis=0, dtype=np.float64)
    std = np.where(std < 1e-8, 1.0, std)
    for name in ("c", "f"):
        assert np.array_equal(train.x[name], ((a - mean) / std).astype(np.float32))
        assert np.array_equal(test.x[name], ((t - mean) / std).astype(np.float32))
