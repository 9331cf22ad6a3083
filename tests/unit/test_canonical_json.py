"""canonical_json (orjson where it is safe) writes exactly what the standard library writes, and refuses the same."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.core.chain import canonical_array, canonical_json


def stdlib(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


keys = st.text(max_size=6) | st.sampled_from(["a:1.5", "x", "é", "\x00", "1e5"])
leaves = (st.none() | st.booleans() | st.integers() | st.integers(min_value=2**63, max_value=2**70)
          | st.floats(allow_nan=False, allow_infinity=False) | st.text()
          | st.sampled_from([":1.5", "[2e3", ",-0.5", "null", "\ud800"]))
values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
                      max_leaves=25)


@settings(max_examples=500, deadline=None)
@given(values)
def test_the_text_equals_the_standard_librarys(value: Any) -> None:
    assert canonical_json(value) == stdlib(value)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), {"a": [None, float("-inf")]}, {"when": datetime.now(UTC)},
                                 {1: "int key"}])
def test_what_the_standard_library_refuses_or_rewrites_is_left_to_it(bad: Any) -> None:
    try:
        expected: Any = stdlib(bad)
    except (ValueError, TypeError) as exc:
        expected = type(exc)
    if isinstance(expected, str):
        assert canonical_json(bad) == expected
    else:
        with pytest.raises(expected):
            canonical_json(bad)


@pytest.mark.parametrize("value", [2.7011968818185672e-09, 1e16, -0.5, 3, [1e-05], {"a": 1e+22}, {"n": [1, 2.5]}])
def test_floats_anywhere_are_spelled_as_the_standard_library_spells_them(value: Any) -> None:
    assert canonical_json(value) == stdlib(value)


@settings(max_examples=300, deadline=None)
@given(st.lists(values, max_size=6))
def test_an_array_of_documents_is_written_as_the_standard_library_writes_it(items: list[Any]) -> None:
    assert canonical_array(items) == stdlib(items)


def test_nan_in_an_array_is_written_as_null_and_reads_back_to_the_same_text() -> None:
    # The one documented difference from canonical_json (which refuses NaN): the chain still verifies, since the
    # line holds null and null re-serialises to null.
    text = canonical_array([{"share": float("nan")}, {"n": float("inf")}])
    assert text == '[{"share":null},{"n":null}]'
    assert canonical_json(json.loads(text)) == text


float_free_leaves = (st.none() | st.booleans() | st.integers(min_value=-2**63, max_value=2**63 - 1) | st.text()
                     .filter(lambda t: not any(0xD800 <= ord(c) <= 0xDFFF for c in t))
                     | st.sampled_from([":1.5", "[2e3", ",-0.5", "10.0.0.0/16", "06:49:13.303601"]))
float_free = st.recursive(float_free_leaves,
                          lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
                          max_leaves=25)


@settings(max_examples=300, deadline=None)
@given(st.lists(float_free, max_size=6))
def test_an_array_vouched_free_of_floats_is_written_unscanned_as_the_standard_library_writes_it(
        items: list[Any]) -> None:
    from shared.core.chain import canonical_array_bytes, holds_float

    assert not holds_float(items)
    assert canonical_array_bytes(items, floats=False) == stdlib(items).encode("utf-8")
    assert canonical_array_bytes(items, floats=False) == canonical_array_bytes(items)


def test_holds_float_finds_a_float_at_any_depth_and_nothing_else() -> None:
    from shared.core.chain import holds_float

    assert holds_float([{"a": ({"b": [1, 2.0]},)}]) and holds_float(float("nan"))
    assert not holds_float([{"a": ({"b": [1, True, None, "1.5"]},)}])
