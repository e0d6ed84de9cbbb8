"""Checks of a user's .npz archive made before any array is read: from the zip directory and
each member's .npy header only, so that a deflate bomb or a header declaring a huge shape is
refused with its size instead of exhausting memory."""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np

from parsefl.errors import DataError


def check_members(path: Path, read_errors: tuple, budget: int | None = None) -> None:
    """Refuse, from the zip directory and each member's .npy header alone (nothing is
    decompressed beyond the header), archives whose arrays would not fit in memory: the total
    uncompressed size, and every declared shape against the bytes the member holds.

    ``budget`` defaults to a quarter of the free memory: the arrays are copied to float32,
    split, standardized and made tensors.
    """
    from parsefl.config_checks import available_memory

    budget = available_memory() // 4 if budget is None else budget
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            total = sum(info.file_size for info in infos)
            if total > budget:
                raise DataError(f"{path}: its arrays unpack to {_size(total)}, more than the "
                                f"{_size(budget)} this machine can load")
            for info in infos:
                if info.filename.endswith(".npy"):
                    _check_member(path, zf, info, read_errors)
    except DataError:
        raise
    except read_errors as exc:
        raise DataError(f"{path}: cannot be read as .npz ({exc})") from exc


def _check_member(path: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo, read_errors) -> None:
    name = info.filename.removesuffix(".npy")
    try:
        with zf.open(info) as fh:
            _check_header(path, name, info, fh)
    except DataError:
        raise
    except read_errors as exc:
        raise DataError(f"{path}: array {name!r} cannot be loaded (bad .npy header: {exc})") \
            from exc


def _check_header(path: Path, name: str, info: zipfile.ZipInfo, fh) -> None:
    version = np.lib.format.read_magic(fh)
    read = {(1, 0): np.lib.format.read_array_header_1_0,
            (2, 0): np.lib.format.read_array_header_2_0}.get(version)
    if read is None:
        raise DataError(f"{path}: array {name!r} cannot be loaded (.npy version {version})")
    shape, _, dtype = read(fh)
    if dtype.hasobject:
        raise DataError(f"{path}: array {name!r} cannot be loaded without pickle (it holds "
                        "Python objects); store numbers or fixed-width strings, not objects")
    need = math.prod(shape) * dtype.itemsize
    if need > info.file_size:
        raise DataError(f"{path}: array {name!r} declares shape {shape} of {dtype} "
                        f"({_size(need)}) but holds only {_size(info.file_size)}")


def _size(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"
