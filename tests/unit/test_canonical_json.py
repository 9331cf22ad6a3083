"""canonical_json (orjson where it is safe) writes exactly what the standard library writes, and refuses the same."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.core.chain import canonical_json


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
