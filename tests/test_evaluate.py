"""Macro-F1 without scikit-learn: equal to ``sklearn.metrics.f1_score`` (macro, every label,
zero_division=0) on random predictions, classes absent from the labels or the predictions
included, and on a case worked by hand."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from parsefl.runtime.evaluate import macro_f1


def test_a_hand_worked_case():
    # class 0: TP 1, FP 0, FN 1 -> 2/3; class 1: TP 1, FP 1, FN 1 -> 2/4; class 2: TP 0,
    # FP 1, FN 0 -> 0; class 3: neither present nor predicted -> 0 (zero_division=0)
    y = np.array([0, 0, 1, 1])
    pred = np.array([0, 1, 1, 2])
    assert macro_f1(y, pred, 4) == pytest.approx((2 / 3 + 2 / 4 + 0 + 0) / 4, abs=1e-15)

@pytest.mark.parametrize("seed", range(20))
def test_equals_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    n_classes = int(rng.integers(2, 9))
    n = int(rng.integers(1, 60))
    y = rng.integers(0, n_classes - int(rng.integers(0, 2)), n)  # the last class may be absent
    pred = np.where(rng.random(n) < 0.5, y, rng.integers(0, n_classes, n))
    want = f1_score(y, pred, average="macro", labels=list(range(n_classes)), zero_division=0)
    assert macro_f1(y, pred, n_classes) == pytest.approx(want, rel=1e-12, abs=1e-15)
