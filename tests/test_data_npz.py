"""Tests of bring-your-own data: ``npz:PATH`` files, their validation and natural partitions."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from parsefl.data import dataset_slug, load_dataset, partition_indices, resolve_dataset
from parsefl.errors import ConfigError, DataError

N = 60


def _arrays(**overrides: object) -> dict[str, object]:
    """A valid small dataset: 3 string classes, 2 modalities of different shapes."""
    rng = np.random.default_rng(0)
    y = np.array(["cat", "dog", "emu"] * (N // 3))
    arrays: dict[str, object] = {
        "x_audio": rng.normal(size=(N, 2, 5)),
        "x_video": rng.normal(size=(N, 4)).astype(np.float32),
        "y": y,
    }
    arrays.update(overrides)
    return {k: v for k, v in arrays.items() if v is not None}


def _save(tmp_path: Path, **overrides: object) -> str:
    path = tmp_path / "data.npz"
    np.savez(path, **_arrays(**overrides))
    return f"npz:{path}"


def test_round_trip_shapes_classes_and_stratified_split(tmp_path: Path) -> None:
    name = _save(tmp_path)
    data = load_dataset(name, 0, {}, None)
    assert data.name == name and data.modalities == ("audio", "video")
    assert data.input_shape("audio") == (2, 5) and data.input_shape("video") == (4,)
    assert data.class_names == ("cat", "dog", "emu") and data.n_classes == 3
    assert (len(data.train), len(data.test)) == (48, 12)
    np.testing.assert_array_equal(np.bincount(data.test.y), [4, 4, 4])  # stratified
    np.testing.assert_allclose(data.train.x["video"].mean(axis=0), 0.0, atol=1e-5)
    assert data.train_agent is None
    again, other = load_dataset(name, 0, {}, None), load_dataset(name, 1, {}, None)
    np.testing.assert_array_equal(again.test.x["audio"], data.test.x["audio"])
    assert not np.array_equal(other.test.x["audio"], data.test.x["audio"])


def test_params_modalities_and_raw_values(tmp_path: Path) -> None:
    arrays = _arrays()
    name = _save(tmp_path)
    data = load_dataset(name, 0, {"test_fraction": 0.5, "standardize": False}, ["video"])
    assert data.modalities == ("video",) and (len(data.train), len(data.test)) == (30, 30)
    rows = {tuple(r) for r in np.asarray(arrays["x_video"]).tolist()}
    assert all(tuple(r) in rows for r in data.train.x["video"].tolist())
    with pytest.raises(ConfigError) as info:
        load_dataset(name, 0, {"alpha": 1}, None)
    assert info.value.field == "data.params.alpha"
    with pytest.raises(ConfigError) as info:
        load_dataset(name, 0, {"test_fraction": 0.99}, None)
    assert info.value.field == "data.params.test_fraction"


def test_integer_labels_given_split_agents_and_1d_features(tmp_path: Path) -> None:
    y = np.tile(np.arange(3), N // 3)
    split = np.where(np.arange(N) < 45, "train", "test")
    agent = np.arange(N) % 5 + 10
    name = _save(tmp_path, y=y, split=split, agent=agent, x_scalar=np.arange(N, dtype=np.int16))
    data = load_dataset(name, 0, {}, None)
    assert data.class_names == ("0", "1", "2")
    assert data.modalities == ("audio", "video", "scalar") and data.input_shape("scalar") == (1,)
    assert (len(data.train), len(data.test)) == (45, 15)
    np.testing.assert_array_equal(data.train.y, y[:45])
    np.testing.assert_array_equal(data.train_agent, agent[:45])
    np.testing.assert_array_equal(data.select(["video"]).train_agent, agent[:45])
    with pytest.raises(ConfigError, match="has a 'split' array") as info:
        load_dataset(name, 0, {"test_fraction": 0.3}, None)
    assert info.value.field == "data.params.test_fraction"


def test_natural_partition(tmp_path: Path) -> None:
    agent = np.repeat([7, 3, 5, 9], [10, 20, 15, 15])
    split = np.where(np.arange(N) % 5 == 0, "test", "train")
    data = load_dataset(_save(tmp_path, agent=agent, split=split), 0, {}, None)
    parts = partition_indices("natural", data.train.y, 4, 0, {}, groups=data.train_agent)
    # Agent k gets the k-th smallest id: 3, 5, 7, 9.
    for k, ident in enumerate([3, 5, 7, 9]):
        np.testing.assert_array_equal(parts[k], np.flatnonzero(data.train_agent == ident))
    again = partition_indices("natural", data.train.y, 4, 9, {}, groups=data.train_agent)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))
    with pytest.raises(ConfigError, match="4 distinct agent ids but the mix has 3") as info:
        partition_indices("natural", data.train.y, 3, 0, {}, groups=data.train_agent)
    assert info.value.field == "partition.name"
    with pytest.raises(ConfigError, match="agent id 7 has 8 samples") as info:
        partition_indices("natural", data.train.y, 4, 0, {"min_samples": 9},
                          groups=data.train_agent)
    assert info.value.field == "partition.min_samples"
    with pytest.raises(ConfigError) as info:
        partition_indices("natural", data.train.y, 4, 0, {"groups": agent})
    assert info.value.field == "partition.groups"
    # Partitions without a groups parameter simply ignore the groups.
    iid = partition_indices("iid", data.train.y, 4, 0, {}, groups=data.train_agent)
    assert sorted(len(p) for p in iid) == [12, 12, 12, 12]
    assert [len(p) for p in parts] == [16, 12, 8, 12]


def _raw_zip(tmp_path: Path, members: dict[str, bytes]) -> str:
    path = tmp_path / "raw.npz"
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    return f"npz:{path}"


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


OBJECTS = np.array([{"a": 1}] * N, dtype=object)
MALFORMED = [
    ({"y": None}, "missing array 'y'"),
    ({"x_audio": None, "x_video": None}, "no x_<modality> arrays"),
    ({"x_video": np.zeros((N - 1, 4))}, "array 'x_video' has shape \\(59, 4\\)"),
    ({"x_video": np.full((N, 4), np.nan)}, "array 'x_video' has 240 NaN and 0 infinite"),
    ({"x_video": np.where(np.eye(N, 4) > 0, -np.inf, 0.0)}, "has 0 NaN and 4 infinite"),
    ({"x_video": np.full((N, 4), 1e300)}, "array 'x_video' has 0 NaN and 240 infinite"),
    ({"x_Audio": np.zeros((N, 1))}, "arrays 'x_audio' and 'x_Audio' name the same modality"),
    ({"x_a+b": np.zeros((N, 1))}, "array 'x_a\\+b': bad modality name"),
    ({"x_ratio": np.zeros((N, 1))}, "array 'x_ratio': bad modality name"),
    ({"x_": np.zeros((N, 1))}, "array 'x_': bad modality name"),
    ({"labels": np.zeros(N)}, "unknown array 'labels'"),
    ({"x_video": np.array(["a"] * N)}, "array 'x_video' has dtype <U1"),
    ({"x_video": OBJECTS}, "array 'x_video' cannot be loaded without pickle"),
    ({"y": OBJECTS}, "array 'y' cannot be loaded without pickle"),
    ({"y": np.zeros(N)}, "array 'y' has dtype float64"),
    ({"y": np.zeros((N, 1), dtype=int)}, "array 'y' must be 1-D"),
    ({"y": np.arange(N) % 3 - 1}, "array 'y' has negative labels"),
    ({"y": np.arange(N) % 3 * 2}, "never occur"),
    ({"y": np.array(["a", ""] * (N // 2))}, "empty-string labels"),
    ({"y": np.array(["a"] * (N - 1) + ["b"])}, "class 'b' has 1 sample"),
    ({"split": np.array(["train", "val"] * (N // 2))}, "array 'split' has values \\['val'\\]"),
    ({"split": np.zeros(N)}, "array 'split' must be 60 strings"),
    ({"split": np.array(["train"] * N)}, "array 'split' has no 'test' sample"),
    ({"split": np.array(["train"] * (N - 4) + ["test"] * 4),
      "y": np.array(["a", "b"] * (N // 2 - 2) + ["c"] * 4)}, "class 'c' has no train sample"),
    ({"agent": np.arange(N) - 1}, "array 'agent' has negative ids"),
    ({"agent": np.zeros(N)}, "array 'agent' must be 60 integers"),
]


@pytest.mark.parametrize(("overrides", "message"), MALFORMED)
def test_malformed_file_names_the_array(
    tmp_path: Path, overrides: dict[str, object], message: str
) -> None:
    name = _save(tmp_path, **overrides)
    with pytest.raises(DataError, match=message) as info:
        load_dataset(name, 0, {}, None)
    assert str(tmp_path / "data.npz") in str(info.value)


def test_archive_level_problems(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        load_dataset(f"npz:{tmp_path / 'missing.npz'}", 0)
    (tmp_path / "plain.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="plain.npz: not a .npz file"):
        load_dataset(f"npz:{tmp_path / 'plain.npz'}", 0)
    np.save(tmp_path / "single.npy", np.zeros(3))
    with pytest.raises(DataError, match="not a .npz file"):
        load_dataset(f"npz:{tmp_path / 'single.npy'}", 0)
    y = _npy(np.arange(N) % 2)
    text = _raw_zip(tmp_path, {"y.npy": y, "x_a.npy": _npy(np.zeros(N)), "notes.txt": b"hi"})
    with pytest.raises(DataError, match="entry 'notes.txt' is not a numpy array"):
        load_dataset(text, 0)
    with pytest.warns(UserWarning, match="Duplicate name"):
        twice = _raw_zip(tmp_path, {"y.npy": y, "x_a.npy": _npy(np.zeros(N))})
        with zipfile.ZipFile(twice[4:], "a") as archive:
            archive.writestr("x_a.npy", _npy(np.ones(N)))
    with pytest.raises(DataError, match="array 'x_a' appears twice"):
        load_dataset(twice, 0)
    broken = _raw_zip(tmp_path, {"y.npy": y, "x_a.npy": b"\x93NUMPY garbage"})
    with pytest.raises(DataError, match="array 'x_a' cannot be loaded"):
        load_dataset(broken, 0)


def test_scheme_names_and_slugs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown dataset scheme 'csv'") as info:
        resolve_dataset("csv:/x.csv")
    assert info.value.field == "data.name"
    with pytest.raises(ConfigError, match="npz: needs a path"):
        resolve_dataset("npz:  ")
    with pytest.raises(ConfigError, match="unknown dataset 'nope'"):
        resolve_dataset("nope")
    assert callable(resolve_dataset(_save(tmp_path)))
    assert dataset_slug("npz:/a/b/my data.v2.npz") == "npz-my_data.v2"
    assert dataset_slug("mfeat") == "mfeat"
