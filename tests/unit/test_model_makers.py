"""slot_maker builds the same objects as the dataclasses' own __init__ (equal, hashing alike, still frozen)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.core.model import Peering, ResourceId, VirtualNetwork, slot_maker

ids = st.text(min_size=1, max_size=20).map(lambda t: ResourceId.parse("/x/" + t))
opt = st.none() | st.text(max_size=8)


@settings(max_examples=200, deadline=None)
@given(st.tuples(ids, ids, ids, st.booleans(), st.booleans(), st.text(max_size=8), opt, opt))
def test_a_peering_made_by_its_slots_equals_the_dataclasss(values: tuple[object, ...]) -> None:
    made, built = slot_maker(Peering)(*values), Peering(*values)  # type: ignore[arg-type]
    assert made == built and hash(made) == hash(built) and repr(made) == repr(built)


@settings(max_examples=100, deadline=None)
@given(ids, st.lists(st.text(max_size=6), max_size=3).map(tuple), st.text(max_size=6),
       st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=2), opt, st.booleans())
def test_a_vnet_made_by_its_slots_equals_the_dataclasss(vid: ResourceId, prefixes: tuple[str, ...], location: str,
                                                        tags: dict[str, str], state: str | None, present: bool) -> None:
    made = slot_maker(VirtualNetwork)(vid, prefixes, location, tags, state, (), present)
    assert made == VirtualNetwork(vid, prefixes, location, tags, state, (), present)


def test_what_it_makes_stays_frozen() -> None:
    made = slot_maker(Peering)(*(ResourceId.parse("/a"),) * 3, True, False, "Connected", None, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.peering_state = "x"  # type: ignore[misc]


def test_a_pair_and_a_change_made_by_their_slots_equal_the_dataclasses() -> None:
    from shared.core.diff import PairChange, _new_change
    from shared.core.model import Route, TransitPair, _new_pair

    a, b, c = (ResourceId.parse(f"/x/{n}") for n in "abc")
    routes = (Route(circuit=c, gateways=(a, b), pending=False, warnings=("w",)),)
    pair = _new_pair(a, b, routes)
    assert pair == TransitPair(a=a, b=b, routes=routes) and hash(pair) == hash(TransitPair(a, b, routes))
    assert _new_change(pair, (), True, None) == PairChange(pair, (), True, None)  # type: ignore[arg-type]
