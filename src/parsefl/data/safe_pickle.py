"""The one bounded use of pickle: numpy arrays out of an old gzip'd pandas pickle.

parsefl never unpickles foreign files, with one exception: the HAPT recordings ship only as
a gzip'd pickle of pandas DataFrames (see :mod:`parsefl.data.hapt`). Current pandas cannot
load that file anyway, and a pickle may name any callable, so it is read here with an
allow-list unpickler that never imports or calls anything but:

* numpy's array reconstructors (``_reconstruct``, ``ndarray``, ``dtype``) and
  ``_codecs.encode`` restricted to latin-1 (how protocol 2 stores the raw array bytes);
* ``slice`` (pandas stores block placements as slices);
* every ``pandas`` class or function, and ``copyreg._reconstructor`` / ``object``, replaced
  by inert stand-ins: calling one only records its name and arguments (:class:`Record`).

Any other global (``os.system``, ``builtins.eval``, ...) is refused with one
:class:`~parsefl.errors.DataError` before anything is called. The decompressed size is
bounded, and a truncated or malformed file also ends in one DataError. The result is
converted to plain arrays once and cached as ``.npz``; nothing is unpickled after that.
"""

from __future__ import annotations

import codecs
import gzip
import io
import pickle
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from parsefl.errors import DataError

MAX_DECOMPRESSED = 128 << 20
"""Refuse a gzip stream that inflates past this many bytes (HAPT's is 100.5 MB)."""


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol 2 uses it for bytes; any other codec is refused."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode with codec {encoding!r} is not allowed")
    return codecs.encode(text, "latin1")


# numpy's own array reconstructor, wherever this numpy keeps it (numpy.core before 2.0).
_RECONSTRUCT = np.zeros(0).__reduce__()[0]
_MAX_EMPTY_SHAPE = 1 << 16


class _NdarrayType:
    """``numpy.ndarray`` as the pickle names it: usable only as ``_reconstruct``'s subtype,
    so a pickle cannot call ``ndarray(huge_shape)`` itself."""


_NDARRAY = _NdarrayType()


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's ``_reconstruct`` for plain ndarrays of a small placeholder shape only.

    Pickled arrays are made empty here and filled by ``__setstate__`` from the pickle's own
    bytes; a large placeholder shape would only serve to exhaust memory.
    """
    size = np.prod(shape, dtype=np.float64) if isinstance(shape, tuple) else -1.0
    if subtype is not _NDARRAY or not 0 <= size <= _MAX_EMPTY_SHAPE:
        raise pickle.UnpicklingError(f"_reconstruct({subtype!r}, {shape!r}) is not allowed")
    return _RECONSTRUCT(np.ndarray, shape, dtype)


_ARRAY_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
    ("builtins", "slice"): slice,
    ("__builtin__", "slice"): slice,
}


class Record:
    """An inert stand-in for an object the pickle builds from a pandas class.

    Attributes:
        kind: ``module.name`` of the class or function the pickle named.
        args: The arguments it would have been called with.
        state: What the pickle's BUILD opcode passed (``__setstate__``), or None.
    """

    __slots__ = ("kind", "args", "state")

    def __init__(self, kind: str, args: tuple[Any, ...] = ()) -> None:
        self.kind, self.args, self.state = kind, args, None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"Record({self.kind})"


class StandIn:
    """A tolerated class or function: calling it returns a :class:`Record`, nothing more."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __call__(self, *args: Any) -> Record:
        return Record(self.kind, args)


def _inert_reconstructor(cls: Any, base: Any, state: Any) -> Record:
    """``copyreg._reconstructor`` (protocol 2's object builder), for stand-ins only."""
    if not isinstance(cls, StandIn):
        raise pickle.UnpicklingError("copyreg._reconstructor of a non-pandas class")
    return Record(cls.kind, (state,))


class ArrayUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the allow-listed globals (see the module docstring)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ARRAY_GLOBALS:
            return _ARRAY_GLOBALS[module, name]
        if module in ("copyreg", "copy_reg") and name == "_reconstructor":
            return _inert_reconstructor
        if module in ("builtins", "__builtin__") and name == "object":
            return StandIn("builtins.object")
        if module == "pandas" or module.startswith("pandas."):
            return StandIn(f"{module}.{name}")
        raise _Refused(f"{module}.{name}")


class _Refused(pickle.UnpicklingError):
    """A global outside the allow-list; carries its dotted name."""


def load_arrays_pickle(path: Path, limit: int = MAX_DECOMPRESSED) -> Any:
    """Unpickle the gzip'd pickle at ``path`` with :class:`ArrayUnpickler`.

    Args:
        path: A gzip file holding one pickle.
        limit: Largest decompressed size accepted, in bytes.

    Returns:
        The unpickled object: containers, numbers, strings, numpy arrays and Records.

    Raises:
        DataError: The pickle names a global outside the allow-list, inflates past
            ``limit``, or is truncated or malformed.
    """
    try:
        with gzip.open(path, "rb") as stream:
            data = stream.read(limit + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path.name}: not a complete gzip file ({exc})") from exc
    if len(data) > limit:
        raise DataError(f"{path.name}: decompresses to more than {limit} bytes; refused")
    try:
        return ArrayUnpickler(io.BytesIO(data)).load()
    except _Refused as exc:
        raise DataError(f"{path.name}: the pickle names {exc}, which is not allowed (only "
                        "numpy array reconstructors and inert pandas records are)") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, struct.error, MemoryError, RecursionError) as exc:
        raise DataError(f"{path.name}: truncated or malformed pickle ({exc})") from None
