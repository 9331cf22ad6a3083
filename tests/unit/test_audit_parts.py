"""A large change is recorded in several audit parts, each small enough for one append block."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.app.auditor import encode_parts, split_record


def record(n: int) -> dict:
    pair = {"vnets": ["/subscriptions/s/resourceGroups/r/providers/Microsoft.Network/virtualNetworks/a" * 3] * 2,
            "cause": [{"text": "ergw-01 allowRemoteVnetTraffic false -> true"}]}
    return {"runId": "r1", "time": "t", "trigger": {"kind": "event"}, "outcome": "committed", "caller": "bob",
            "opened": [pair] * n, "closed": [pair] * (n // 2), "pending": []}


def test_a_small_record_stays_whole() -> None:
    assert split_record(record(3)) == [record(3)]


def test_a_large_record_is_split_into_numbered_parts_under_the_budget_without_losing_pairs() -> None:
    big = record(400)
    parts = split_record(big, budget=20_000)
    assert len(parts) > 1
    assert all(len(json.dumps(p).encode()) <= 20_000 for p in parts)
    assert [(p["part"], p["parts"]) for p in parts] == [(i, len(parts)) for i in range(1, len(parts) + 1)]
    assert sum(len(p["opened"]) for p in parts) == 400 and sum(len(p["closed"]) for p in parts) == 200
    assert parts[0]["caller"] == "bob" and all(p["runId"] == "r1" for p in parts)
    assert all(p.get("continued") for p in parts[1:])


def stdlib(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def measured(text: str) -> int:
    return len(text.encode()) + text.count(",") + text.count(":")


def test_each_part_text_is_the_standard_librarys_canonical_json_of_the_part() -> None:
    for part in encode_parts(record(400), budget=20_000):
        assert part.text() == stdlib(dict(part.record))
    [whole] = encode_parts(record(3))
    assert whole.text() == stdlib(record(3))


def test_pairs_of_very_different_sizes_still_give_parts_under_the_budget_in_order() -> None:
    # The part count is estimated from a sample; here most pairs are small and a stretch of them is 50 times
    # larger, so the estimate is far off and parts must be halved until they fit.
    small = {"vnets": ["a", "b"], "cause": []}
    large = {"vnets": ["c" * 2000, "d" * 2000], "cause": [{"text": "é" * 500}]}
    opened = [dict(small, n=i) for i in range(3000)]
    opened[1000:1100] = [dict(large, n=i) for i in range(1000, 1100)]
    big = {"runId": "r1", "time": "t", "trigger": {"kind": "event"}, "outcome": "committed",
           "opened": opened, "closed": [], "pending": [{"vnets": ["x", "y"], "share": 0.25}]}
    parts = encode_parts(big, budget=60_000)
    assert all(measured(p.text()) <= 60_000 for p in parts)
    assert [n for p in parts for n in (x["n"] for x in p.record["opened"])] == list(range(3000))
    assert [p.record["part"] for p in parts] == list(range(1, len(parts) + 1))
    assert {p.record["parts"] for p in parts} == {len(parts)}
    assert all(p.text() == stdlib(dict(p.record)) for p in parts)  # the float is spelt as json spells it
    assert sum(len(p.record["pending"]) for p in parts) == 1


def test_a_pair_larger_than_the_budget_is_a_part_of_its_own() -> None:
    huge = {"vnets": ["v" * 30_000, "w"], "cause": []}
    big = {"runId": "r1", "time": "t", "trigger": {"kind": "event"}, "outcome": "committed",
           "opened": [{"vnets": ["a", "b"]}] * 5 + [huge] + [{"vnets": ["a", "b"]}] * 5, "closed": []}
    parts = encode_parts(big, budget=20_000)
    assert [len(p.record["opened"]) for p in parts if huge in p.record["opened"]] == [1]
    assert sum(len(p.record["opened"]) for p in parts) == 11


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["opened", "closed"]),
                          st.sampled_from(["info", "warning", "critical", "other", None])), max_size=60),
       st.integers(0, 70))
def test_the_most_severe_pairs_are_those_a_stable_sort_by_severity_keeps(
        items: list[tuple[str, str | None]], count: int) -> None:
    from shared.app.auditor import SEVERITY_RANK, _most_severe

    docs = [(verb, {"severity": severity, "n": i}) for i, (verb, severity) in enumerate(items)]
    ranked = sorted(docs, key=lambda item: -SEVERITY_RANK.get(str(item[1].get("severity")), 0))
    assert _most_severe(docs, count) == ranked[:count]


def test_a_records_measure_counts_each_separator_once_more() -> None:
    from shared.app.auditor import _measure

    text = '{"a":[1,2],"b":"x:y,z","c":"∆"}'
    data = text.encode()
    assert _measure(data) == len(data) + text.count(",") + text.count(":")
    assert _measure(data[:7], data[7:]) == _measure(data)
