"""The whole app wired by app settings alone, as in Azure: ARM_ENDPOINT points at the fake ARM + Resource Graph
(HTTPS, trusted through REQUESTS_CA_BUNDLE), and DefaultAzureCredential gets its token from a fake managed-identity
endpoint (IDENTITY_ENDPOINT / IDENTITY_HEADER). Nothing is injected: entrypoints.build_auditor reads the settings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.functions.eventgrid import EventGridEventInConverter
from azure.functions.meta import Datum
from azure.functions.timer import TimerRequest

import function_app
from shared import entrypoints
from shared.adapters.store import LocalAuditLog, verify_audit
from tests.builders import SUB, lab
from tests.integration.fake_arm import FakeArmServer, fake_arm  # noqa: F401

STORY = Path(__file__).resolve().parents[2] / "examples" / "replay-lab"
CLEARED = ("AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_FEDERATED_TOKEN_FILE", "MSI_ENDPOINT",
           "MSI_SECRET", "IMDS_ENDPOINT", "IDENTITY_SERVER_THUMBPRINT", "TOPOLOGY_SNAPSHOT", "AuditorStorage",
           "AuditorStorage__blobServiceUri", "TEAMS_WEBHOOK_URL", "SLACK_WEBHOOK_URL", "JSON_WEBHOOK_URL",
           "POLICY_FILE", "MANAGEMENT_GROUP", "EVENTGRID_TOPIC_ENDPOINT")


@pytest.fixture
def app(fake_arm: FakeArmServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeArmServer]:  # noqa: F811
    for key in CLEARED:
        monkeypatch.delenv(key, raising=False)
    settings = {**fake_arm.identity_env(), "ARM_ENDPOINT": fake_arm.base_url, "WATCHED_SUBSCRIPTIONS": SUB,
                "STORE_DIR": str(tmp_path / "store")}
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    entrypoints.reset()
    yield fake_arm
    entrypoints.reset()


def events(step: str) -> list[Any]:
    doc = json.loads((STORY / step / "event.json").read_text())
    return [EventGridEventInConverter.decode(Datum(json.dumps(e), "json"), trigger_metadata=None) for e in doc]


def test_the_app_runs_on_settings_alone_with_a_managed_identity_token_for_the_arm_endpoint(
        app: FakeArmServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app.set_resources({SUB: lab((2,))})
    function_app.reconcile(TimerRequest(past_due=False))  # the baseline: Resource Graph
    assert len(app.resource_graph_requests()) == 1
    app.set_resources({SUB: lab((1, 2))})
    app.clear_requests()
    for event in events("03-enable-gw1"):
        function_app.on_resource_event(event)

    assert "hub-01" in capsys.readouterr().out  # the console notifier (no webhook configured) got the alert
    assert app.resource_graph_requests() == [] and 1 <= len(app.arm_requests()) <= 3
    # The token came from the managed-identity endpoint, for the configured ARM endpoint (not management.azure.com).
    assert app.token_requests and set(app.token_requests) == {app.base_url}
    assert {r.headers["authorization"] for r in app.arm_requests()} == {f"Bearer mi-token-for-{app.base_url}"}
    committed = [r for r in LocalAuditLog(tmp_path / "store").records() if r["outcome"] == "committed"]
    assert [sorted(v.rsplit("/", 1)[-1] for v in p["vnets"]) for p in committed[-1]["opened"]] == [["hub-01", "hub-02"]]
    assert verify_audit(LocalAuditLog(tmp_path / "store").lines()).ok


def test_a_wrong_identity_header_is_an_incomplete_read_never_a_closure(
        app: FakeArmServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app.set_resources({SUB: lab((1, 2))})
    function_app.reconcile(TimerRequest(past_due=False))
    monkeypatch.setenv("IDENTITY_HEADER", "wrong")
    entrypoints.reset()
    app.set_resources({SUB: [r for r in lab((1, 2)) if r["name"] != "conn-02"]})
    for event in events("07-delete-conn-02"):
        function_app.on_resource_event(event)  # must not raise: the host would retry it forever
    last = list(LocalAuditLog(tmp_path / "store").records())[-1]
    assert last["outcome"] == "incomplete read" and last["closed"] == []
