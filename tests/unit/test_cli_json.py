"""The CLI's JSON output is byte for byte what json.dump(indent=2, ensure_ascii=False) printed, also when lazy."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.cli.json_output import json_chunks, print_json
from shared.core.snapshot import parse_resources
from shared.core.transit import compute_pairs
from shared.core.views import pairs_json
from tests.unit.test_properties import render, topology_specs

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)  # any text a snapshot can hold
JSON = st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | TEXT,
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
                    max_leaves=20)


def reference(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def encoded(doc: dict[str, Any]) -> bytes:
    return b"".join(json_chunks(doc))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(TEXT, JSON, max_size=4))
def test_any_document_is_printed_exactly_as_the_standard_library_prints_it(doc: dict[str, Any]) -> None:
    assert encoded(doc) == reference(doc)


@settings(max_examples=100, deadline=None)
@given(st.lists(JSON, max_size=4500), st.lists(TEXT, max_size=3))
def test_a_lazy_list_is_printed_as_the_list_itself_across_batches(items: list[Any], warnings: list[str]) -> None:
    assert encoded({"pairs": iter(items), "warnings": warnings}) == reference({"pairs": items, "warnings": warnings})


def test_what_orjson_refuses_is_printed_by_the_standard_library_with_the_same_meaning() -> None:
    doc = {"big": 2**70, "lone surrogate": "a\ud800b", "pairs": ["é"]}
    text = encoded({"x": doc, "items": iter([doc, "é"])})
    assert json.loads(text.decode("ascii")) == {"x": doc, "items": [doc, "é"]}


def test_a_text_stream_without_a_byte_buffer_gets_the_same_text() -> None:
    doc = {"pairs": [{"vnets": ["Zeta-é", "a"]}], "warnings": []}
    out = io.StringIO()
    print_json({"pairs": iter(doc["pairs"]), "warnings": []}, out)
    assert out.getvalue() == reference(doc).decode("utf-8")


@settings(max_examples=40, deadline=None)
@given(topology_specs())
def test_pairs_json_lazy_prints_the_same_bytes_as_the_list(spec: Any) -> None:
    topology = parse_resources(render(spec))
    pairs = compute_pairs(topology)
    assert encoded(pairs_json(pairs, topology, lazy=True)) == reference(pairs_json(pairs, topology))


@pytest.mark.parametrize("doc", [{}, {"pairs": []}, {"opened": [], "closed": [], "groups": [], "warnings": []}])
def test_empty_shapes(doc: dict[str, Any]) -> None:
    assert encoded(doc) == reference(doc)
