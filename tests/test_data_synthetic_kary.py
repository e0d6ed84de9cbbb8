"""Tests of the synthetic PID options ``arity`` (K-ary latents) and ``distractors``, and that
the defaults still give the original binary data bit for bit."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest

from parsefl.data import load_dataset, synthetic_pid_labels, synthetic_pid_latents
from parsefl.data.synthetic import LABELS, class_names, synthetic_pid
from parsefl.errors import ConfigError

# Computed with the code before `arity`/`distractors` existed: sha256 over, per split
# (train, test), each modality's features rounded to 4 decimals (as float64, -0.0 -> 0.0)
# then the int64 labels. Rounding keeps the hash independent of BLAS summation order.
DEFAULT_HASHES = {
    ("mixed", 0): "b0c94d1ab0b4b5066b9b253a425878bcebd778a6ab88408de2bcd9d3d99ea1d4",
    ("mixed", 1): "c654d2e4e7a9a5d1d6b0f3f44af9144ab7f391e573b2f282a15296839fcd4cbf",
    ("synergy", 0): "366f4302a49c9062f5cf50a150b8eb9a02780fd2335796845d4712b0a413a479",
    ("synergy", 1): "abbb0c2d6308ebc0fcff4cbb96d92004d9fbf4d142b38f3e6476869c2a03977a",
}
LATENT_HASH = "59a5ebaf31e73e48c10922897a919481f798bd47a4b7dda754bbd92c9f4e4dac"


def _hash(data: object) -> str:
    digest = hashlib.sha256()
    for split in (data.train, data.test):  # type: ignore[attr-defined]
        for m in sorted(split.x):
            digest.update((np.round(split.x[m].astype(np.float64), 4) + 0.0).tobytes())
        digest.update(split.y.tobytes())
    return digest.hexdigest()


@pytest.mark.parametrize(("label", "seed"), list(DEFAULT_HASHES))
def test_defaults_are_unchanged(label: str, seed: int) -> None:
    assert _hash(synthetic_pid(seed, label=label)) == DEFAULT_HASHES[(label, seed)]
    explicit = synthetic_pid(seed, label=label, arity=2, distractors=0)
    np.testing.assert_array_equal(explicit.train.x["m1"], synthetic_pid(seed, label=label)
                                  .train.x["m1"])


def test_default_latents_unchanged() -> None:
    z = synthetic_pid_latents(0, 2000)
    raw = b"".join(z[k].tobytes() for k in ("r", "u1", "u2", "s1", "s2"))
    assert hashlib.sha256(raw).hexdigest() == LATENT_HASH
    assert all(class_names(label) == LABELS[label] for label in LABELS)


@pytest.mark.parametrize("arity", [3, 4])
@pytest.mark.parametrize("label", ["redundancy", "uniqueness", "synergy", "mixed"])
def test_kary_labels_follow_rule(arity: int, label: str) -> None:
    data = synthetic_pid(4, label=label, n_samples=600, arity=arity)
    z = synthetic_pid_latents(4, 600, arity=arity)
    assert all(set(np.unique(v)) == set(range(arity)) for v in z.values())
    syn = (z["s1"] + z["s2"]) % arity
    expected = {
        "redundancy": z["r"], "uniqueness": z["u1"], "synergy": syn,
        "mixed": arity**2 * z["r"] + arity * z["u1"] + syn,
    }[label]
    np.testing.assert_array_equal(np.concatenate([data.train.y, data.test.y]), expected)
    np.testing.assert_array_equal(synthetic_pid_labels(z, label, arity), expected)
    n_classes = arity**3 if label == "mixed" else arity
    assert data.n_classes == n_classes == len(data.class_names) == len(set(data.class_names))


def test_kary_class_names() -> None:
    assert class_names("synergy", 3) == ("(s1+s2)%3=0", "(s1+s2)%3=1", "(s1+s2)%3=2")
    assert class_names("mixed", 3)[5] == "r=0,u1=1,(s1+s2)%3=2"  # 5 = 0*9 + 1*3 + 2


def test_kary_levels_are_decodable_without_noise() -> None:
    data = synthetic_pid(1, label="redundancy", n_samples=900, noise=0.0, arity=3)
    z = synthetic_pid_latents(1, 900, arity=3)
    x = data.train.x["m2"].astype(np.float64)
    design = np.hstack([x, np.ones((len(x), 1))])
    target = z["r"][: len(x)].astype(np.float64)
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    np.testing.assert_allclose(design @ coef, target, atol=1e-4)  # r is a linear image


def test_distractors_append_pure_noise() -> None:
    base = synthetic_pid(2, n_samples=500, dim=6, noise=0.0)
    data = synthetic_pid(2, n_samples=500, dim=6, noise=0.0, distractors=5)
    assert data.input_shape("m1") == (11,) == data.input_shape("m2")
    for m in ("m1", "m2"):
        np.testing.assert_array_equal(data.train.x[m][:, :6], base.train.x[m])
    np.testing.assert_array_equal(data.train.y, base.train.y)
    z = synthetic_pid_latents(2, 500)
    noise = data.train.x["m1"][:, 6:].astype(np.float64)
    for bit in ("r", "u1", "s1"):
        corr = np.corrcoef(np.hstack([noise, z[bit][: len(noise), None]]).T)[-1, :-1]
        assert np.abs(corr).max() < 4 / math.sqrt(len(noise))


@pytest.mark.parametrize(
    ("key", "value"), [("arity", 1), ("arity", 2.0), ("arity", True), ("distractors", -1)]
)
def test_bad_options_name_the_field(key: str, value: object) -> None:
    with pytest.raises(ConfigError) as info:
        load_dataset("synthetic_pid", 0, {key: value}, None)
    assert info.value.field == f"data.params.{key}"
