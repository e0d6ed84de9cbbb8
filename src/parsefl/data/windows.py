"""Fixed-length windows over labelled recordings, and splits that keep windows apart in time.

* :func:`label_windows`: windows of ``length`` samples every ``step`` samples over one
  recording; each takes the majority label of its samples (ties go to the smaller label);
  windows holding an unlabelled sample (label < 1) are dropped.
* :func:`last_fraction`: per group (e.g. user and class), the last fraction of the
  windows in recording order is the test split; :func:`drop_overlaps` then drops the train
  windows that share samples with a test window, so no sample is seen on both sides.
"""

from __future__ import annotations

import numpy as np

from parsefl.errors import DataError


def label_windows(labels: np.ndarray, length: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Start index and majority label of every fully labelled window of one recording.

    Args:
        labels: One integer label per sample; values < 1 mean unlabelled.
        length: Samples per window.
        step: Samples between the starts of consecutive windows.

    Returns:
        ``(starts, majority)``: int64 arrays, one entry per kept window, in time order.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if length < 1 or step < 1:
        raise DataError(f"window length {length} and step {step} must be >= 1")
    if len(labels) < length:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    starts = np.arange(0, len(labels) - length + 1, step, dtype=np.int64)
    inside = labels[starts[:, None] + np.arange(length)]
    keep = (inside >= 1).all(axis=1)
    starts, inside = starts[keep], inside[keep]
    if not len(starts):
        return starts, starts.copy()
    counts = np.zeros((len(starts), int(inside.max()) + 1), dtype=np.int64)
    np.add.at(counts, (np.repeat(np.arange(len(starts)), length), inside.ravel()), 1)
    # argmax returns the first maximum: ties go to the smaller label.
    return starts, counts.argmax(axis=1).astype(np.int64)


def last_fraction(groups: np.ndarray, fraction: float) -> np.ndarray:
    """Boolean mask of the last ``round(fraction * n)`` windows of each group.

    ``groups`` lists one group id per window, windows in recording order. A group of two or
    more windows keeps at least one on each side; a single window stays in train.
    """
    groups = np.asarray(groups)
    test = np.zeros(len(groups), dtype=bool)
    for group in np.unique(groups):
        members = np.flatnonzero(groups == group)
        n_test = int(np.floor(fraction * len(members) + 0.5))
        n_test = min(max(n_test, 1), len(members) - 1) if len(members) > 1 else 0
        if n_test:
            test[members[-n_test:]] = True
    return test


def drop_overlaps(
    recording: np.ndarray, starts: np.ndarray, test: np.ndarray, length: int
) -> np.ndarray:
    """Mask of the train windows (``~test``) that share no sample with a test window.

    Args:
        recording: Recording id of each window.
        starts: Start sample of each window within its recording.
        test: Boolean test mask over the windows.
        length: Samples per window.
    """
    keep = ~np.asarray(test, dtype=bool)
    for rec in np.unique(recording):
        here = recording == rec
        test_starts = np.sort(starts[here & test])
        if not len(test_starts):
            continue
        train_idx = np.flatnonzero(here & keep)
        # The nearest test start at or after / before each train window decides overlap.
        pos = np.searchsorted(test_starts, starts[train_idx])
        after = test_starts[np.minimum(pos, len(test_starts) - 1)]
        before = test_starts[np.maximum(pos - 1, 0)]
        near = np.minimum(np.abs(after - starts[train_idx]), np.abs(starts[train_idx] - before))
        keep[train_idx[near < length]] = False
    return keep
