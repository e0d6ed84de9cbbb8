"""Tests of the per-agent imperfections: missing modalities, noisy and missing labels."""

from __future__ import annotations

import numpy as np
import pytest

from parsefl.data import missing_labels, missing_modality_mask, noisy_labels
from parsefl.errors import ConfigError, DataError

MODS = ("a", "b", "c")


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_missing_modalities_keep_one_and_are_seeded() -> None:
    mask = missing_modality_mask(1000, MODS, 0.5, _rng())
    assert list(mask) == list(MODS)
    stacked = np.stack([mask[m] for m in MODS])
    assert stacked.dtype == bool and stacked.shape == (3, 1000)
    assert stacked.any(axis=0).all()
    for m in MODS:  # at most round(0.5 * 1000) lost, a few given back
        assert 440 <= (~mask[m]).sum() <= 500
    again = missing_modality_mask(1000, MODS, 0.5, _rng())
    assert all(np.array_equal(mask[m], again[m]) for m in MODS)
    other = missing_modality_mask(1000, MODS, 0.5, _rng(1))
    assert not np.array_equal(mask["a"], other["a"])


def test_missing_modality_edge_rates() -> None:
    assert all(v.all() for v in missing_modality_mask(50, MODS, 0.0, _rng()).values())
    full = missing_modality_mask(300, ("a", "b"), 1.0, _rng())
    np.testing.assert_array_equal(full["a"] ^ full["b"], True)  # exactly one each
    assert 100 < full["a"].sum() < 200  # the survivor is chosen uniformly
    assert missing_modality_mask(20, ("a",), 0.7, _rng())["a"].all()
    assert missing_modality_mask(0, MODS, 0.5, _rng())["a"].shape == (0,)


def test_noisy_labels_flip_exactly_to_other_classes() -> None:
    y = np.repeat(np.arange(4), 250)
    noisy = noisy_labels(y, 4, 0.3, _rng())
    assert noisy.dtype == np.int64 and (noisy != y).sum() == 300
    assert noisy.min() >= 0 and noisy.max() < 4
    changed = noisy[(y == 0) & (noisy != y)]
    assert set(np.unique(changed)) == {1, 2, 3}  # uniform over the other classes
    np.testing.assert_array_equal(y, np.repeat(np.arange(4), 250))  # input untouched
    np.testing.assert_array_equal(noisy, noisy_labels(y, 4, 0.3, _rng()))
    np.testing.assert_array_equal(noisy_labels(y, 4, 0.0, _rng()), y)
    assert (noisy_labels(y, 4, 1.0, _rng()) != y).all()


def test_missing_labels_mask() -> None:
    y = np.zeros(101, dtype=np.int64)
    labelled = missing_labels(y, 0.25, _rng())
    assert labelled.dtype == bool and (~labelled).sum() == 25  # round(25.25)
    np.testing.assert_array_equal(labelled, missing_labels(y, 0.25, _rng()))
    assert missing_labels(y, 0.0, _rng()).all() and not missing_labels(y, 1.0, _rng()).any()


@pytest.mark.parametrize("rate", [-0.1, 1.1, "x", None])
def test_bad_rates_name_the_field(rate: object) -> None:
    with pytest.raises(ConfigError) as info:
        missing_modality_mask(5, MODS, rate, _rng(), field="agents.missing")  # type: ignore[arg-type]
    assert info.value.field == "agents.missing"
    with pytest.raises(ConfigError) as info:
        noisy_labels(np.zeros(3, dtype=int), 2, rate, _rng())  # type: ignore[arg-type]
    assert info.value.field == "imperfect.label_noise"
    with pytest.raises(ConfigError) as info:
        missing_labels(np.zeros(3), rate, _rng())  # type: ignore[arg-type]
    assert info.value.field == "imperfect.missing_labels"


def test_bad_inputs() -> None:
    with pytest.raises(TypeError, match="Generator"):
        missing_labels(np.zeros(3), 0.5, 0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="distinct modalities"):
        missing_modality_mask(5, ("a", "a"), 0.5, _rng())
    with pytest.raises(DataError, match="0..1"):
        noisy_labels(np.array([0, 2]), 2, 0.5, _rng())
    with pytest.raises(DataError, match="1-D integer"):
        noisy_labels(np.array([0.0, 1.0]), 2, 0.5, _rng())
    with pytest.raises(ConfigError, match="single class"):
        noisy_labels(np.zeros(4, dtype=int), 1, 0.5, _rng())


SMALL_RUN = ["data.name=synthetic_pid", "mix={m1+m2: 2}", "partition.name=iid", "model.dim=9",
             "model.encoder.params={hidden: [8]}", "train.local_steps=2", "rounds=2"]


@pytest.mark.parametrize("rate,labelled", [(0.0, 800), (0.5, 400), (0.99, 8)])
def test_missing_labels_leave_exactly_the_labelled_samples(rate, labelled) -> None:
    from parsefl.config import load_config
    from parsefl.experiments.run.build import build_experiment

    agent = build_experiment(load_config(None, [
        *SMALL_RUN, f"imperfect.missing_labels={rate}"])).agents[0]
    assert agent.n_samples == 800  # 1600 training samples over 2 agents
    assert sum(len(idx) for _, idx in agent.views) == labelled
    used = {int(k) for _, idx in agent.batches() for k in idx}
    assert used <= {int(k) for _, idx in agent.views for k in idx}


def test_missing_labels_leaving_one_label_train_nothing() -> None:
    # 100 samples at 0.99: one labelled sample, too few for a batch; it was trained on all
    # 100 labels before (an empty view list was read as "no views").
    from parsefl.config import load_config
    from parsefl.experiments.run.build import build_experiment

    agent = build_experiment(load_config(None, [
        *SMALL_RUN, "data.params={n_samples: 250}", "imperfect.missing_labels=0.99"])).agents[0]
    assert agent.n_samples == 100 and agent.views == [] and agent.batches() == []


def test_missing_all_labels_is_a_config_error() -> None:
    from parsefl.config import load_config

    with pytest.raises(ConfigError) as info:
        load_config(None, [*SMALL_RUN, "imperfect.missing_labels=1.0"])
    assert info.value.field == "imperfect.missing_labels" and "less than 1" in str(info.value)
