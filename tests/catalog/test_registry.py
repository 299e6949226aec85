"""The registry (pipeline/catalog/registry.py): one per axis, a second registration refused naming both
origins, unknown names listing the choices, implementations loaded lazily."""

from __future__ import annotations

import pytest

from pipeline.catalog.registry import DuplicateNameError, Registry, UnknownNameError


def test_a_name_registered_twice_is_refused_naming_both_origins():
    reg = Registry("thing")
    reg.add("a", object())
    with pytest.raises(DuplicateNameError, match=r"'a' is registered twice: by tests\.catalog\.test_registry|"
                                                 r"'a' is registered twice: by test_registry"):
        reg.add("a", object(), origin="plugin other 1.0")


def test_an_unknown_name_lists_the_valid_choices():
    reg = Registry("thing")
    reg.add("b", object())
    reg.add("a", object())
    with pytest.raises(UnknownNameError, match="unknown thing 'c'; valid choices: a, b"):
        reg.get("c")
    assert reg.registered() == ["b", "a"] and reg.names() == ["a", "b"]


def test_load_imports_the_cards_impl_only_when_asked():
    class Card:
        impl = "json:dumps"

    reg = Registry("thing")
    reg.add("j", Card())
    import json

    assert reg.load("j") is json.dumps


def test_listings_align_the_summaries_after_the_longest_name():
    from pipeline.catalog import listing
    from pipeline.catalog.backbones import BACKBONES
    from pipeline.catalog.datasets import DATASETS
    from pipeline.catalog.methods import METHODS

    for lines, reg in ((listing.methods(), METHODS), (listing.backbones(), BACKBONES),
                       (listing.datasets(), DATASETS)):
        starts = {line.index(reg.get(line.split()[0]).summary) for line in lines}
        assert len(starts) == 1, f"summaries start at columns {sorted(starts)}"
        assert starts.pop() == max(map(len, reg.names())) + 2
