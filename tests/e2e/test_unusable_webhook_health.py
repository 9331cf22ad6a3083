"""A webhook setting that exists but cannot be used is a health failure (issue 16, item 2), through the function
entry points as the host calls them (settings from the environment, a local store, a real local HTTP server for
the working channel): the health alert is raised at once, audited, posted on the other channel, and logged with
the marker Azure Monitor's log alert (infra/app/monitoring.bicep) searches for. Never a silent console fallback."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.functions.timer import TimerRequest
from pytest_httpserver import HTTPServer

import function_app
from shared import entrypoints
from shared.adapters.store import LocalAuditLog, LocalStateStore
from tests.builders import lab

REPO = Path(__file__).resolve().parents[2]
SECRET_PATH = "/services/T0SECRET/B0SECRET/XoXoSecretToken1234"


def azure_monitor_marker() -> str:
    """What the deployed log alert searches traces for (`message startswith "<marker>"`)."""
    text = (REPO / "infra" / "app" / "monitoring.bicep").read_text(encoding="utf-8")
    marker = re.search(r"var healthRaisedMarker = '([^']+)'", text)
    assert marker is not None and "where message startswith \"${healthRaisedMarker}\"" in text
    return marker.group(1)


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, httpserver: HTTPServer) -> Iterator[dict[str, Any]]:
    httpserver.expect_request("/teams", method="POST").respond_with_data("", status=202)
    live = tmp_path / "live.json"
    live.write_text(json.dumps(lab((1, 2))), encoding="utf-8")
    for key in ("WATCHED_SUBSCRIPTIONS", "AuditorStorage", "AuditorStorage__blobServiceUri", "JSON_WEBHOOK_URL",
                "SLACK_WEBHOOK_URL", "TEAMS_WEBHOOK_URL", "POLICY_FILE", "EVENTGRID_TOPIC_ENDPOINT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("TOPOLOGY_SNAPSHOT", str(live))
    monkeypatch.setenv("STORE_DIR", str(tmp_path / "store"))
    monkeypatch.setenv("WEBHOOK_ALLOWED_HOSTS", "localhost")
    monkeypatch.setenv("TEAMS_WEBHOOK_URL", httpserver.url_for("/teams"))
    entrypoints.reset()
    yield {"live": live, "store": tmp_path / "store", "server": httpserver}
    entrypoints.reset()


def teams_posts(server: HTTPServer) -> list[str]:
    return [req.get_data(as_text=True) for req, _ in server.log if req.path == "/teams"]


@pytest.mark.parametrize("value", [
    "@Microsoft.KeyVault(SecretUri=https://kv-ertransit.vault.azure.net/secrets/slack-webhook/)",
    f"http://hooks.slack.com{SECRET_PATH}",
    f"https://hooks.example.net{SECRET_PATH}",
], ids=["unresolved-key-vault-reference", "plain-http", "host-not-allowed"])
def test_an_unusable_webhook_setting_raises_the_health_alert_at_once_and_reaches_azure_monitor(
        app: dict[str, Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str], value: str) -> None:
    monkeypatch.setenv("SLACK_WEBHOOK_URL", value)
    caplog.set_level(logging.INFO)
    function_app.reconcile(TimerRequest(past_due=False))  # the baseline: nothing to post, the setting is wrong

    condition = "delivery-failed:slack:SLACK_WEBHOOK_URL"
    state, _ = LocalStateStore(app["store"]).load()
    assert state is not None and list(state.health.get("conditions", {})) == [condition]
    [raised] = [r for r in LocalAuditLog(app["store"]).records() if r["outcome"] == "health raised"]
    assert raised["condition"] == condition and "SLACK_WEBHOOK_URL" in raised["detail"]
    # Posted on the channel that works (never on the broken one), and nothing printed as a console "delivery".
    [card] = teams_posts(app["server"])
    assert condition in card and "Alerts to slack:SLACK_WEBHOOK_URL are not being delivered" in card
    assert capsys.readouterr().out == ""
    # The log line Azure Monitor's health log alert fires on (an ERROR trace starting with its marker).
    marker = azure_monitor_marker()
    lines = [r for r in caplog.records if r.getMessage().startswith(marker)]
    assert [(r.levelno, condition in r.getMessage()) for r in lines] == [(logging.ERROR, True)]
    # The secret parts of the URL appear nowhere: logs, audit, state, the health card.
    everything = caplog.text + json.dumps(list(LocalAuditLog(app["store"]).records())) + json.dumps(
        state.to_json()) + card
    assert "SECRET" not in everything and "XoXoSecretToken" not in everything

    # The next run: still broken, raised once, not again; a real change is audited and queued for Slack, not
    # recorded as delivered.
    app["live"].write_text(json.dumps(lab((1, 2, 3))), encoding="utf-8")
    function_app.reconcile(TimerRequest(past_due=False))
    records = list(LocalAuditLog(app["store"]).records())
    assert [r["outcome"] for r in records].count("health raised") == 1
    state, _ = LocalStateStore(app["store"]).load()
    assert state is not None
    queued = [i for i in state.outbox if i.get("kind") == "alert"]
    assert [i["notifier"] for i in queued] == ["slack:SLACK_WEBHOOK_URL"]
    teams_alerts = [json.loads(p) for p in teams_posts(app["server"])[1:]]
    assert len(teams_alerts) == 1 and "hub-03" in json.dumps(teams_alerts[0])  # the transit alert, on Teams
    deliveries = [r for r in records if r["outcome"] == "delivery"]
    assert any(queued[0]["id"] in d["undelivered"] for d in deliveries)
    assert not any(queued[0]["id"] in d["delivered"] for d in deliveries)


def test_the_alarm_clears_and_the_queued_alert_goes_out_once_the_setting_is_fixed(
        app: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    server: HTTPServer = app["server"]
    server.expect_request("/slack", method="POST").respond_with_data("ok", status=200)
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/s/)")
    function_app.reconcile(TimerRequest(past_due=False))
    app["live"].write_text(json.dumps(lab((1, 2, 3))), encoding="utf-8")
    function_app.reconcile(TimerRequest(past_due=False))  # the opening waits for Slack

    monkeypatch.setenv("SLACK_WEBHOOK_URL", server.url_for("/slack"))  # the Key Vault reference resolves
    entrypoints.reset()  # the host restarts the app when a setting changes
    function_app.reconcile(TimerRequest(past_due=False))
    slack = [req.get_data(as_text=True) for req, _ in server.log if req.path == "/slack"]
    assert len([p for p in slack if "hub-03" in p]) == 1  # the queued opening, once
    assert len([p for p in slack if "Resolved: Alerts to slack:SLACK_WEBHOOK_URL" in p]) == 1  # and the all-clear
    records = list(LocalAuditLog(app["store"]).records())
    [cleared] = [r for r in records if r["outcome"] == "health cleared"]
    assert cleared["condition"] == "delivery-failed:slack:SLACK_WEBHOOK_URL"


@pytest.mark.parametrize("settings", [
    {"EVENTGRID_TOPIC_ENDPOINT": "http://evgt-ertransit.japaneast-1.eventgrid.azure.net/api/events"},
    {"EVENTGRID_TOPIC_ENDPOINT": "https://evgt-ertransit.japaneast-1.eventgrid.azure.net/api/events",
     "EVENTGRID_TOPIC_KEY": "@Microsoft.KeyVault(SecretUri=https://kv-ertransit.vault.azure.net/secrets/topic-key/)"},
], ids=["plain-http-endpoint", "unresolved-key-vault-key"])
def test_an_unusable_event_grid_topic_setting_is_a_health_failure_too(
        app: dict[str, Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        settings: dict[str, str]) -> None:
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    caplog.set_level(logging.INFO)
    function_app.reconcile(TimerRequest(past_due=False))
    condition = "delivery-failed:eventgrid:EVENTGRID_TOPIC_ENDPOINT"
    [raised] = [r for r in LocalAuditLog(app["store"]).records() if r["outcome"] == "health raised"]
    assert raised["condition"] == condition
    [card] = teams_posts(app["server"])
    assert condition in card
    assert [r.levelno for r in caplog.records if r.getMessage().startswith(azure_monitor_marker())] == [logging.ERROR]
