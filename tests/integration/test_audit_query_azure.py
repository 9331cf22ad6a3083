"""`audit list|show|history --from-settings` on append blobs in Azurite: the same answers as on a local folder, and
a question about a few days lists and downloads only those days' blobs (seen in the SDK's own request log)."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import pytest
from azure.core.pipeline.policies import HttpLoggingPolicy

from benchmarks.bench_audit_query import generated_lines
from shared.cli import main

pytestmark = pytest.mark.azurite

TODAY = datetime.now(UTC).date()
DAYS, PER_DAY = 15, 10


def upload(connection_string: str, days: int) -> tuple[str, dict[str, list[dict[str, Any]]]]:
    """A generated log of `days` day blobs in a fresh container: its name and the records per blob."""
    from azure.storage.blob import BlobServiceClient

    container_name = f"audit-q-{uuid.uuid4().hex[:12]}"
    container = BlobServiceClient.from_connection_string(connection_string).create_container(container_name)
    by_file: dict[str, list[str]] = {}
    for file, line in generated_lines(days, PER_DAY, last_day=TODAY, parts_every=5):
        by_file.setdefault(file, []).append(line)
    for file, lines in by_file.items():
        blob = container.get_blob_client(file)
        blob.create_append_blob()
        for line in lines:  # one append block per record, as the auditor writes them
            blob.append_block(line.encode("utf-8"))
    return container_name, {f: [json.loads(line) for line in lines] for f, lines in by_file.items()}


@pytest.fixture(scope="module")
def uploaded(azurite: Any) -> tuple[str, dict[str, list[dict[str, Any]]]]:
    return upload(azurite.connection_string, DAYS)


def point_settings_at(monkeypatch: pytest.MonkeyPatch, connection_string: str, container: str) -> None:
    monkeypatch.setenv("AuditorStorage", connection_string)
    monkeypatch.setenv("AUDIT_CONTAINER", container)
    monkeypatch.setenv("STATE_CONTAINER", f"state-q-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def azure_log(azurite: Any, uploaded: tuple[str, dict[str, list[dict[str, Any]]]],
              monkeypatch: pytest.MonkeyPatch) -> dict[str, list[dict[str, Any]]]:
    """The generated log (read only by these tests); the app settings point at it."""
    point_settings_at(monkeypatch, azurite.connection_string, uploaded[0])
    return uploaded[1]


class Requests(logging.Handler):
    """The SDK's HTTP request log (azure.core HttpLoggingPolicy), as (method, blob name or '', list prefix)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.urls: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Request URL: "):
            self.urls.append(message.split("'")[1])

    def listings(self) -> list[str]:
        return [parse_qs(urlparse(u).query).get("prefix", ["<none>"])[0] for u in self.urls
                if "comp=list" in urlparse(u).query]

    def downloads(self) -> list[str]:
        return [unquote(urlparse(u).path.rsplit("/", 1)[-1]) for u in self.urls
                if urlparse(u).path.count("/") >= 3 and "comp=" not in urlparse(u).query]


@pytest.fixture
def requests_seen(monkeypatch: pytest.MonkeyPatch) -> Iterator[Requests]:
    # Let the request log show the listing prefix (the SDK redacts query values it does not allow-list).
    monkeypatch.setattr(HttpLoggingPolicy, "DEFAULT_QUERY_PARAMS_ALLOWLIST", {"api-version", "prefix", "comp"})
    handler = Requests()
    logger = logging.getLogger("azure.core.pipeline.policies.http_logging_policy")
    monkeypatch.setattr(logger, "propagate", False)
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["audit", *args, "--from-settings"])
    out, err = capsys.readouterr()
    return code, out, err


def committed(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["outcome"] == "committed" and "continued" not in r]


def test_a_one_day_question_lists_and_downloads_only_that_day_and_the_next(
        azure_log: dict[str, list[dict[str, Any]]], requests_seen: Requests,
        capsys: pytest.CaptureFixture[str]) -> None:
    day = TODAY - timedelta(days=7)
    code, out, err = run(capsys, "list", "--since", f"{day}", "--until", f"{day}T23:59:59Z", "--json")
    assert code == 0, err
    expected = [r["runId"] for r in reversed(committed(azure_log[f"audit-{day}.jsonl"]))]
    assert [json.loads(line)["runId"] for line in out.splitlines()] == expected
    assert len(expected) == PER_DAY
    next_day = day + timedelta(days=1)
    assert set(requests_seen.listings()) == {f"audit-{day}", f"audit-{next_day}"}
    # The next day's blob is read only up to its first record past the window: one download at most.
    assert set(requests_seen.downloads()) <= {f"audit-{day}.jsonl", f"audit-{next_day}.jsonl"}
    assert f"audit-{day}.jsonl" in requests_seen.downloads()


def test_a_relative_window_reads_only_its_days(
        azure_log: dict[str, list[dict[str, Any]]], requests_seen: Requests,
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "list", "--since", "2d")
    assert code == 0, err
    cut = datetime.now(UTC) - timedelta(days=2)
    expected = [r for rs in azure_log.values() for r in committed(rs) if datetime.fromisoformat(r["recordedAt"]) >= cut]
    assert out.splitlines()[0] == f"{len(expected)} committed changes, newest first"
    assert {d for d in requests_seen.downloads()} <= {f"audit-{TODAY - timedelta(days=n)}.jsonl" for n in range(3)}
    assert "audit-" not in requests_seen.listings()  # never a listing of the whole log


def test_show_finds_an_alert_with_its_parts_and_deliveries_and_verifies_the_chain(
        azure_log: dict[str, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]) -> None:
    records = [r for rs in azure_log.values() for r in rs]
    big = next(r for r in records if r.get("part") == 1)
    code, out, err = run(capsys, "show", big["alertId"])
    assert code == 0, err
    assert out.startswith(f"run {big['runId']}: committed\n")
    assert f"({big['parts']} parts)" in out
    pairs = sum(len(r["opened"]) + len(r["closed"]) for r in records if r["runId"] == big["runId"] and "part" in r)
    assert out.count("  OPENED  ") + out.count("  CLOSED  ") == pairs
    assert f"alert {big['alertId']}: teams" in out
    assert "chain: intact up to it (" in out


def test_history_on_the_azure_log_without_a_committed_state(
        azure_log: dict[str, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]) -> None:
    first = committed(azure_log[sorted(azure_log)[0]])[1]
    a, b = (v.rsplit("/", 1)[-1] for v in (first["opened"] + first["closed"])[0]["vnets"])
    code, out, err = run(capsys, "history", a, b)
    assert code == 0, err
    assert first["runId"] in out and f"by {first['caller']}" in out
    assert out.splitlines()[-1] == "now: unknown (no committed state in the store)"


def test_a_damaged_line_in_a_day_blob_is_one_line_exit_2(
        azurite: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from azure.storage.blob import BlobServiceClient

    container, records = upload(azurite.connection_string, 2)
    point_settings_at(monkeypatch, azurite.connection_string, container)
    name = f"audit-{TODAY}.jsonl"
    blob = BlobServiceClient.from_connection_string(azurite.connection_string).get_blob_client(container, name)
    blob.append_block(b'{"seq": "torn\n')
    code, out, err = run(capsys, "list", "--since", "1d")
    assert code == 2 and out == ""
    assert err == f"error: {name} line {len(records[name]) + 1} is not valid JSON (a damaged record); " \
                  "run `audit verify`\n"
