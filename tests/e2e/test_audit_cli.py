"""`audit list|show|history` as a user runs them: on the lab story's store and on a generated month of log."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from benchmarks.bench_audit_query import generated_lines

ROOT = Path(__file__).resolve().parents[2]
TODAY = datetime.now(UTC).date()


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shared.cli", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})


def ok(*args: str | Path) -> str:
    done = cli(*args)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return done.stdout


def refused(*args: str | Path) -> str:
    """The command fails as bad input must: exit 2, one line on stderr, no traceback, nothing on stdout."""
    done = cli(*args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    return done.stderr.strip()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("lab-store")
    done = cli("replay", "examples/replay-lab", "--store", store, "--json")
    assert done.returncode == 0, done.stderr
    return store


def name(vnet_id: str) -> str:
    return vnet_id.rsplit("/", 1)[-1]


def test_list_shows_the_lab_changes_newest_first_with_who_alert_and_delivery(lab: Path) -> None:
    lines = ok("audit", "list", "--store", lab).splitlines()
    assert lines[0] == "5 committed changes, newest first"
    rows = [[c.strip() for c in line.split("  ") if c.strip()] for line in lines[3:]]
    assert [r[1] for r in rows] == ["carol@contoso.example", "alice@contoso.example", "alice@contoso.example",
                                    "bob@contoso.example", "-"]
    bob = rows[3]
    assert bob[2:5] == ["ergw-01 allowRemoteVnetTraffic false -> true", "1", "0"]
    assert len(bob[5]) == 32 and bob[6] == "console"
    assert rows[2][4] == "0 (+2 pending)" and rows[2][5] == "-"  # gateway 3 still Updating: nothing announced
    assert rows[4][2] == "baseline (0 pairs)"


def test_list_json_is_one_record_per_line_with_its_alert_and_deliveries(lab: Path) -> None:
    records = [json.loads(line) for line in ok("audit", "list", "--store", lab, "--json").splitlines()]
    assert len(records) == 5
    bob = records[3]
    assert bob["caller"] == "bob@contoso.example" and bob["outcome"] == "committed"
    assert [[name(v) for v in p["vnets"]] for p in bob["opened"]] == [["hub-01", "hub-02"]]
    assert bob["alertId"] == bob["query"]["alertId"] and bob["query"]["deliveries"] == ["console"]
    assert bob["query"]["file"].startswith("audit-") and bob["query"]["parts"] == 1
    everything = ok("audit", "list", "--store", lab, "--json", "--outcome", "all").splitlines()
    assert len(everything) == 10  # with the no-change, duplicate and delivery records


def test_show_by_alert_id_prints_the_whole_record_its_delivery_and_the_chain(lab: Path) -> None:
    bob = [json.loads(line) for line in ok("audit", "list", "--store", lab, "--json", "--caller", "bob").splitlines()]
    assert len(bob) == 1
    text = ok("audit", "show", bob[0]["alertId"], "--store", lab)
    assert text.startswith(f"run {bob[0]['runId']}: committed\n")
    assert "  changed by: bob@contoso.example" in text and "  correlation id: c0rr-0003-bbbb" in text
    assert "  OPENED  hub-01 <-> hub-02  [status confirmed, severity warning]" in text
    assert "          cause: ergw-01 allowRemoteVnetTraffic false -> true" in text
    assert f"  alert {bob[0]['alertId']}: console" in text and "console: delivered (run" in text
    assert text.rstrip().endswith("chain: intact up to it (3 records checked from the first)")
    by_run = ok("audit", "show", bob[0]["runId"][:10], "--store", lab)
    assert by_run == text


def test_show_of_a_closing_prints_what_now_keeps_it_closed(lab: Path) -> None:
    [carol] = [json.loads(line) for line in
               ok("audit", "list", "--store", lab, "--json", "--caller", "CAROL").splitlines()]
    text = ok("audit", "show", carol["runId"], "--store", lab, )
    assert text.count("  CLOSED  ") == 2
    assert "now missing: ergw-02 has no ExpressRoute connection to a circuit" in text


def test_history_of_the_lab_pair_says_who_opened_and_closed_it_and_that_it_is_closed_now(lab: Path) -> None:
    lines = ok("audit", "history", "hub-01", "hub-02", "--store", lab).splitlines()
    assert lines[0] == "history of hub-01 <-> hub-02: 2 changes recorded"
    assert lines[1].endswith("  OPENED by bob@contoso.example")
    assert lines[2] == "      cause: ergw-01 allowRemoteVnetTraffic false -> true"
    assert "(event: Microsoft.Network/virtualNetworkGateways/write), alert " in lines[3]
    assert lines[4].endswith("  CLOSED by carol@contoso.example")
    assert "      now missing: ergw-02 has no ExpressRoute connection to a circuit" in lines
    assert lines[-1] == "now: closed (committed state, run 6)"
    reverse = ok("audit", "history", "hub-02", "hub-01", "--store", lab).splitlines()
    assert reverse[1:] == lines[1:]


def test_history_of_a_pair_opened_by_the_reconcile_credits_who_started_it_and_says_open(lab: Path) -> None:
    lines = ok("audit", "history", "hub-03", "hub-01", "--store", lab).splitlines()
    assert lines[1].endswith("  PENDING OPEN by alice@contoso.example")  # gateway 3 still Updating
    assert lines[4].endswith("  OPENED by alice@contoso.example") and "(reconcile), alert " in lines[6]
    assert lines[-1] == "now: OPEN (committed state, run 6)"


# ---- a generated month: windows, relative times, parts, damage -------------------------------------------------

DAYS, PER_DAY = 12, 20


@pytest.fixture
def month(tmp_path: Path) -> dict[str, list[dict[str, Any]]]:
    """A generated log of DAYS days ending today, PER_DAY changes a day (each with deliveries; parts weekly)."""
    by_file: dict[str, list[dict[str, Any]]] = {}
    for file, line in generated_lines(DAYS, PER_DAY, last_day=TODAY, parts_every=7):
        by_file.setdefault(file, []).append(json.loads(line))
        with open(tmp_path / file, "a", encoding="utf-8") as handle:
            handle.write(line)
    return by_file


def committed_in(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["outcome"] == "committed" and "continued" not in r]


def test_a_one_day_window_lists_that_days_changes_and_reads_no_other_day(
        tmp_path: Path, month: dict[str, list[dict[str, Any]]]) -> None:
    day = TODAY - timedelta(days=5)
    inside, after = f"audit-{day}.jsonl", f"audit-{day + timedelta(days=1)}.jsonl"
    for file in month:  # every other day's file is damaged: reading one would fail the command
        if file not in (inside, after):
            (tmp_path / file).write_text("{damaged\n", encoding="utf-8")
    rows = ok("audit", "list", "--store", tmp_path, "--since", f"{day}", "--until", f"{day}T23:59:59Z",
              "--json").splitlines()
    expected = committed_in(month[inside])
    assert [json.loads(r)["runId"] for r in rows] == [r["runId"] for r in reversed(expected)]
    assert len(rows) == PER_DAY


def test_relative_times_select_the_last_hours_and_days(tmp_path: Path, month: dict[str, list[dict[str, Any]]]) -> None:
    now = datetime.now(UTC)
    records = [r for rs in month.values() for r in committed_in(rs)]

    def since(delta: timedelta) -> list[str]:
        cut = now - delta
        return sorted(r["runId"] for r in records if datetime.fromisoformat(r["recordedAt"]) >= cut)

    for text, delta in (("36h", timedelta(hours=36)), ("3d", timedelta(days=3)), ("1w", timedelta(weeks=1))):
        got = [json.loads(line)["runId"] for line in
               ok("audit", "list", "--store", tmp_path, "--since", text, "--json").splitlines()]
        assert sorted(got) == since(delta), text
        assert got == sorted(got, key=lambda r: -[x["runId"] for x in records].index(r))  # newest first


def test_a_record_written_in_parts_is_listed_once_with_every_pair(
        tmp_path: Path, month: dict[str, list[dict[str, Any]]]) -> None:
    file = next(f for f, rs in month.items() if any("part" in r for r in rs))
    parts = [r for r in month[file] if "part" in r]
    assert parts[0]["parts"] > 1 and len(parts) == parts[0]["parts"]
    day = file[len("audit-"):-len(".jsonl")]
    listed = [json.loads(line) for line in
              ok("audit", "list", "--store", tmp_path, "--since", day, "--until", f"{day}T23:59:59Z",
                 "--json").splitlines()]
    [joined] = [r for r in listed if r["runId"] == parts[0]["runId"]]
    assert joined["query"]["parts"] == len(parts)
    pairs = sum(len(p["opened"]) + len(p["closed"]) for p in parts)
    assert len(joined["opened"]) + len(joined["closed"]) == pairs > 100
    shown = ok("audit", "show", joined["alertId"], "--store", tmp_path)
    assert shown.count("  OPENED  ") + shown.count("  CLOSED  ") == pairs
    assert f"({len(parts)} parts)" in shown


def test_a_vnet_pair_filter_over_the_whole_log(tmp_path: Path, month: dict[str, list[dict[str, Any]]]) -> None:
    records = [r for rs in month.values() for r in committed_in(rs)]
    first = records[3]["opened"] + records[3]["closed"]
    a, b = (name(v) for v in first[0]["vnets"])
    expected = {r["runId"] for r in records for p in r["opened"] + r["closed"] if {name(v) for v in p["vnets"]}
                == {a, b}}
    got = {json.loads(line)["runId"] for line in
           ok("audit", "list", "--store", tmp_path, "--vnet", b, "--vnet", a, "--json").splitlines()}
    assert got == expected and records[3]["runId"] in got


def test_a_damaged_line_inside_the_window_is_an_error_naming_file_and_line(
        tmp_path: Path, month: dict[str, list[dict[str, Any]]]) -> None:
    file = f"audit-{TODAY - timedelta(days=1)}.jsonl"
    lines = (tmp_path / file).read_text(encoding="utf-8").splitlines(keepends=True)
    lines[6] = lines[6][: len(lines[6]) // 2] + "\n"  # a torn write
    (tmp_path / file).write_text("".join(lines), encoding="utf-8")
    message = refused("audit", "list", "--store", tmp_path, "--since", "3d")
    assert message == f"error: {file} line 7 is not valid JSON (a damaged record); run `audit verify`"
    assert refused("audit", "history", "hub-001", "hub-002", "--store", tmp_path).startswith(f"error: {file} line 7")
    # Also when the filter's names are not on the torn line (a line is passed over unparsed only when the next
    # line's prevHash proves it whole).
    assert refused("audit", "list", "--store", tmp_path, "--since", "3d", "--vnet", "no-such-vnet",
                   "--caller", "nobody").startswith(f"error: {file} line 7")
    # A window that does not reach that day is answered.
    assert ok("audit", "list", "--store", tmp_path, "--until", f"{TODAY - timedelta(days=3)}T12:00:00Z")


@pytest.mark.parametrize("outcome", ["committed", "delivery"])
@pytest.mark.parametrize("extra", [[], ["--caller", "nobody"]])
def test_a_deleted_line_is_an_error_never_a_shorter_answer(
        tmp_path: Path, month: dict[str, list[dict[str, Any]]], outcome: str, extra: list[str]) -> None:
    file = f"audit-{TODAY - timedelta(days=2)}.jsonl"
    lines = (tmp_path / file).read_text(encoding="utf-8").splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if i > 3 and json.loads(line)["outcome"] == outcome)
    removed = json.loads(lines[at])["seq"]
    (tmp_path / file).write_text("".join(lines[:at] + lines[at + 1:]), encoding="utf-8")
    message = refused("audit", "list", "--store", tmp_path, "--since", "4d", *extra)
    assert message.startswith(f"error: {file} line {at + 1}: record {removed} is missing")


def test_show_reports_a_chain_broken_before_the_record(tmp_path: Path, month: dict[str, list[dict[str, Any]]]) -> None:
    first = sorted(month)[0]
    lines = (tmp_path / first).read_text(encoding="utf-8").splitlines(keepends=True)
    target = next(i for i, line in enumerate(lines) if "@contoso.example" in line)
    lines[target] = lines[target].replace("@contoso.example", "@evil.example", 1)
    seq = json.loads(lines[target])["seq"]
    (tmp_path / first).write_text("".join(lines), encoding="utf-8")
    late = committed_in(month[sorted(month)[-1]])[-1]
    done = cli("audit", "show", late["runId"], "--store", tmp_path)
    assert done.returncode == 1, done.stderr
    assert f"chain: BROKEN at record {seq} ({first}): hash mismatch" in done.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["list", "--since", "yesterday"], "error: --since 'yesterday' is not a time: give an ISO time"),
    (["list", "--since", "1d", "--until", "2d"], "is after --until"),
    (["list", "--vnet", "a", "--vnet", "b", "--vnet", "c"], "error: --vnet given 3 times"),
    (["list", "--outcome", "sucess"], "error: --outcome 'sucess' is not an outcome"),
    (["show", "0123456789abcdef"], "error: no run id or alert id '0123456789abcdef' in the audit log"),
    (["show", "not-an-id"], "error: 'not-an-id' is not a run id or alert id"),
    (["history", "hub-01", " "], "error: --vnet needs a VNet name or resource id"),
])
def test_bad_questions_get_one_line_and_exit_2(lab: Path, args: list[str], message: str) -> None:
    assert message in refused("audit", *args, "--store", lab)


def test_a_store_folder_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    assert refused("audit", "list", "--store", tmp_path / "nope") == f"error: no store folder {tmp_path / 'nope'}"
