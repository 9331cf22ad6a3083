"""The function entry points as the host calls them, over real protocols: Event Grid JSON decoded by the
azure-functions converter, the real SDK clients against the fake ARM over HTTPS, Azurite for state/audit/queue,
and a local HTTP server standing in for the chat webhook."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.functions.eventgrid import EventGridEventInConverter
from azure.functions.meta import Datum
from azure.functions.timer import TimerRequest
from pytest_httpserver import HTTPServer

import function_app
from shared import entrypoints
from shared.adapters.arm import ResourceGraphTopologyReader
from shared.adapters.notify import WebhookNotifier
from shared.adapters.store import AppendBlobAuditLog, BlobStateStore, StorageQueueRecheck, verify_audit
from shared.app.auditor import Auditor
from tests.builders import SUB, lab
from tests.integration.fake_arm import FakeArmServer, arm_error, fake_arm  # noqa: F401

STORY = Path(__file__).resolve().parents[2] / "examples" / "replay-lab"


def host_events(path: Path) -> list[Any]:
    """Decode an Event Grid delivery exactly as the Functions host does."""
    return [EventGridEventInConverter.decode(Datum(json.dumps(item), "json"), trigger_metadata=None)
            for item in json.loads(path.read_text())]


@pytest.fixture
def webhook(httpserver: HTTPServer) -> HTTPServer:
    httpserver.expect_request("/alerts", method="POST").respond_with_data("", status=202)
    return httpserver


@pytest.fixture
def live(fake_arm: FakeArmServer, azurite: Any, webhook: HTTPServer) -> Iterator[dict[str, Any]]:  # noqa: F811
    suffix = uuid.uuid4().hex[:8]
    reader = ResourceGraphTopologyReader(fake_arm.credential, [SUB], **fake_arm.client_options())
    conn = azurite.connection_string
    audit = AppendBlobAuditLog(connection_string=conn, container=f"audit-{suffix}")
    auditor = Auditor(
        reader=reader,
        state=BlobStateStore(connection_string=conn, container=f"state-{suffix}"),
        audit=audit,
        recheck=StorageQueueRecheck(connection_string=conn, queue=f"recheck-{suffix}"),
        notifiers=[WebhookNotifier("json", webhook.url_for("/alerts"), name="json:JSON_WEBHOOK_URL",
                                   max_attempts=2, sleep=lambda s: None)],
    )
    entrypoints.use(auditor)
    yield {"arm": fake_arm, "reader": reader, "audit": audit, "auditor": auditor}
    entrypoints.reset()


def posted(server: HTTPServer) -> list[dict[str, Any]]:
    return [json.loads(req.get_data()) for req, _ in server.log if req.path == "/alerts"]


def test_the_lab_through_the_function_entry_points(live: dict[str, Any], webhook: HTTPServer) -> None:
    arm: FakeArmServer = live["arm"]
    arm.set_resources({SUB: lab(())})
    function_app.reconcile(TimerRequest(past_due=False))  # baseline
    arm.set_resources({SUB: lab((2,))})
    for event in host_events(STORY / "02-enable-gw2" / "event.json"):
        function_app.on_resource_event(event)
    assert posted(webhook) == []  # only gateway 2 allows: nothing opens

    arm.set_resources({SUB: lab((1, 2))})
    arm.clear_requests()
    started = time.perf_counter()
    for event in host_events(STORY / "03-enable-gw1" / "event.json"):
        function_app.on_resource_event(event)
    elapsed = time.perf_counter() - started
    calls = live["reader"].last_read_calls
    print(f"\nper event: {elapsed * 1000:.0f} ms, {calls.resource_graph} Resource Graph + {calls.arm} ARM calls")

    [alert] = posted(webhook)
    assert [sorted(v.rsplit("/", 1)[-1] for v in p["vnets"]) for p in alert["opened"]] == [["hub-01", "hub-02"]]
    assert alert["caller"] == "bob@contoso.example" and alert["correlationId"] == "c0rr-0003-bbbb"
    # Issue 9: an event reads only its own resource with ARM (within 3 calls) and never queries Resource Graph.
    assert calls.resource_graph == 0 and 1 <= calls.arm <= 3

    # Event Grid redelivers the same event: nothing new is posted.
    for event in host_events(STORY / "04-redelivered" / "event.json"):
        function_app.on_resource_event(event)
    assert len(posted(webhook)) == 1
    audit: AppendBlobAuditLog = live["audit"]
    outcomes = [r["outcome"] for r in audit.records()]
    assert outcomes.count("duplicate") == 1
    assert verify_audit(audit.lines()).ok


def test_a_subscription_losing_reader_closes_nothing_and_raises_the_alarm_naming_it(
        live: dict[str, Any], webhook: HTTPServer) -> None:
    arm: FakeArmServer = live["arm"]
    arm.set_resources({SUB: lab((1, 2))})
    function_app.reconcile(TimerRequest(past_due=False))
    before, _ = live["auditor"].state.load()
    arm.deny_subscription(SUB)
    for event in host_events(STORY / "07-delete-conn-02" / "event.json"):
        function_app.on_resource_event(event)  # must not raise: the host would retry it forever
    after, _ = live["auditor"].state.load()
    assert (after.pairs, after.resources, after.sequence) == (before.pairs, before.resources, before.sequence)
    outcomes = [r["outcome"] for r in live["audit"].records()]
    assert "incomplete read" in outcomes and "health raised" in outcomes
    # No transit alert; one health alert that says which subscription and why.
    [alarm] = posted(webhook)
    assert alarm["kind"] == "health" and alarm["condition"] == f"subscription-unreadable:{SUB}"
    assert "no Reader" in alarm["detail"] and alarm["opened"] == alarm["closed"] == []
    for event in host_events(STORY / "07-delete-conn-02" / "event.json"):
        function_app.on_resource_event(event)
    assert len(posted(webhook)) == 1  # raised once, not once per run


def test_a_throttled_or_failing_focus_read_is_incomplete_not_closed(live: dict[str, Any],
                                                                   webhook: HTTPServer) -> None:
    arm: FakeArmServer = live["arm"]
    arm.set_resources({SUB: lab((1, 2))})
    function_app.reconcile(TimerRequest(past_due=False))
    arm.script(r"/connections/conn-02$", arm_error(500, "InternalServerError"), repeat=True)
    for event in host_events(STORY / "07-delete-conn-02" / "event.json"):
        function_app.on_resource_event(event)
    assert posted(webhook) == []
    assert list(live["audit"].records())[-1]["outcome"] == "incomplete read"


def test_malformed_and_irrelevant_events_are_acknowledged(live: dict[str, Any], webhook: HTTPServer) -> None:
    arm: FakeArmServer = live["arm"]
    arm.set_resources({SUB: lab((1, 2))})
    for event in host_events(STORY / "08-unrelated-event" / "event.json"):
        function_app.on_resource_event(event)
    broken = EventGridEventInConverter.decode(Datum(json.dumps({
        "id": "x", "topic": "/subscriptions/s", "subject": "", "eventType": "Microsoft.Resources.ResourceWriteSuccess",
        "eventTime": "2026-11-20T00:00:00Z", "dataVersion": "2", "data": "not an object"}), "json"),
        trigger_metadata=None)
    function_app.on_resource_event(broken)
    assert arm.count() == 0 and posted(webhook) == []


def test_burst_of_50_concurrent_events_on_azure_storage(azurite: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from shared.app.auditor import RunTrigger
    from tests.auditor_support import FakeReader, RecordingNotifier, event_trigger, pair_names
    from tests.builders import rid

    suffix = uuid.uuid4().hex[:8]
    conn = azurite.connection_string
    reader, notifier = FakeReader(lab(())), RecordingNotifier()
    audit = AppendBlobAuditLog(connection_string=conn, container=f"audit-{suffix}")
    state = BlobStateStore(connection_string=conn, container=f"state-{suffix}")
    auditor = Auditor(reader=reader, state=state, audit=audit, notifiers=[notifier])
    auditor.run(RunTrigger(kind="reconcile"))
    reader.resources = lab((1, 2))
    gw1 = rid("virtualNetworkGateways", "ergw-01")
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(lambda i: auditor.run(event_trigger(f"b-{i}", gw1)).outcome, range(50)))
    assert "lost race" not in outcomes
    assert len(notifier.accepted) == 1 and pair_names(notifier.accepted[0]["opened"]) == [("hub-01", "hub-02")]
    committed, _ = state.load()
    assert committed is not None and committed.outbox == []
    from shared.app.auditor import committed_pair_ids

    assert len(committed_pair_ids(committed)) == 1
    assert len([i for i in committed.processed_event_ids if i.startswith("b-")]) == 50
    assert verify_audit(audit.lines()).ok


def test_audit_verify_reads_the_azure_audit_log_from_the_app_settings(azurite: Any) -> None:
    import os
    import subprocess
    import sys

    container = f"audit-{uuid.uuid4().hex[:8]}"
    log = AppendBlobAuditLog(connection_string=azurite.connection_string, container=container)
    for i in range(3):
        log.append({"runId": f"r{i}", "outcome": "no change"})
    # A state container of its own too: `audit verify` cross-checks the committed state's run number.
    env = {**os.environ, "AuditorStorage": azurite.connection_string, "AUDIT_CONTAINER": container,
           "STATE_CONTAINER": f"state-{container}"}
    done = subprocess.run([sys.executable, "-m", "shared.cli", "audit", "verify", "--from-settings"], env=env,
                          capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "audit chain intact: 3 records"
    assert "AccountKey" not in done.stdout + done.stderr


def test_a_garbage_state_blob_is_refused_as_corrupt_not_a_raw_error(azurite: Any) -> None:
    from shared.app.ports import StateCorrupt

    container = f"state-{uuid.uuid4().hex[:8]}"
    store = BlobStateStore(connection_string=azurite.connection_string, container=container)
    store._blob().upload_blob(b"\x1f\x8b not really gzip", overwrite=True)
    with pytest.raises(StateCorrupt) as info:
        store.load()
    assert "cannot be read" in str(info.value) and info.value.etag
