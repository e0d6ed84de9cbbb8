"""HAPT as a dataset: 2.56 s windows of accelerometer vs gyroscope, one agent per person.

The recordings come from :mod:`parsefl.data.hapt_source` (fetched, verified and converted
once). Windows: 128 samples every 64 (50 % overlap, as UCI-HAR) over each session; a window
takes the majority label of its samples and is dropped when it holds an unlabelled sample
(:func:`parsefl.data.windows.label_windows`). Classes: activities 1-6 by default;
``transitions: true`` adds the six postural transitions 7-12. Windows whose majority is
not a chosen class are dropped; labels are remapped to ``0..C-1``.

Splits (``split``):

* ``time`` (default): for every user and class, the last ``test_fraction`` (default 0.25)
  of that user's windows of that class, in recording order, are the test split. Per class,
  because the protocol runs the activities in a fixed order (a plain "last quarter" would
  hold only the walking classes). Train windows sharing samples with a test window are
  dropped, so no sample is on both sides.
* ``users``: UCI-HAR's own held-out volunteers (2, 4, 9, 10, 12, 13, 18, 20, 24) are the
  test split; the other 21 users train.

Modalities ``acc`` (accelerometer x/y/z) and ``gyro`` (gyroscope x/y/z), each ``(3, 128)``,
every channel standardized with the train split's statistics. ``train_agent`` is each train
window's user (0..29), for the ``natural`` partition.
"""

from __future__ import annotations

import numpy as np

from parsefl.data._checks import check_float, check_int
from parsefl.data.base import MultimodalDataset, Split
from parsefl.data.hapt_source import fetch_hapt, load_sessions
from parsefl.data.series import standardize_channels
from parsefl.data.windows import drop_overlaps, label_windows, last_fraction
from parsefl.errors import ConfigError
from parsefl.registry import DATASETS

MODALITIES: tuple[str, ...] = ("acc", "gyro")
CHANNELS: dict[str, slice] = {"acc": slice(0, 3), "gyro": slice(3, 6)}
LENGTH = 128
STEP = 64
CLASS_NAMES: tuple[str, ...] = (
    "walk", "upstairs", "downstairs", "sit", "stand", "lie",
    "stand-sit", "sit-stand", "sit-lie", "lie-sit", "stand-lie", "lie-stand",
)  # fmt: skip
"""Names of HAPT labels 1..12 (label ``k`` is ``CLASS_NAMES[k - 1]``)."""

TEST_USERS: tuple[int, ...] = (2, 4, 9, 10, 12, 13, 18, 20, 24)
"""UCI-HAR's test volunteers (``split: users``)."""

SPLITS: tuple[str, ...] = ("time", "users")


def make_windows(
    values: np.ndarray,
    labels: np.ndarray,
    session_user: np.ndarray,
    session_length: np.ndarray,
    classes: tuple[int, ...],
) -> dict[str, np.ndarray]:
    """Every kept window of every session, in recording order.

    Args:
        values: ``(N, 6)`` samples of all sessions, concatenated.
        labels: ``(N,)`` label per sample (-1 unlabelled, else 1..12).
        session_user: User of each session.
        session_length: Samples of each session (they sum to N).
        classes: The labels kept; window labels are remapped to their index here.

    Returns:
        ``x`` (W, 6, LENGTH) float32, ``y`` (W,) int64 in ``0..len(classes)-1``, and per
        window ``user``, ``session`` and ``start`` (sample within its session).
    """
    lookup = np.full(max(classes) + 1, -1, dtype=np.int64)
    lookup[list(classes)] = np.arange(len(classes))
    bounds = np.concatenate([[0], np.cumsum(session_length)])
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("x", "y", "user", "session", "start")}
    for s, user in enumerate(session_user):
        lo, hi = int(bounds[s]), int(bounds[s + 1])
        starts, majority = label_windows(labels[lo:hi], LENGTH, STEP)
        mapped = lookup[np.minimum(majority, len(lookup) - 1)]
        keep = (majority < len(lookup)) & (mapped >= 0)
        starts = starts[keep]
        parts["x"].append(values[lo:hi][starts[:, None] + np.arange(LENGTH)].transpose(0, 2, 1))
        parts["y"].append(mapped[keep])
        parts["user"].append(np.full(len(starts), int(user), dtype=np.int64))
        parts["session"].append(np.full(len(starts), s, dtype=np.int64))
        parts["start"].append(starts)
    out = {k: np.concatenate(v) for k, v in parts.items()}
    out["x"] = out["x"].astype(np.float32)
    return out


def test_mask(windows: dict[str, np.ndarray], split: str, test_fraction: float) -> np.ndarray:
    """Which windows are in the test split (see the module docstring)."""
    if split == "users":
        return np.isin(windows["user"], TEST_USERS)
    n_classes = int(windows["y"].max()) + 1 if len(windows["y"]) else 1
    return last_fraction(windows["user"] * n_classes + windows["y"], test_fraction)


def split_windows(
    windows: dict[str, np.ndarray], split: str, test_fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the train and test windows; train windows overlapping a test one dropped."""
    test = test_mask(windows, split, test_fraction)
    train = drop_overlaps(windows["session"], windows["start"], test, LENGTH)
    return np.flatnonzero(train), np.flatnonzero(test)


def _views(x: np.ndarray) -> dict[str, np.ndarray]:
    return {m: x[:, CHANNELS[m]] for m in MODALITIES}


@DATASETS.register(
    "hapt", "HAPT (UCI): phone accelerometer vs gyroscope, 30 people as natural agents"
)
def hapt(
    seed: int, transitions: bool = False, split: str = "time", test_fraction: float = 0.25
) -> MultimodalDataset:
    """HAPT windows: accelerometer vs gyroscope of 30 people, 6 (or 12) classes.

    Args:
        seed: Unused (windows and splits are fixed); validated for uniformity.
        transitions: Also keep the six postural transitions (12 classes).
        split: ``time`` (last fraction of each user's windows per class) or ``users``
            (UCI-HAR's held-out volunteers).
        test_fraction: Test share per user and class for ``split: time``, in (0, 1).

    Returns:
        The dataset with modalities ``acc`` and ``gyro`` of shape ``(3, 128)`` and each
        train window's user (0..29) as ``train_agent``.
    """
    check_int("seed", seed, 0)
    if not isinstance(transitions, bool):
        raise ConfigError("data.params.transitions", f"expected true or false, got {transitions!r}")
    if split not in SPLITS:
        raise ConfigError("data.params.split", f"unknown split {split!r}; allowed: "
                          f"{', '.join(SPLITS)}")
    test_fraction = check_float("data.params.test_fraction", test_fraction, 0.0, 1.0)
    classes = tuple(range(1, 13 if transitions else 7))
    arrays = load_sessions(str(fetch_hapt()))
    windows = make_windows(arrays["values"], arrays["labels"], arrays["session_user"],
                           arrays["session_length"], classes)
    train_idx, test_idx = split_windows(windows, split, test_fraction)
    x, y = windows["x"], windows["y"]
    train, test = standardize_channels(Split(_views(x[train_idx]), y[train_idx]),
                                       Split(_views(x[test_idx]), y[test_idx]))
    return MultimodalDataset(
        name="hapt", modalities=MODALITIES, n_classes=len(classes), train=train, test=test,
        class_names=CLASS_NAMES[: len(classes)], train_agent=windows["user"][train_idx] - 1,
    )
