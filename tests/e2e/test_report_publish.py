"""The auditor writes the report page after each committed change (local folder publisher), and alerts name it."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.adapters.notify.render import render_text
from shared.adapters.store import LocalAuditLog, LocalRecheckQueue, LocalStateStore
from shared.adapters.store.report import LocalReportPublisher, dated_report_name
from shared.app.auditor import COMMITTED, NO_CHANGE, Auditor, RunTrigger
from tests.auditor_support import FakeReader, RecordingNotifier, event_trigger
from tests.builders import lab, rid

GW1 = rid("virtualNetworkGateways", "ergw-01")
NOW = datetime(2026, 11, 25, 22, 43, 0, tzinfo=UTC)


def make(tmp_path: Path, report: object) -> tuple[Auditor, FakeReader, RecordingNotifier]:
    reader, notifier = FakeReader(lab((2,))), RecordingNotifier()
    auditor = Auditor(reader=reader, state=LocalStateStore(tmp_path), audit=LocalAuditLog(tmp_path),
                      notifiers=[notifier], recheck=LocalRecheckQueue(tmp_path), report=report,  # type: ignore[arg-type]
                      clock=lambda: NOW)
    return auditor, reader, notifier


def cells(page: str) -> str:
    found = re.search(r'"cells":"([a-z]*)"', page)
    assert found is not None
    return found.group(1)


def test_each_committed_change_writes_latest_and_a_dated_copy_that_the_alert_names(tmp_path: Path) -> None:
    folder = tmp_path / "er-transit-report"
    auditor, reader, notifier = make(tmp_path, LocalReportPublisher(folder))
    assert auditor.run(RunTrigger(kind="reconcile")).outcome == COMMITTED  # the baseline
    # (1,2) blocked by ergw-01, (1,3) by both, (2,3) by ergw-03
    assert cells((folder / "latest.html").read_text(encoding="utf-8")) == "axb"
    reader.resources = lab((1, 2))
    result = auditor.run(event_trigger("e1", GW1))
    assert result.outcome == COMMITTED and len(result.opened) == 1
    latest = (folder / "latest.html").read_text(encoding="utf-8")
    assert cells(latest) == "obb" and "committed run 2" in latest
    dated = folder / dated_report_name(sequence=2, when=NOW)
    assert dated.read_text(encoding="utf-8") == latest
    assert (folder / dated_report_name(sequence=1, when=NOW)).is_file()
    (alert,) = notifier.accepted
    assert alert["report"] == {"location": str(folder), "latest": "latest.html",
                               "copy": dated_report_name(sequence=2, when=NOW)}
    assert f"report: {folder}/2026/11/25/report-20261125T224300Z-run-000002.html" in render_text(alert)


def test_a_run_that_commits_nothing_writes_no_page(tmp_path: Path) -> None:
    folder = tmp_path / "pages"
    auditor, _, _ = make(tmp_path, LocalReportPublisher(folder))
    auditor.run(RunTrigger(kind="reconcile"))
    before = sorted(p.name for p in folder.rglob("*.html"))
    assert auditor.run(RunTrigger(kind="reconcile")).outcome == NO_CHANGE
    assert sorted(p.name for p in folder.rglob("*.html")) == before


class BrokenPublisher:
    location = "er-transit-report"

    def names(self, *, sequence: int, when: datetime) -> tuple[str, str]:
        return "latest.html", dated_report_name(sequence=sequence, when=when)

    def publish(self, page: str, *, sequence: int, when: datetime) -> None:
        raise OSError("storage unavailable")


def test_a_report_that_cannot_be_written_never_fails_the_run(tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    auditor, reader, notifier = make(tmp_path, BrokenPublisher())
    auditor.run(RunTrigger(kind="reconcile"))
    reader.resources = lab((1, 2))
    with caplog.at_level(logging.ERROR, logger="shared.app.auditor"):
        result = auditor.run(event_trigger("e1", GW1))
    assert result.outcome == COMMITTED and len(notifier.accepted) == 1
    assert "could not write the report page to er-transit-report" in caplog.text


def test_the_page_marks_what_the_apps_policy_forbids(tmp_path: Path) -> None:
    from shared.core.policy import parse_policy

    folder = tmp_path / "pages"
    auditor, reader, _ = make(tmp_path, LocalReportPublisher(folder))
    auditor.report_policy = parse_policy("forbidden:\n  - name: no-hub-02\n    a: {name: hub-02}\n")
    auditor.run(RunTrigger(kind="reconcile"))
    reader.resources = lab((1, 2))
    auditor.run(event_trigger("e1", GW1))
    page = (folder / "latest.html").read_text(encoding="utf-8")
    found = re.search(r'"pairs":\[\[0,1,\[0\],1,0,0,(\d+),(\d+),', page)
    assert found is not None and found.groups() == ("1", "0")
    assert "forbidden by 'no-hub-02'" in page
