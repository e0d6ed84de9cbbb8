"""Robust aggregators against hand-computed values: 3 agents on a triangle, 2-dim copies,
each rule run per agent (``merge``, the reference runtime) and stacked (``combine`` over the
three holders at once, the vectorized backend) with the same numbers."""

from __future__ import annotations

import math

import pytest
import torch

from parsefl.aggregation import build_aggregator

T = torch.tensor
X = {0: T([0.0, 3.0]), 1: T([3.0, 6.0]), 2: T([9.0, 0.0])}  # every agent's copy
W = 1 / 3  # MH on a triangle: every weight is 1/3
R5 = math.sqrt(5)
S18, S72, S90 = (math.sqrt(v) for v in (18, 72, 90))  # |(3, 3)|, |(6, 6)|, |(9, 3)|

EXPECTED = {
    # coordinate 0: {0, 3, 9} -> 3; coordinate 1: {3, 6, 0} -> 3, at every agent
    ("median", ()): [[3.0, 3.0]] * 3,
    # beta = 1/3, n = 3: b = 1, the middle value (the median)
    ("trimmed_mean", ()): [[3.0, 3.0]] * 3,
    # beta = 0: b = 0, the plain unweighted mean
    ("trimmed_mean", (("beta", 0.0),)): [[4.0, 3.0]] * 3,
    # agent 0: deltas (3, 3) |3v2| and (9, -3) |3v10|; tau = 3v2 (second largest), the far
    # one scaled by 1/v5; agent 1: deltas (-3,-3), (6,-6): tau = 3v2, the far one halved;
    # agent 2: deltas (-9, 3), (-6, 6): tau = 6v2, the far one scaled by 2/v5
    ("clipped", ()): [[(3 + 9 / R5) / 3, 3 + (3 - 3 / R5) / 3], [3.0, 4.0],
                      [9 + (-18 / R5 - 6) / 3, (6 / R5 + 6) / 3]],
    # a fixed radius of 1: every delta scaled to norm 1
    ("clipped", (("tau", 1.0),)): [
        [(3 / S18 + 9 / S90) / 3, 3 + (3 / S18 - 3 / S90) / 3],
        [3 + (-3 / S18 + 6 / S72) / 3, 6 + (-3 / S18 - 6 / S72) / 3],
        [9 + (-9 / S90 - 6 / S72) / 3, (3 / S90 + 6 / S72) / 3],
    ],
}


def _stack():
    """Holder h: its own copy first, then its two peers by sender."""
    rows = [[X[h]] + [X[j] for j in sorted(set(X) - {h})] for h in sorted(X)]
    return torch.stack([torch.stack(r) for r in rows]), torch.ones(3, 3, dtype=torch.bool), \
        torch.full((3, 3), W)


@pytest.mark.parametrize(("name", "params"), list(EXPECTED))
def test_per_agent_and_stacked_match_the_hand_values(name, params):
    agg = build_aggregator(name, dict(params))
    want = EXPECTED[name, params]
    for h in X:
        received = {j: {"w": X[j]} for j in X if j != h}
        got = agg.merge({"w": X[h]}, received, W, {j: W for j in received})["w"]
        assert got.tolist() == pytest.approx(want[h], abs=1e-6)
    values, mask, weights = _stack()
    stacked = agg.combine(values, mask, weights)
    for h in X:
        assert stacked[h].tolist() == pytest.approx(want[h], abs=1e-6)


def test_geometric_median_of_three_collinear_points_is_the_middle_one():
    agg = build_aggregator("geomed", {"iters": 200})
    own, received = {"w": T([0.0, 0.0])}, {1: {"w": T([1.0, 0.0])}, 2: {"w": T([10.0, 0.0])}}
    got = agg.merge(own, received, W, {1: W, 2: W})["w"]
    assert got.tolist() == pytest.approx([1.0, 0.0], abs=1e-3)


def test_few_holders_as_documented():
    values = T([[[0.0, 0.0], [4.0, 2.0], [0.0, 0.0]]])  # own + one neighbour + padding
    mask = T([[True, True, False]])
    weights = T([[0.5, 0.5, 0.0]])
    for name in ("median", "trimmed_mean"):  # n = 2: the plain mean of the two
        assert build_aggregator(name).combine(values, mask, weights).tolist() == [[2.0, 1.0]]
    # one neighbour, adaptive radius: its own distance, nothing clipped: the gossip mean
    assert build_aggregator("clipped").combine(values, mask, weights).tolist() == [[2.0, 1.0]]
    alone = T([[True, False, False]])
    for name in ("median", "trimmed_mean", "clipped", "geomed"):
        out = build_aggregator(name).combine(values, alone, T([[1.0, 0.0, 0.0]]))
        assert out.tolist() == [[0.0, 0.0]]


def test_bad_params_name_the_field():
    from parsefl.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        build_aggregator("trimmed_mean", {"beta": 0.5})
    assert err.value.field == "aggregation.params.beta"


def test_the_sorting_network_sorts_every_zero_one_input():
    """0-1 principle: a comparator network that sorts every 0/1 input sorts every input."""
    from itertools import product

    from parsefl.aggregation._stack import comparators

    for k in range(1, 11):
        for bits in product((0, 1), repeat=k):
            s = list(bits)
            for a, b in comparators(k):
                s[a], s[b] = min(s[a], s[b]), max(s[a], s[b])
            assert s == sorted(s), (k, bits)


@pytest.mark.parametrize("k", [2, 3, 5, 9])
def test_stacked_rules_match_a_sort_and_plain_weiszfeld_with_padding(k):
    """The network / Gram forms against the textbook forms, on copies with padding holes."""
    gen = torch.Generator().manual_seed(k)
    values = torch.randn(6, k, 40, generator=gen) + torch.randn(6, k, 1, generator=gen) * 3
    mask = torch.rand(6, k, generator=gen) > 0.3
    mask[:, 0] = True
    values = torch.where(mask[..., None], values, torch.zeros_like(values))
    weights = torch.rand(6, k, generator=gen) * mask
    n = mask.sum(dim=1)
    ordered = values.masked_fill(~mask[..., None], math.inf).sort(dim=1).values
    for h in range(6):
        real = ordered[h, : n[h]]
        med = (real[(n[h] - 1) // 2] + real[n[h] // 2]) / 2
        b = min(int(n[h]) // 3, (int(n[h]) - 1) // 2)
        trimmed = real[b : n[h] - b].mean(dim=0)
        for name, want in (("median", med), ("trimmed_mean", trimmed)):
            got = build_aggregator(name).combine(values, mask, weights)[h]
            assert torch.allclose(got, want, atol=1e-6), name
    w = weights
    z = (w[..., None] * values).sum(dim=1) / w.sum(dim=1, keepdim=True)
    for _ in range(8):
        beta = w / torch.linalg.vector_norm(values - z[:, None], dim=2).clamp_min(1e-6)
        z = (beta[..., None] * values).sum(dim=1) / beta.sum(dim=1, keepdim=True)
    assert torch.allclose(build_aggregator("geomed").combine(values, mask, weights), z,
                          atol=1e-4)
