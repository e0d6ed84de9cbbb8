"""Tests of the synthetic PID dataset."""

from __future__ import annotations

import numpy as np
import pytest

from parsefl.data import load_dataset, synthetic_pid_labels, synthetic_pid_latents
from parsefl.data.synthetic import synthetic_pid
from parsefl.errors import ConfigError

RULES = {
    "redundancy": lambda z: z["r"],
    "uniqueness": lambda z: z["u1"],
    "synergy": lambda z: z["s1"] ^ z["s2"],
    "mixed": lambda z: 4 * z["r"] + 2 * z["u1"] + (z["s1"] ^ z["s2"]),
}


def test_default_shapes_and_classes() -> None:
    data = synthetic_pid(0)
    assert data.modalities == ("m1", "m2")
    assert (len(data.train), len(data.test)) == (1600, 400)
    assert data.input_shape("m1") == (16,) and data.input_shape("m2") == (16,)
    assert data.n_classes == 8 and len(data.class_names) == 8
    np.testing.assert_array_equal(np.unique(data.train.y), np.arange(8))
    assert data.train.x["m1"].dtype == np.float32 and data.train.y.dtype == np.int64


def test_custom_sizes() -> None:
    data = synthetic_pid(1, label="synergy", n_samples=100, dim=5, test_fraction=0.3)
    assert (len(data.train), len(data.test)) == (70, 30)
    assert data.input_shape("m2") == (5,)
    assert data.n_classes == 2


@pytest.mark.parametrize("label", list(RULES))
def test_labels_follow_rule_on_latents(label: str) -> None:
    data = synthetic_pid(7, label=label, n_samples=500)
    latents = synthetic_pid_latents(7, 500)
    assert set(latents) == {"r", "u1", "u2", "s1", "s2"}
    expected = RULES[label](latents)
    n_train = len(data.train)
    np.testing.assert_array_equal(data.train.y, expected[:n_train])
    np.testing.assert_array_equal(data.test.y, expected[n_train:])
    np.testing.assert_array_equal(synthetic_pid_labels(latents, label), expected)


def test_latents_are_fair_bits() -> None:
    latents = synthetic_pid_latents(0, 4000)
    for bits in latents.values():
        assert set(np.unique(bits)) == {0, 1}
        assert abs(bits.mean() - 0.5) < 0.03


def test_same_seed_same_data_other_seed_differs() -> None:
    a, b, c = synthetic_pid(5), synthetic_pid(5), synthetic_pid(6)
    for m in ("m1", "m2"):
        np.testing.assert_array_equal(a.train.x[m], b.train.x[m])
        np.testing.assert_array_equal(a.test.x[m], b.test.x[m])
        assert not np.allclose(a.train.x[m], c.train.x[m])
    np.testing.assert_array_equal(a.train.y, b.train.y)


def test_train_split_is_standardized() -> None:
    data = synthetic_pid(2)
    for m in data.modalities:
        np.testing.assert_allclose(data.train.x[m].mean(axis=0), 0.0, atol=1e-5)
        np.testing.assert_allclose(data.train.x[m].std(axis=0), 1.0, atol=1e-4)


def _r_squared(x: np.ndarray, target: np.ndarray) -> float:
    design = np.hstack([x, np.ones((len(x), 1))])
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    residual = target - design @ coef
    return 1.0 - residual.var() / target.var()


def test_modalities_see_only_their_bits() -> None:
    data = synthetic_pid(3, n_samples=1000, noise=0.0, test_fraction=0.5)
    z = {k: v[: len(data.train)] for k, v in synthetic_pid_latents(3, 1000).items()}
    m1, m2 = data.train.x["m1"], data.train.x["m2"]
    # Without noise each modality is an exact linear image of its own three +-1 bits ...
    for bit in ("r", "u1", "s1"):
        assert _r_squared(m1, z[bit].astype(float)) > 0.999
    assert _r_squared(m2, z["u2"].astype(float)) > 0.999
    # ... and carries nothing linear about the other modality's unique or synergy bit.
    assert _r_squared(m2, z["u1"].astype(float)) < 0.05
    assert _r_squared(m1, z["s2"].astype(float)) < 0.05


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("label", "both"),
        ("n_samples", 1),
        ("n_samples", 10.5),
        ("n_samples", True),
        ("dim", 0),
        ("noise", -0.1),
        ("noise", "loud"),
        ("test_fraction", 0.0),
        ("test_fraction", 1.0),
    ],
)
def test_bad_params_name_the_field(key: str, value: object) -> None:
    with pytest.raises(ConfigError) as info:
        load_dataset("synthetic_pid", 0, {key: value}, None)
    assert info.value.field == f"data.params.{key}"


def test_test_fraction_must_leave_training_samples() -> None:
    with pytest.raises(ConfigError, match="no training samples") as info:
        synthetic_pid(0, n_samples=2, test_fraction=0.9)
    assert info.value.field == "data.params.test_fraction"
