"""The topology digest (orjson) is the SHA-256 of the same bytes the standard library writes, for any projection."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.app.auditor import canonical_digest


def reference(resources: list[dict[str, Any]]) -> str:
    ordered = sorted(resources, key=lambda r: str(r.get("id", "")).lower())
    text = json.dumps(ordered, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


# What a projection holds: strings (any Unicode, control characters, quotes), booleans, integers (also past 64 bits,
# which orjson refuses and the standard library writes), null, lists and objects.
values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)
resources = st.lists(st.fixed_dictionaries({"id": st.text(max_size=30), "type": st.text(max_size=10)},
                                           optional={"properties": values, "tags": values}), max_size=6)


@settings(max_examples=300, deadline=None)
@given(resources)
def test_the_digest_equals_the_standard_librarys_canonical_json(given_resources: list[dict[str, Any]]) -> None:
    assert canonical_digest(given_resources) == reference(given_resources)


def test_the_digest_of_the_generated_estate_equals_the_standard_librarys() -> None:
    from benchmarks.bench_transit import generate
    from shared.core.focus import project

    before, _ = generate(2000)
    projected = project(before)
    assert canonical_digest(projected) == reference(projected)


@settings(max_examples=300, deadline=None)
@given(resources)
def test_the_bytes_the_digest_hashes_are_what_the_store_writes_for_a_copy_in_id_order(
        given_resources: list[dict[str, Any]]) -> None:
    from shared.adapters.store.state import _projection_bytes
    from shared.app.auditor import canonical_digest_and_bytes
    from shared.core.focus import by_id

    digest, data = canonical_digest_and_bytes(given_resources)
    assert digest == reference(given_resources)
    in_order = by_id(given_resources)
    if [id(r) for r in in_order] == [id(r) for r in given_resources]:
        assert data == _projection_bytes(given_resources) and hashlib.sha256(data).hexdigest() == digest
    else:  # written in another order than it was hashed: the store writes the list itself
        assert data is None
        assert canonical_digest_and_bytes(in_order)[1] == _projection_bytes(in_order)
