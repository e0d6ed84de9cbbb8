"""Manifests: what a run folder's artifacts must be before anything reads them.

A manifest is a small JSON file written **last** and atomically beside the files it covers
(a checkpoint part in ``state/round_N/``, a rank's summary in ``logs/``, ``results.json``). It
holds, per file, the SHA-256 and the size, and for safetensors files the name, dtype and shape
of every tensor; and ``meta``: what the file set belongs to (its kind, the run fingerprint, the
round, the rank, the agents). With keys it is signed by one of the writing rank's agents.

:func:`unseal` checks a manifest before a byte of payload is read: the manifest itself bounded
(size, depth, shape), its ``meta`` equal to what the reader expects (so a folder renamed to
another round, or a file of another rank, is refused), every file's size and hash, and the
signature when the reader holds the keys. What this proves depends on the keys: **signed**,
that a trusted agent of the writing rank wrote exactly these bytes; **unsigned**, only that the
files are those the manifest lists — which stops corruption and edits that leave the manifest
alone, not someone who rewrites the manifest too (docs/distributed.md, "Trust model").
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parsefl.errors import ConfigError

FORMAT = "parsefl-manifest/1"
MAX_MANIFEST = 1 << 24  # bytes: a manifest lists files, it never nears this
MAX_HEADER = 1 << 24  # bytes of a safetensors JSON header we agree to parse
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")  # a file in the manifest's own folder, no path
_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Signer:
    """Who signs: a local agent of the writing process and the keys that hold its private key
    (:class:`parsefl.security.keys.Identities`)."""

    ids: Any
    agent: int

    def sign(self, data: bytes) -> dict[str, Any]:
        return {"signer": self.agent, "cert": self.ids.fingerprints[self.agent],
                "sig": self.ids.sign(self.agent, data).hex()}


@dataclass(frozen=True)
class Sealed:
    """A manifest that passed :func:`unseal`: its files (name -> entry) and whether a trusted
    signature covered it (``signer``: the agent, else None)."""

    files: dict[str, dict[str, Any]]
    meta: dict[str, Any]
    signer: int | None


def _digest(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def tensor_layout(path: Path) -> dict[str, list]:
    """``{name: [dtype, shape]}`` from a safetensors file's header, without reading tensors
    (the header is bounded before it is parsed)."""
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) != 8:
            raise ValueError("shorter than a safetensors header")
        (n,) = struct.unpack("<Q", head)
        if n > MAX_HEADER:
            raise ValueError(f"safetensors header of {n} bytes")
        data = json.loads(fh.read(n))
    if not isinstance(data, dict):
        raise ValueError("safetensors header is not a mapping")
    return {k: [v["dtype"], list(v["shape"])] for k, v in sorted(data.items())
            if k != "__metadata__"}


def _canonical(manifest: Mapping[str, Any]) -> bytes:
    return json.dumps({k: v for k, v in manifest.items() if k not in ("sig", "signer", "cert")},
                      sort_keys=True, separators=(",", ":")).encode()


def seal(folder: Path, name: str, files: Iterable[str], meta: Mapping[str, Any],
         signer: Signer | None = None) -> None:
    """Write the manifest ``folder/name`` over ``files`` (names in ``folder``), atomically."""
    from parsefl.experiments.run.rundir import atomic_write

    entries = {}
    for f in sorted(set(files)):
        path = folder / f
        entry: dict[str, Any] = {"sha256": _digest(path), "bytes": path.stat().st_size}
        if f.endswith(".safetensors"):
            entry["tensors"] = tensor_layout(path)
        entries[f] = entry
    manifest: dict[str, Any] = {"format": FORMAT, "meta": dict(meta), "files": entries}
    if signer is not None:
        manifest.update(signer.sign(_canonical(manifest)))
    atomic_write(folder / name, json.dumps(manifest, sort_keys=True) + "\n")


def unseal(folder: Path, name: str, expect: Mapping[str, Any], field: str, *,
           ids: Any = None, signers: Iterable[int] = (), require: Iterable[str] = ()
           ) -> Sealed:
    """Check ``folder/name`` and the files it lists (see the module docstring); raise
    :class:`ConfigError` on ``field`` naming the file at the first mismatch.

    ``expect``: entries of ``meta`` that must be equal; ``require``: files it must list;
    ``ids`` and ``signers``: when given, the manifest must be signed by one of ``signers``
    with a certificate of ``ids`` (an unsigned or wrongly signed manifest is refused)."""
    from parsefl.runtime.wire import WireError, loads_bounded

    path = folder / name

    def refuse(why: str) -> ConfigError:
        return ConfigError(field, f"{path}: {why}; nothing was read from the files it covers")

    try:
        if path.is_symlink() or not path.is_file():
            raise refuse("missing or not a regular file (the manifest is written last: "
                         "an incomplete or tampered artifact)")
        if path.stat().st_size > MAX_MANIFEST:
            raise refuse(f"larger than {MAX_MANIFEST} bytes")
        manifest = loads_bounded(path.read_bytes())
    except (OSError, WireError) as err:
        raise refuse(f"not a readable manifest ({err})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT \
            or not isinstance(manifest.get("meta"), dict) \
            or not isinstance(manifest.get("files"), dict):
        raise refuse(f"not a {FORMAT} manifest")
    meta, files = manifest["meta"], manifest["files"]
    for key, want in expect.items():
        if meta.get(key) != want:
            raise refuse(f"written for {key} {meta.get(key)!r}, expected {want!r}")
    missing = sorted(set(require) - set(files))
    if missing:
        raise refuse(f"does not cover {', '.join(missing)}")
    signer = _check_signature(manifest, ids, set(signers), refuse)
    for f, entry in files.items():
        ok = isinstance(f, str) and _NAME.fullmatch(f) and f != name \
            and isinstance(entry, dict) and isinstance(entry.get("sha256"), str) \
            and _HEX.fullmatch(entry["sha256"]) and type(entry.get("bytes")) is int
        if not ok:
            raise refuse(f"lists a malformed entry {str(f)[:40]!r}")
        target = folder / f
        try:
            if target.is_symlink() or not target.is_file():
                raise refuse(f"{f} is missing or not a regular file")
            if target.stat().st_size != entry["bytes"]:
                raise refuse(f"{f} has {target.stat().st_size} bytes, the manifest "
                             f"{entry['bytes']}")
            if _digest(target) != entry["sha256"]:
                raise refuse(f"{f} is not the file the manifest lists (SHA-256 differs)")
            if "tensors" in entry and entry["tensors"] != tensor_layout(target):
                raise refuse(f"{f}'s tensors are not those the manifest lists")
        except (OSError, ValueError) as err:
            raise refuse(f"{f} cannot be read ({err})") from None
    return Sealed(files, meta, signer)


def _check_signature(manifest: Mapping[str, Any], ids: Any, signers: set[int],
                     refuse: Any) -> int | None:
    """The verified signer, None for an unsigned manifest read without keys."""
    if ids is None:
        return None
    agent, cert, sig = (manifest.get(k) for k in ("signer", "cert", "sig"))
    if type(agent) is not int or not isinstance(sig, str) or not isinstance(cert, str):
        raise refuse("not signed, and this run is verified with keys")
    if agent not in signers or ids.fingerprints.get(agent) != cert:
        raise refuse(f"signed by agent {agent}, who may not sign it")
    try:
        good = ids.verify(agent, bytes.fromhex(sig), _canonical(manifest))
    except ValueError:
        good = False
    if not good:
        raise refuse(f"agent {agent}'s signature does not verify (the manifest was changed)")
    return agent
