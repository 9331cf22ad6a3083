"""Questions to the audit log, pure: times, windows, parts joined back, deliveries linked, filters, texts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from shared.app.auditor import split_record
from shared.core.audit_query import (
    AuditFilter,
    AuditQueryError,
    LoggedRecord,
    PartJoiner,
    Window,
    changes,
    pair_history,
    parse_outcomes,
    parse_when,
)
from shared.core.audit_views import history_text, list_text, printable

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SUB = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.Network"


def vnet(name: str, sub: str = SUB) -> str:
    return f"{sub}/virtualNetworks/{name}"


def pair(a: str, b: str, cause: str = "ergw-01 allowRemoteVnetTraffic false -> true", **extra: Any) -> dict[str, Any]:
    return {"vnets": [vnet(a), vnet(b)], "cause": [{"text": cause}], "status": "confirmed", **extra}


def logged(record: dict[str, Any], *, at: datetime = NOW, seq: int = 1, line: int = 1,
           file: str = "audit-2026-11-25.jsonl") -> LoggedRecord:
    doc = {"seq": seq, "recordedAt": at.isoformat(), "time": at.isoformat(), **record}
    return LoggedRecord(doc, file, line, at, 1, file, line)


def commit(run_id: str, *, opened: list[Any] = (), closed: list[Any] = (), caller: str | None = "bob@x.example",
           **extra: Any) -> dict[str, Any]:
    return {"runId": run_id, "outcome": "committed", "caller": caller, "trigger": {"kind": "event"},
            "opened": list(opened), "closed": list(closed), "pending": [], **extra}


# ---- times and windows -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-20", datetime(2026, 11, 20, tzinfo=UTC)),
    ("2026-11-20T09:30:00Z", datetime(2026, 11, 20, 9, 30, tzinfo=UTC)),
    ("2026-11-20T09:30", datetime(2026, 11, 20, 9, 30, tzinfo=UTC)),
    ("2026-11-20T18:30+09:00", datetime(2026, 11, 20, 9, 30, tzinfo=UTC)),
    ("7d", NOW - timedelta(days=7)),
    ("12h", NOW - timedelta(hours=12)),
    ("30m", NOW - timedelta(minutes=30)),
    ("2w", NOW - timedelta(weeks=2)),
    ("12H", NOW - timedelta(hours=12)),
])
def test_times_are_iso_in_utc_or_an_age_before_now(text: str, expected: datetime) -> None:
    assert parse_when(text, now=NOW, what="--since") == expected


@pytest.mark.parametrize("text", ["yesterday", "7", "d7", "-7d", "7y", "2026-13-01", ""])
def test_a_time_that_is_neither_iso_nor_an_age_names_the_option(text: str) -> None:
    with pytest.raises(AuditQueryError, match=r"^--until '.*' is not a time"):
        parse_when(text, now=NOW, what="--until")


def test_a_window_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(AuditQueryError, match="is after --until"):
        Window(NOW, NOW - timedelta(hours=1))


def test_a_window_picks_the_files_of_its_days_and_keeps_later_files_apart() -> None:
    names = ["audit-2026-11-19.jsonl", "audit-2026-11-20.jsonl", "audit-2026-11-21.jsonl", "audit-2026-11-23.jsonl",
             "state.json", "audit-2026-1-1.jsonl"]
    window = Window(datetime(2026, 11, 20, 10, tzinfo=UTC), datetime(2026, 11, 21, 1, tzinfo=UTC))
    assert window.split_files(names) == (["audit-2026-11-20.jsonl", "audit-2026-11-21.jsonl"],
                                         ["audit-2026-11-23.jsonl"])
    assert Window().split_files(names) == ([n for n in names[:4]], [])


def test_listing_prefixes_are_days_for_a_short_window_months_for_longer_years_for_very_long() -> None:
    today = date(2026, 11, 25)
    one_day = Window(datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 20, 23, tzinfo=UTC))
    assert one_day.name_prefixes(today=today) == ["audit-2026-11-20", "audit-2026-11-21"]
    week = Window(datetime(2026, 10, 28, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC))
    assert week.name_prefixes(today=today) == ["audit-2026-10-", "audit-2026-11-"]
    assert Window(datetime(2026, 11, 18, tzinfo=UTC)).name_prefixes(today=today) == [
        "audit-2026-11-"]  # open end: up to the day after today
    decade = Window(datetime(2016, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))
    assert decade.name_prefixes(today=today)[0] == "audit-2016-"
    assert Window().name_prefixes(today=today) == ["audit-"]


# ---- parts --------------------------------------------------------------------------------------------------------

def big_record(n: int) -> dict[str, Any]:
    return commit("run-big", opened=[pair(f"a{i:03d}", f"b{i:03d}") for i in range(n)],
                  closed=[pair(f"c{i:03d}", f"d{i:03d}") for i in range(n // 2)], time="2026-11-25T12:00:00+00:00")


def feed_all(joiner: PartJoiner, records: list[dict[str, Any]], file: str = "audit-2026-11-25.jsonl") -> list[Any]:
    out = []
    for n, record in enumerate(records, start=1):
        doc = {"seq": n, **record}
        got = joiner.feed(doc, file=file, line=n, recorded_at=NOW + timedelta(seconds=n))
        if got is not None:
            out.append(got)
    return out


def test_a_record_written_in_parts_is_joined_back_with_every_pair_in_order() -> None:
    parts = split_record(big_record(300), budget=8_000)
    assert len(parts) > 3
    other = commit("run-other", opened=[pair("x", "y")], time="2026-11-25T12:00:01+00:00")
    # Another run's record lands between the parts (concurrent appends interleave).
    got = feed_all(PartJoiner(), [parts[0], other, *parts[1:]])
    assert [g.record["runId"] for g in got] == ["run-other", "run-big"]
    joined = got[1]
    assert joined.parts == len(parts) and joined.line == 1 and joined.last_line == len(parts) + 1
    assert [p["vnets"][0][-4:] for p in joined.record["opened"]] == [f"a{i:03d}" for i in range(300)]
    assert len(joined.record["closed"]) == 150
    assert joined.record["caller"] == "bob@x.example"
    assert "part" not in joined.record and "continued" not in joined.record


def test_parts_appended_twice_after_a_crash_are_joined_once() -> None:
    parts = split_record(big_record(100), budget=8_000)
    got = feed_all(PartJoiner(), [parts[0], parts[1], parts[0], parts[1], *parts[2:]])
    assert len(got) == 1 and len(got[0].record["opened"]) == 100


def test_a_missing_part_is_an_error_naming_the_run_and_where_it_starts() -> None:
    parts = split_record(big_record(100), budget=8_000)
    joiner = PartJoiner()
    feed_all(joiner, parts[:-1])
    error = joiner.missing_parts_error()
    assert error is not None
    assert str(error).startswith("audit-2026-11-25.jsonl line 1: run run-big is recorded in")
    with pytest.raises(AuditQueryError, match="follows part 1"):
        feed_all(PartJoiner(), [parts[0], parts[2]])


def test_a_continuation_without_its_first_part_is_an_error_unless_a_window_cut_it_off() -> None:
    parts = split_record(big_record(100), budget=8_000)
    with pytest.raises(AuditQueryError, match=r"line 1: part 2 of \d+ of run run-big without its earlier parts"):
        feed_all(PartJoiner(), parts[1:])
    assert feed_all(PartJoiner(skip_leading_orphans=True), parts[1:]) == []


def test_a_whole_record_appended_twice_is_listed_once() -> None:
    record = commit("run-1", opened=[pair("a", "b")], time="t1")
    assert len(feed_all(PartJoiner(), [record, record])) == 1


# ---- filters, alerts and deliveries -------------------------------------------------------------------------------

def delivery(run_id: str, delivered: list[str], undelivered: list[str] = ()) -> dict[str, Any]:
    return {"runId": run_id, "outcome": "delivery", "delivered": delivered, "undelivered": list(undelivered)}


def sample_log() -> list[LoggedRecord]:
    t = datetime(2026, 11, 20, 9, tzinfo=UTC)
    return [
        logged(commit("r1", caller=None, baseline=True, pairs=3), at=t, seq=1),
        logged(commit("r2", opened=[pair("hub-01", "hub-02")], alertId="a2", notifiers=["teams", "slack"]),
               at=t + timedelta(hours=1), seq=2),
        logged(delivery("r2", ["a2:teams"], ["a2:slack"]), at=t + timedelta(hours=1, seconds=1), seq=3),
        logged(commit("r3", closed=[pair("hub-02", "hub-03", "connection conn-02 removed")], caller="Carol@X.example",
                      alertId="a3", notifiers=["teams"]), at=t + timedelta(days=1), seq=4),
        logged({"runId": "r4", "outcome": "no change", "caller": None, "trigger": {"kind": "reconcile"}},
               at=t + timedelta(days=1, hours=1), seq=5),
        logged(delivery("r5", ["a2:slack"]), at=t + timedelta(days=2), seq=6),
        logged(commit("r6", opened=[pair("hub-01", "hub-03")]), at=t + timedelta(days=2, hours=1), seq=7),
        logged(delivery("r6", ["legacy:console"]), at=t + timedelta(days=2, hours=1, seconds=1), seq=8),
    ]


def test_the_list_holds_committed_changes_newest_first_with_alert_and_where_it_was_delivered() -> None:
    found = changes(sample_log(), AuditFilter())
    assert [c.logged.record["runId"] for c in found] == ["r6", "r3", "r2", "r1"]
    by_run = {c.logged.record["runId"]: c for c in found}
    assert by_run["r2"].alert_id == "a2"
    assert by_run["r2"].deliveries == ("teams", "slack")  # slack failed once, then a later run delivered it
    assert [(a.notifier, a.delivered) for a in by_run["r2"].attempts] == [("teams", True), ("slack", False),
                                                                          ("slack", True)]
    assert by_run["r3"].deliveries == ("teams: not attempted yet",)
    assert by_run["r6"].alert_id == "legacy" and by_run["r6"].deliveries == ("console",)  # record without alertId
    assert by_run["r1"].alert_id is None


def test_an_alert_that_failed_and_was_not_retried_says_so() -> None:
    log = sample_log()[:3]
    found = changes(log, AuditFilter())
    assert found[0].deliveries == ("teams", "slack: not delivered (1 attempt)")


def test_one_vnet_selects_changes_touching_it_two_select_that_pair_in_either_order() -> None:
    log = sample_log()
    runs = lambda f: [c.logged.record["runId"] for c in changes(log, f)]  # noqa: E731
    assert runs(AuditFilter(vnets=("hub-03",))) == ["r6", "r3"]
    assert runs(AuditFilter(vnets=("HUB-03", "hub-02"))) == ["r3"]
    assert runs(AuditFilter(vnets=(vnet("hub-01"), "hub-02"))) == ["r2"]
    assert runs(AuditFilter(vnets=(vnet("hub-01", "/subscriptions/other/resourceGroups/rg/providers/x"),))) == []


def test_caller_matches_any_part_in_any_case_and_counts_who_started_a_confirmed_change() -> None:
    log = [*sample_log(), logged(commit("r9", caller=None, opened=[pair("a", "b", firstCaller="dave@x.example")]),
                                 seq=9)]
    assert [c.logged.record["runId"] for c in changes(log, AuditFilter(caller="carol"))] == ["r3"]
    assert [c.logged.record["runId"] for c in changes(log, AuditFilter(caller="DAVE@"))] == ["r9"]


def test_time_window_and_outcomes_filter() -> None:
    log = sample_log()
    day2 = Window(datetime(2026, 11, 21, tzinfo=UTC), datetime(2026, 11, 21, 23, 59, tzinfo=UTC))
    assert [c.logged.record["runId"] for c in changes(log, AuditFilter(window=day2))] == ["r3"]
    everything = changes(log, AuditFilter(window=day2, outcomes=parse_outcomes(["all"])))
    assert [c.logged.record["outcome"] for c in everything] == ["no change", "committed"]
    assert parse_outcomes(["no-change,incomplete"]) == frozenset({"no change", "incomplete read"})
    assert parse_outcomes(["lost race"]) == frozenset({"lost race"})


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"vnets": ("a", "b", "c")}, "--vnet given 3 times"),
    ({"vnets": (" ",)}, "--vnet needs"),
    ({"caller": ""}, "--caller needs"),
])
def test_bad_filters_are_refused_with_the_option_named(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(AuditQueryError, match=message):
        AuditFilter(**kwargs)


def test_an_unknown_outcome_lists_the_known_ones() -> None:
    with pytest.raises(AuditQueryError, match="'comitted' is not an outcome: one of committed, no-change"):
        parse_outcomes(["comitted"])


# ---- texts ----------------------------------------------------------------------------------------------------------

def test_the_list_table_shows_time_who_cause_counts_alert_and_deliveries() -> None:
    text = list_text(changes(sample_log(), AuditFilter()), outcomes=frozenset({"committed"}))
    lines = text.splitlines()
    assert lines[0] == "4 committed changes, newest first"
    assert lines[1].split() == ["time", "(UTC)", "who", "cause", "opened", "closed", "alert", "delivered", "to"]
    row = next(line for line in lines if " a2 " in line)
    assert row.split("  ")[0] == "2026-11-20 10:00:00"
    cells = [c.strip() for c in row.split("  ") if c.strip()]
    assert cells == ["2026-11-20 10:00:00", "bob@x.example", "ergw-01 allowRemoteVnetTraffic false -> true", "1", "0",
                     "a2", "teams, slack"]
    assert "baseline (3 pairs)" in text
    assert list_text([], outcomes=frozenset({"committed"})) == "no committed changes match"


def test_names_and_callers_others_control_are_printed_escaped() -> None:
    hostile = commit("r1", caller="eve\x1b[2J@x.example", opened=[pair("a", "b", "evil\nforged line")])
    text = list_text(changes([logged(hostile)], AuditFilter()), outcomes=frozenset({"committed"}))
    assert "\x1b" not in text and "eve\\x1b[2J@x.example" in text
    assert "evil\\nforged line" in text
    assert printable("a\u202eb") == "a\\u202eb"


def test_a_long_vnet_name_and_many_causes_fit_the_table_without_losing_the_count() -> None:
    long_a, long_b = "v" * 80, "w" * 80
    many = [pair(long_a, long_b, f"cause {i}") for i in range(12)]
    text = list_text(changes([logged(commit("r1", opened=many))], AuditFilter()), outcomes=frozenset({"committed"}))
    assert "cause 0 (+11 more)" in text and " 12 " in text


def test_history_lists_each_opening_and_closing_with_who_and_why_oldest_first() -> None:
    log = [*sample_log(),
           logged(commit("r7", closed=[pair("hub-02", "hub-01", "ergw-02 allowRemoteVnetTraffic true -> false",
                                            explanation=["ergw-02 does not allow remote VNet traffic"])],
                         caller="carol@x.example"), at=datetime(2026, 11, 23, tzinfo=UTC), seq=9)]
    events = pair_history(log, "hub-01", "hub-02")
    assert [(e.direction, e.logged.record["runId"]) for e in events] == [("opened", "r2"), ("closed", "r7")]
    text = history_text("hub-01", "hub-02", events, "closed (committed state, run 9)")
    assert text.splitlines()[0] == "history of hub-01 <-> hub-02: 2 changes recorded"
    assert "OPENED by bob@x.example" in text and "cause: ergw-01 allowRemoteVnetTraffic" in text
    assert "now missing: ergw-02 does not allow remote VNet traffic" in text
    assert text.splitlines()[-1] == "now: closed (committed state, run 9)"


def test_history_refuses_a_name_that_stands_for_two_vnets() -> None:
    other = "/subscriptions/99999999-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.Network"
    log = [logged(commit("r1", opened=[pair("hub-01", "hub-02")]), seq=1),
           logged(commit("r2", opened=[{"vnets": [vnet("hub-01", other), vnet("hub-02")], "cause": []}]), seq=2)]
    with pytest.raises(AuditQueryError, match="VNet 'hub-01' names 2 VNets in the log"):
        pair_history(log, "hub-01", "hub-02")
    assert len(pair_history(log, vnet("hub-01"), "hub-02")) == 1
