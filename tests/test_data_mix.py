"""Tests of the agent modality mix."""

from __future__ import annotations

import re

import pytest

from parsefl.data import group_name, parse_mix
from parsefl.errors import ConfigError

VIEWS = ("fou", "fac", "kar", "pix", "zer", "mor")


def test_quickstart_mix() -> None:
    agents = parse_mix({"fou": 4, "pix": 4, "fou+pix": 4}, VIEWS)
    assert len(agents) == 12
    assert agents[:4] == [("fou",)] * 4
    assert agents[4:8] == [("pix",)] * 4
    assert agents[8:] == [("fou", "pix")] * 4


def test_keys_are_normalized_to_canonical_order() -> None:
    agents = parse_mix({"mor+pix + fou": 1, "kar": 0, "fac": 2}, VIEWS)
    assert agents == [("fou", "pix", "mor"), ("fac",), ("fac",)]


def test_group_name_round_trips() -> None:
    assert group_name(("fou", "pix")) == "fou+pix"
    assert parse_mix({group_name(("fou", "pix")): 1}, VIEWS) == [("fou", "pix")]


@pytest.mark.parametrize(
    ("mix", "field", "message"),
    [
        ({}, "mix", "empty"),
        ({"": 2}, "mix.", "empty modality"),
        ({"fou+": 2}, "mix.fou+", "empty modality"),
        ({"fou++pix": 2}, "mix.fou++pix", "empty modality"),
        ({"abc": 1}, "mix.abc", "allowed: fou, fac, kar, pix, zer, mor"),
        ({"fou+fou": 1}, "mix.fou+fou", "repeated"),
        ({"fou": -1}, "mix.fou", "non-negative integer"),
        ({"fou": 1.5}, "mix.fou", "non-negative integer"),
        ({"fou": "2"}, "mix.fou", "non-negative integer"),
        ({"fou": True}, "mix.fou", "non-negative integer"),
        ({"fou": 0, "pix": 0}, "mix", "at least one agent"),
        ({"fou+pix": 1, "pix+fou": 1}, "mix.pix+fou", "same modality subset as 'fou+pix'"),
    ],
)
def test_bad_mix_names_the_field(mix: dict, field: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        parse_mix(mix, VIEWS)
    assert info.value.field == field
