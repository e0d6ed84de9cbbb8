"""Run folders: resolved config, per-round metrics, results — every file written atomically
(temp file + rename), so an interrupted run never leaves a half-written result."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from parsefl.errors import ConfigError


def atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes files private; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Rows may differ in keys; the header is the union in first-seen order."""
    header: list[str] = []
    for row in rows:
        header += [k for k in row if k not in header]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, buf.getvalue())


def check_out_dir(path: Path | None, field: str = "--out") -> None:
    """Refuse an output folder that exists as a file (or anything but a folder), or that lies
    under one, before anything runs; ``None`` (a default folder to come) passes."""
    for at in (path, *path.parents) if path is not None else ():
        if os.path.lexists(at):  # the nearest thing that exists decides
            if not at.is_dir():
                raise ConfigError(field, f"{at} exists and is not a folder; give a folder "
                                  "(new or existing)")
            return


def default_run_dir(method: str, dataset: str, seed: int, root: Path = Path("runs")) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = root / f"{method}-{dataset}-s{seed}-{stamp}"
    path, k = base, 1
    while path.exists():
        path, k = base.with_name(f"{base.name}-{k}"), k + 1
    return path
