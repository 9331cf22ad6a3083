"""A large change is recorded in several audit parts, each small enough for one append block."""

from __future__ import annotations

import json

from shared.app.auditor import split_record


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
