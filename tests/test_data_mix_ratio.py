"""Tests of the ratio form of the agent mix and of unbalanced counts."""

from __future__ import annotations

import pytest

from parsefl.data import parse_mix, ratio_mix
from parsefl.errors import ConfigError

VIEWS = ("fou", "fac", "kar", "pix", "zer", "mor")


def test_ratio_form_counts_and_order() -> None:
    agents = parse_mix({"ratio": 0.25, "n_agents": 12, "modalities": ["pix", "fou"]}, VIEWS)
    assert agents == [("fou",)] * 5 + [("pix",)] * 4 + [("fou", "pix")] * 3


@pytest.mark.parametrize(
    ("ratio", "n_agents", "expected_multi"),
    [(0.0, 5, 0), (1.0, 5, 5), (0.5, 5, 3), (0.5, 7, 4), (0.3, 10, 3), (0.15, 10, 2), (0.5, 1, 1)],
)
def test_multimodal_count_rounds_half_up(ratio: float, n_agents: int, expected_multi: int) -> None:
    agents = ratio_mix(ratio, n_agents, ("a", "b"))
    assert len(agents) == n_agents
    assert sum(len(g) == 2 for g in agents) == expected_multi


def test_unimodal_agents_spread_evenly_first_modalities_first() -> None:
    agents = parse_mix({"ratio": 0.0, "n_agents": 8, "modalities": ["kar", "fou", "zer"]}, VIEWS)
    assert agents == [("fou",)] * 3 + [("kar",)] * 3 + [("zer",)] * 2
    everything = parse_mix({"ratio": 0.5, "n_agents": 12}, VIEWS)  # default: all modalities
    assert everything[:6] == [(v,) for v in VIEWS]
    assert everything[6:] == [VIEWS] * 6


def test_unbalanced_counts_form() -> None:
    agents = parse_mix({"fou": 6, "pix": 2, "fou+pix": 4}, VIEWS)
    assert [agents.count(g) for g in [("fou",), ("pix",), ("fou", "pix")]] == [6, 2, 4]


@pytest.mark.parametrize(
    ("mix", "field"),
    [
        ({"ratio": -0.1, "n_agents": 4}, "mix.ratio"),
        ({"ratio": 1.5, "n_agents": 4}, "mix.ratio"),
        ({"ratio": "half", "n_agents": 4}, "mix.ratio"),
        ({"ratio": True, "n_agents": 4}, "mix.ratio"),
        ({"ratio": float("nan"), "n_agents": 4}, "mix.ratio"),
        ({"n_agents": 4}, "mix.ratio"),
        ({"ratio": 0.5, "n_agents": 0}, "mix.n_agents"),
        ({"ratio": 0.5, "n_agents": 2.5}, "mix.n_agents"),
        ({"ratio": 0.5, "n_agents": True}, "mix.n_agents"),
        ({"ratio": 0.5}, "mix.n_agents"),
        ({"ratio": 0.5, "n_agents": 4, "fou": 2}, "mix.fou"),
        ({"ratio": 0.5, "n_agents": 4, "modalities": ["fou"]}, "mix.modalities"),
        ({"ratio": 0.5, "n_agents": 4, "modalities": ["fou", "fou"]}, "mix.modalities"),
        ({"ratio": 0.5, "n_agents": 4, "modalities": ["fou", "abc"]}, "mix.modalities"),
        ({"ratio": 0.5, "n_agents": 4, "modalities": "fou+pix"}, "mix.modalities"),
        ({"modalities": ["fou", "pix"]}, "mix.ratio"),
    ],
)
def test_bad_ratio_form_names_the_field(mix: dict, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_mix(mix, VIEWS)
    assert info.value.field == field
