"""One look (colour, line style, marker) per method, whatever else a figure holds."""

from __future__ import annotations

import pytest

import parsefl.sharing  # noqa: F401  (fill the registry)
from parsefl.plots.style import FALLBACK_COLOURS, METHOD_STYLES, method_colours, method_style
from parsefl.registry import SHARING


def test_every_registered_method_has_a_look_of_its_own():
    looks = {m: method_style(m) for m in SHARING.names()}
    assert set(METHOD_STYLES) == set(SHARING.names())  # a new built-in gets a fixed look
    assert len({look.colour for look in looks.values()}) == len(looks)
    assert len({look.marker for look in looks.values()}) == len(looks)


@pytest.mark.parametrize("subset", [["parse"], ["local", "parse"], ["dsgd_full", "parse",
                                                                     "centralized"]])
def test_a_method_looks_the_same_in_any_subset(subset):
    assert method_colours(subset)["parse"] == method_style("parse").colour == "#1f77b4"
    assert list(method_colours(subset)) == subset


def test_a_plugin_method_gets_a_stable_look_apart_from_the_built_ins():
    look = method_style("my_plugin")
    assert look == method_style("my_plugin")  # crc32 of the name: the same in every process
    assert look.colour in FALLBACK_COLOURS
    assert look.colour not in {s.colour for s in METHOD_STYLES.values()}
    assert look == method_style("my_plugin", variant=0)


def test_variants_keep_the_colour_and_change_the_line():
    base, other = method_style("parse"), method_style("parse", variant=1)
    assert other.colour == base.colour
    assert (other.dashes, other.marker) != (base.dashes, base.marker)
    assert method_style("parse", variant=2) not in (base, other)
