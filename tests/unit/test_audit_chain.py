"""The audit hash chain on literal records: what verify_audit accepts and the first break it names."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from shared.adapters.store import AuditLine, chain_next, verify_audit

ZERO = "0" * 64


def _canonical(value: Any) -> str:
    # Written out here (not imported) so the tests pin the specified spelling.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _seal(body: dict[str, Any], prev: dict[str, Any] | None, seq: int, at: str) -> dict[str, Any]:
    record = {**body, "seq": seq, "prevHash": ZERO if prev is None else _sha(_canonical(prev)), "recordedAt": at}
    record["hash"] = _sha(_canonical(record))
    return record


def _chain(count: int, day: str = "2024-03-10") -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for i in range(1, count + 1):
        body = {
            "trigger": "timer",
            "caller": "system",
            "correlationId": f"c-{i}",
            "opened": [],
            "closed": [{"pair": ["vnet-a", "vnet-b"], "cause": "useRemoteGateways true -> false"}],
            "outcome": "committed" if i % 2 else "no change",
        }
        records.append(_seal(body, records[-1] if records else None, i, f"{day}T10:00:0{i % 10}Z"))
    return records


def test_literal_chain_verifies_with_its_count() -> None:
    result = verify_audit(_chain(4))
    assert (result.ok, result.count, result.problem, result.seq, result.file) == (True, 4, None, None, None)


def test_empty_log_is_intact() -> None:
    assert verify_audit([]).ok and verify_audit([]).count == 0


def test_chain_next_follows_the_specified_hashing() -> None:
    body = {"trigger": "event", "caller": "ops@example.com", "correlationId": "x", "outcome": "duplicate", "ü": "ö"}
    first = chain_next(None, body, recorded_at=datetime(2024, 3, 10, 10, 0, 1, tzinfo=UTC))
    second = chain_next(first, body, recorded_at=datetime(2024, 3, 10, 12, 0, 1, tzinfo=timezone(timedelta(hours=2))))
    assert first == _seal(body, None, 1, "2024-03-10T10:00:01Z")
    assert second == _seal(body, first, 2, "2024-03-10T10:00:01Z")  # stored in UTC
    assert verify_audit([first, second]).ok


def test_chain_next_refuses_naive_times_and_chain_fields() -> None:
    with pytest.raises(ValueError):
        chain_next(None, {"outcome": "committed"}, recorded_at=datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="prevHash"):
        chain_next(None, {"prevHash": ZERO}, recorded_at=datetime(2024, 1, 1, tzinfo=UTC))


def test_changed_field_is_a_hash_mismatch_at_that_record() -> None:
    records = _chain(5)
    records[3] = {**records[3], "outcome": "committed" if records[3]["outcome"] != "committed" else "no change"}
    result = verify_audit(records)
    assert not result.ok and result.seq == 4 and result.count == 3
    assert result.file == "audit-2024-03-10.jsonl"
    assert result.problem == "record 4 (audit-2024-03-10.jsonl): hash mismatch (record modified)"


def test_removed_hash_field_is_reported() -> None:
    records = _chain(3)
    del records[1]["hash"]
    result = verify_audit(records)
    assert not result.ok and result.seq == 2


def test_rehashed_forgery_breaks_the_following_link() -> None:
    records = _chain(4)
    forged = {k: v for k, v in records[1].items() if k != "hash"}
    forged["opened"] = [{"pair": ["x", "y"], "cause": "forged"}]
    forged["hash"] = _sha(_canonical(forged))
    records[1] = forged
    result = verify_audit(records)
    assert not result.ok and result.seq == 3 and "prevHash" in (result.problem or "")


def test_removed_middle_record_is_named_as_missing() -> None:
    records = _chain(6)
    result = verify_audit(records[:2] + records[3:])
    assert not result.ok and result.seq == 3 and result.count == 2
    assert "record 3 is missing" in (result.problem or "")


def test_several_removed_records_are_named_as_a_range() -> None:
    records = _chain(6)
    result = verify_audit(records[:1] + records[4:])
    assert result.seq == 2 and "records 2-4 are missing" in (result.problem or "")


def test_removed_first_record_is_reported() -> None:
    result = verify_audit(_chain(3)[1:])
    assert not result.ok and result.seq == 1 and "missing" in (result.problem or "")


def test_renumbered_chain_after_removal_fails_on_prev_hash() -> None:
    records = _chain(4)
    kept = records[:1] + records[2:]
    renumbered: list[dict[str, Any]] = []
    for i, record in enumerate(kept, start=1):
        body = {k: v for k, v in record.items() if k not in {"seq", "hash"}}
        body["seq"] = i
        body["hash"] = _sha(_canonical(body))
        renumbered.append(body)
    result = verify_audit(renumbered)
    assert not result.ok and result.seq == 2 and "prevHash" in (result.problem or "")


def test_swapped_records_are_detected() -> None:
    records = _chain(4)
    result = verify_audit([records[0], records[2], records[1], records[3]])
    assert not result.ok and result.seq == 2


def test_duplicated_record_is_detected() -> None:
    records = _chain(3)
    result = verify_audit([records[0], records[1], records[1], records[2]])
    assert not result.ok and result.seq == 2 and "duplicated" in (result.problem or "")


def test_unparsable_line_is_named_with_its_file_and_line() -> None:
    records = _chain(3)
    lines = [AuditLine("audit-2024-03-10.jsonl", n, _canonical(r)) for n, r in enumerate(records, start=1)]
    lines[2] = AuditLine("audit-2024-03-10.jsonl", 3, lines[2].text[:-5])
    result = verify_audit(lines)
    assert not result.ok and result.seq == 3 and result.count == 2
    assert result.problem == "record 3 (audit-2024-03-10.jsonl): line 3 is not valid JSON"


def test_raw_lines_and_parsed_records_agree_across_day_files() -> None:
    day1 = _chain(2, "2024-03-10")
    second = _seal({"outcome": "incomplete read"}, day1[-1], 3, "2024-03-11T00:00:02Z")
    lines = [
        AuditLine("audit-2024-03-10.jsonl", 1, _canonical(day1[0])),
        AuditLine("audit-2024-03-10.jsonl", 2, _canonical(day1[1])),
        AuditLine("audit-2024-03-11.jsonl", 1, _canonical(second)),
    ]
    assert verify_audit(lines).ok and verify_audit([*day1, second]).count == 3
    broken = verify_audit([lines[0], lines[2]])
    assert (broken.seq, broken.file) == (2, "audit-2024-03-11.jsonl")


def test_non_object_line_is_reported() -> None:
    result = verify_audit([AuditLine("audit-2024-03-10.jsonl", 1, "[1, 2]")])
    assert not result.ok and result.seq == 1 and "not a JSON object" in (result.problem or "")
