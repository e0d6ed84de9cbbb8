"""CS+-RG (``cs_plus_rg``) against hand-computed values of the published threshold: sort the
copies (own included, distance 0) by distance, clip at the largest distance whose cumulative
weight is at most ``W - 2 b_w``."""

from __future__ import annotations

import pytest
import torch

from parsefl.aggregation import build_aggregator
from parsefl.errors import ConfigError

T = torch.tensor
OWN = T([0.0, 0.0])
PEERS = {1: T([1.0, 0.0]), 2: T([0.0, 2.0]), 3: T([3.0, 4.0])}  # distances 1, 2, 5

CASES = [
    # equal weights 1/4: b_w = 1/4, W - 2 b_w = 1/2 = own + peer 1: tau = 1; peer 2 -> (0, 1),
    # peer 3 -> (0.6, 0.8); 1/4 * ((1, 0) + (0, 1) + (0.6, 0.8))
    ({"byzantine": 1}, 0.25, {1: 0.25, 2: 0.25, 3: 0.25}, [0.4, 0.45]),
    # own 1/2, peers 1/6: W - 2 b_w = 2/3 = own + peer 1 (float sum 0.6666...7): tau = 1
    ({"byzantine": 1}, 0.5, {1: 1 / 6, 2: 1 / 6, 3: 1 / 6}, [1.6 / 6, 1.8 / 6]),
    # unequal: b_w = 0.3 (the largest peer weight), W - 2 b_w = 0.4 = the own copy's weight
    # alone: tau = 0, nothing moves
    ({"byzantine": 1}, 0.4, {1: 0.1, 2: 0.2, 3: 0.3}, [0.0, 0.0]),
    # b = 0: the gossip mean, 1/4 * ((1, 0) + (0, 2) + (3, 4))
    ({"byzantine": 0}, 0.25, {1: 0.25, 2: 0.25, 3: 0.25}, [1.0, 1.5]),
    # eta = 1/2: half the first case's step
    ({"byzantine": 1, "eta": 0.5}, 0.25, {1: 0.25, 2: 0.25, 3: 0.25}, [0.2, 0.225]),
]


@pytest.mark.parametrize(("params", "w_own", "w", "want"), CASES)
def test_matches_the_hand_computed_threshold(params, w_own, w, want):
    agg = build_aggregator("cs_plus_rg", params)
    got = agg.merge({"w": OWN}, {j: {"w": x} for j, x in PEERS.items()}, w_own, w)["w"]
    assert got.tolist() == pytest.approx(want, abs=1e-6)


def test_stacked_with_padding_matches_per_agent():
    """Holder 0: the first case; holder 1: a ring row (own + two peers at 1/3: tau = 0)."""
    agg = build_aggregator("cs_plus_rg")
    values = torch.zeros(2, 4, 2)
    values[0] = torch.stack([OWN, *PEERS.values()])
    values[1, :3] = torch.stack([T([1.0, 1.0]), T([5.0, 1.0]), T([1.0, 9.0])])
    mask = T([[True] * 4, [True, True, True, False]])
    weights = T([[0.25] * 4, [1 / 3, 1 / 3, 1 / 3, 0.0]])
    out = agg.combine(values, mask, weights)
    assert out[0].tolist() == pytest.approx([0.4, 0.45], abs=1e-6)
    assert out[1].tolist() == [1.0, 1.0]  # a ring is past the breakdown point for b = 1
    _, scale = agg.clip(values, mask, weights)
    assert scale[0].tolist() == pytest.approx([1.0, 1.0, 0.5, 0.2])


def test_bad_params_name_the_field():
    with pytest.raises(ConfigError, match="aggregation.params.byzantine"):
        build_aggregator("cs_plus_rg", {"byzantine": -1})
    with pytest.raises(ConfigError, match="aggregation.params.eta"):
        build_aggregator("cs_plus_rg", {"eta": 0.0})
