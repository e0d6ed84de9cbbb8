"""Where the arrays sit in the HAPT pickle, once pandas objects are inert records.

The pickle holds ``{user (1..30): [DataFrame per session]}``. Each DataFrame has the columns
:data:`COLUMNS` plus ``sequence`` (0..T-1) and ``label``, kept by pandas' BlockManager as a
float block (6, T) and an int block (2, T). Unpickled with
:class:`parsefl.data.safe_pickle.ArrayUnpickler`, a DataFrame is a
:class:`~parsefl.data.safe_pickle.Record` whose state ``_data`` is the BlockManager record;
its state's fourth item ``{"0.14.1": {"axes": [columns, rows], "blocks": [{"values",
"mgr_locs"}]}}`` says which rows of which block are which column. This module reads that
and checks every part of it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from parsefl.data.safe_pickle import Record
from parsefl.errors import DataError

COLUMNS: tuple[str, ...] = ("acc-x", "acc-y", "acc-z", "gyro-x", "gyro-y", "gyro-z")
"""The six sensor channels, in the order of the cached ``values`` columns."""

N_USERS = 30
LABELS = frozenset([-1, *range(1, 13)])

Session = tuple[int, np.ndarray, np.ndarray]
"""``(user 1..30, values (T, 6) float64, labels (T,) int64)``."""


def _need(condition: bool, what: str, problem: str) -> None:
    if not condition:
        raise DataError(f"{what}: {problem}")


def _record(obj: Any, kind_suffix: str, what: str) -> Record:
    _need(isinstance(obj, Record) and obj.kind.endswith(kind_suffix), what,
          f"expected a pandas {kind_suffix}, got {obj!r}")
    return obj


def _column_names(index: Any, what: str) -> list[str]:
    """The names in a pickled pandas Index (``_new_Index(Index, {"data": array, ...})``)."""
    record = _record(index, "_new_Index", what)
    fields = record.args[1] if len(record.args) == 2 else None
    _need(isinstance(fields, dict) and isinstance(fields.get("data"), np.ndarray), what,
          "column index without a data array")
    return [str(name) for name in fields["data"].tolist()]


def frame_columns(frame: Any, what: str) -> dict[str, np.ndarray]:
    """Column name -> 1-D array of one pickled DataFrame record."""
    state = _record(frame, "DataFrame", what).state
    _need(isinstance(state, dict) and "_data" in state, what, "DataFrame without _data")
    manager = _record(state["_data"], "BlockManager", what).state
    _need(isinstance(manager, tuple) and len(manager) == 4 and isinstance(manager[3], dict),
          what, "BlockManager state is not (axes, values, items, extra)")
    layout = manager[3].get("0.14.1")
    _need(isinstance(layout, dict) and {"axes", "blocks"} <= set(layout), what,
          "BlockManager without the 0.14.1 layout")
    names = _column_names(layout["axes"][0], what)
    columns: dict[str, np.ndarray] = {}
    for block in layout["blocks"]:
        values, locs = block.get("values"), block.get("mgr_locs")
        _need(isinstance(values, np.ndarray) and values.ndim == 2 and isinstance(locs, slice),
              what, "block without a 2-D values array and a slice placement")
        placed = names[locs]
        _need(len(placed) == values.shape[0], what, f"block of {values.shape[0]} rows placed "
              f"at {len(placed)} columns")
        columns.update(zip(placed, values, strict=True))
    return columns


def session_arrays(frame: Any, user: int, what: str) -> Session:
    """``(user, values (T, 6), labels (T,))`` of one session, after checking its columns."""
    columns = frame_columns(frame, what)
    missing = [c for c in (*COLUMNS, "sequence", "label") if c not in columns]
    _need(not missing, what, f"missing columns {missing}")
    labels = np.asarray(columns["label"], dtype=np.int64)
    length = len(labels)
    _need(np.array_equal(columns["sequence"], np.arange(length)), what,
          "sequence is not 0..T-1 (samples out of time order)")
    _need(set(np.unique(labels).tolist()) <= LABELS, what, "labels outside -1, 1..12")
    values = np.stack([np.asarray(columns[c], dtype=np.float64) for c in COLUMNS], axis=1)
    _need(bool(np.isfinite(values).all()), what, "non-finite sensor values")
    return user, values, labels


def sessions_from_pickle(obj: Any, what: str) -> list[Session]:
    """Every session of the unpickled ``{user: [DataFrame, ...]}``, users in order."""
    _need(isinstance(obj, dict) and sorted(obj) == list(range(1, N_USERS + 1)), what,
          f"expected a dict of users 1..{N_USERS}")
    sessions = []
    for user in sorted(obj):
        frames = obj[user]
        _need(isinstance(frames, list) and frames, what, f"user {user}: no session list")
        for number, frame in enumerate(frames):
            sessions.append(session_arrays(frame, user, f"{what} user {user} session {number}"))
    return sessions
