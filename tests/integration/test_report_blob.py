"""The report page in Azure Storage (Azurite): a private container, latest.html plus dated copies, as HTML."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from shared.adapters.store import AppendBlobAuditLog, BlobStateStore
from shared.adapters.store.report import BlobReportPublisher, dated_report_name, report_publisher_from_settings
from shared.app.auditor import COMMITTED, Auditor, RunTrigger
from tests.auditor_support import FakeReader, RecordingNotifier, event_trigger
from tests.builders import lab, rid

pytestmark = pytest.mark.azurite
NOW = datetime(2026, 11, 25, 22, 43, 0, tzinfo=UTC)


def test_publisher_writes_latest_and_a_dated_copy_as_html_in_a_private_container(azurite) -> None:  # type: ignore[no-untyped-def]
    container = f"report-{uuid.uuid4().hex[:12]}"
    publisher = BlobReportPublisher(connection_string=azurite.connection_string, container=container)
    publisher.publish("<!DOCTYPE html><p>one</p>", sequence=1, when=NOW)
    publisher.publish("<!DOCTYPE html><p>two ⇄</p>", sequence=2, when=NOW)
    client = publisher._container.get()
    names = sorted(b.name for b in client.list_blobs())
    assert names == sorted(["latest.html", dated_report_name(sequence=1, when=NOW),
                            dated_report_name(sequence=2, when=NOW)])
    latest = client.get_blob_client("latest.html")
    assert latest.download_blob().readall().decode("utf-8") == "<!DOCTYPE html><p>two ⇄</p>"
    assert latest.get_blob_properties().content_settings.content_type == "text/html; charset=utf-8"
    assert client.get_container_access_policy()["public_access"] is None


def test_the_auditor_writes_the_report_blob_after_a_committed_change(azurite) -> None:  # type: ignore[no-untyped-def]
    suffix = uuid.uuid4().hex[:12]
    settings = {"AuditorStorage": azurite.connection_string, "REPORT_CONTAINER": f"report-{suffix}"}
    publisher = report_publisher_from_settings(settings)
    assert isinstance(publisher, BlobReportPublisher) and publisher.location == f"report-{suffix}"
    reader, notifier = FakeReader(lab((2,))), RecordingNotifier()
    auditor = Auditor(reader=reader, notifiers=[notifier], report=publisher, clock=lambda: NOW,
                      state=BlobStateStore(connection_string=azurite.connection_string, container=f"state-{suffix}"),
                      audit=AppendBlobAuditLog(connection_string=azurite.connection_string,
                                               container=f"audit-{suffix}"))
    auditor.run(RunTrigger(kind="reconcile"))
    reader.resources = lab((1, 2))
    assert auditor.run(event_trigger("e1", rid("virtualNetworkGateways", "ergw-01"))).outcome == COMMITTED
    (alert,) = notifier.accepted
    assert alert["report"]["location"] == f"report-{suffix}"
    client = publisher._container.get()
    page = client.get_blob_client(alert["report"]["copy"]).download_blob().readall().decode("utf-8")
    assert '"cells":"obb"' in page and "committed run 2" in page
    assert client.get_blob_client("latest.html").download_blob().readall().decode("utf-8") == page
