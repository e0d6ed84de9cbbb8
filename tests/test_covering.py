"""The covering designs the combination contract is generated with."""

from __future__ import annotations

from itertools import product

from covering import each_level, pairs_of, pairwise


def test_every_allowed_pair_is_covered_and_no_forbidden_one_is_used():
    factors = {"a": ["1", "2", "3"], "b": ["x", "y"], "c": ["p", "q", "r", "s"], "d": ["u", "v"]}

    def forbidden(f, x, g, y):
        return (f, x, g, y) == ("a", "3", "c", "s")

    cells = pairwise(factors, forbidden)
    covered = set().union(*(pairs_of(c) for c in cells))
    for f, g in [("a", "b"), ("a", "c"), ("a", "d"), ("b", "c"), ("b", "d"), ("c", "d")]:
        for x, y in product(factors[f], factors[g]):
            assert ((f, x, g, y) in covered) != forbidden(f, x, g, y)
    assert len(cells) < len(list(product(*factors.values())))  # 12-ish of 48
    assert len(cells) >= 3 * 4 - 1  # the pairs of a and c, less the forbidden one
    assert pairwise(factors, forbidden) == cells  # deterministic


def test_each_level_keeps_every_level_of_every_factor():
    factors = {"a": ["1", "2", "3"], "b": ["x", "y"], "c": ["p", "q", "r", "s"]}
    cells = pairwise(factors, lambda *_: False)
    some = each_level(cells, factors)
    assert len(some) <= 5
    for f, levels in factors.items():
        assert {c[f] for c in some} == set(levels)
