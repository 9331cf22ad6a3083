"""focus.splice_canonical: the canonical JSON of a patched copy, made from the committed copy's, is byte for byte
what canonical_digest writes for the patched copy (so the digests agree), or None when it cannot be made so."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.app.auditor import canonical_digest
from shared.core.focus import splice_canonical

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8)
VALUE = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | TEXT,
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3), max_leaves=8)


def canonical(resources: list[dict[str, Any]]) -> bytes:
    return json.dumps(resources, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@st.composite
def copies(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    n = draw(st.integers(1, 8))
    before = [{"id": f"/r/{i:03d}", "type": "t", "properties": draw(st.dictionaries(TEXT, VALUE, max_size=3))}
              for i in range(n)]
    after = list(before)
    for i in draw(st.sets(st.integers(0, n - 1), max_size=n)):
        changed = copy.deepcopy(before[i])
        changed["properties"] = draw(st.dictionaries(TEXT, VALUE, max_size=3))
        after[i] = changed
    # Removed and added resources (a 404, a new reference), the list kept in id order.
    for i in sorted(draw(st.sets(st.integers(0, n - 1), max_size=n)), reverse=True):
        del after[i]
    for j in draw(st.sets(st.integers(0, 2 * n), max_size=3)):
        after.append({"id": f"/r/{j:03d}a", "type": "t", "properties": draw(st.dictionaries(TEXT, VALUE, max_size=2))})
    after.sort(key=lambda r: r["id"])
    return before, after


@settings(max_examples=300, deadline=None)
@given(copies())
def test_a_spliced_copy_is_the_canonical_json_of_the_patched_copy(pair: Any) -> None:
    before, after = pair
    spliced = splice_canonical(canonical(before), before, after)
    assert spliced == canonical(after)  # ids are unique: every replaced item's old text is found once
    assert hashlib.sha256(spliced).hexdigest() == canonical_digest(after)


def test_what_cannot_be_spliced_is_refused() -> None:
    a, b = {"id": "/r/a", "v": 1}, {"id": "/r/b", "v": 2}
    data = canonical([a, b])
    assert splice_canonical(data, [a, b], [a]) == canonical([a])  # removed
    assert splice_canonical(data, [a, b], []) == b"[]"
    assert splice_canonical(data, [a, b], [a, {"id": "/r/a2"}, b]) == canonical([a, {"id": "/r/a2"}, b])  # added
    twin = {"id": "/r/a", "v": 1}
    assert splice_canonical(canonical([a, twin]), [a, twin], [a, {"id": "/r/a", "v": 3}]) is None  # not unique
    assert splice_canonical(b"[]", [a, b], [a]) is None  # a kept item's end is not in the bytes
    assert splice_canonical(data, [a, b], [a, b]) == data
