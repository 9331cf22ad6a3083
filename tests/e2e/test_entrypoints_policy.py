"""The auditor as the app settings build it: offline snapshot reader, local store, a policy file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import function_app
from shared import entrypoints
from shared.adapters.store import LocalAuditLog
from shared.core.policy import PolicyError
from tests.builders import lab

STORY = Path(__file__).resolve().parents[2] / "examples" / "replay-lab"

POLICY = """\
version: 1
forbidden:
  - name: never-hub-01-hub-02
    a: {name: hub-01}
    b: {name: hub-02}
    reason: the two labs must stay apart
accepted:
  - name: hub-03-known
    a: {subscription: 00000000-0000-0000-0000-000000000001, name: hub-03}
    reason: CHG-1 migration
"""


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    live = tmp_path / "live.json"
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    for key, value in {"TOPOLOGY_SNAPSHOT": str(live), "STORE_DIR": str(tmp_path / "store"),
                       "POLICY_FILE": str(policy)}.items():
        monkeypatch.setenv(key, value)
    for key in ("WATCHED_SUBSCRIPTIONS", "AuditorStorage", "AuditorStorage__blobServiceUri", "TEAMS_WEBHOOK_URL",
                "SLACK_WEBHOOK_URL", "JSON_WEBHOOK_URL"):
        monkeypatch.delenv(key, raising=False)
    entrypoints.reset()
    yield {"live": live, "store": tmp_path / "store", "policy": policy}
    entrypoints.reset()


def events(step: str) -> list[Any]:
    from azure.functions.eventgrid import EventGridEventInConverter
    from azure.functions.meta import Datum

    doc = json.loads((STORY / step / "event.json").read_text())
    return [EventGridEventInConverter.decode(Datum(json.dumps(e), "json"), trigger_metadata=None) for e in doc]


def run(env: dict[str, Any], resources: list[dict[str, Any]], step: str | None) -> None:
    env["live"].write_text(json.dumps(resources))
    if step is None:
        from azure.functions.timer import TimerRequest

        function_app.reconcile(TimerRequest(past_due=False))
    else:
        for event in events(step):
            function_app.on_resource_event(event)


def test_forbidden_opening_is_critical_and_accepted_is_audited_not_sent(env: dict[str, Any],
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    run(env, lab(()), None)
    run(env, lab((1, 2, 3)), "03-enable-gw1")
    printed = capsys.readouterr().out
    records = [r for r in LocalAuditLog(env["store"]).records() if r["outcome"] == "committed"]
    opened = {tuple(v.rsplit("/", 1)[-1] for v in p["vnets"]): p for p in records[-1]["opened"]}
    assert opened[("hub-01", "hub-02")]["severity"] == "critical"
    assert opened[("hub-01", "hub-03")]["severity"] == "info"
    assert "CHG-1" in opened[("hub-01", "hub-03")]["policy"]
    # The console notifier (no webhook configured) got the critical pair only.
    assert "[CRITICAL]" in printed and "hub-01 ⇄ hub-02" in printed.replace("<->", "⇄")
    assert "hub-03" not in printed


def test_a_broken_policy_file_stops_start_up_naming_the_line(env: dict[str, Any]) -> None:
    env["policy"].write_text("version: 1\nforbidden:\n  - name: x\n    a: {colour: red}\n")
    env["live"].write_text(json.dumps(lab(())))
    with pytest.raises(PolicyError, match=r"policy.yaml:4"):
        entrypoints.auditor()


def test_missing_settings_are_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.app.settings import ConfigurationError, Settings

    with pytest.raises(ConfigurationError, match="WATCHED_SUBSCRIPTIONS"):
        Settings.from_env({})
    assert Settings.from_env({"WATCHED_SUBSCRIPTIONS": "a, b;c"}).subscriptions == ("a", "b", "c")


def test_the_recheck_queue_trigger_runs_the_auditor(env: dict[str, Any]) -> None:
    import azure.functions as func

    run(env, lab(()), None)
    env["live"].write_text(json.dumps(lab((1, 2))))
    message = func.QueueMessage(body=json.dumps({"reason": "settling", "after": {"kind": "event"}}).encode())
    function_app.recheck(message)
    function_app.recheck(func.QueueMessage(body=b"not json"))  # a garbled message is still a re-check
    outcomes = [(r["trigger"]["kind"], r["outcome"]) for r in LocalAuditLog(env["store"]).records()
                if r["outcome"] != "delivery"]
    assert outcomes == [("reconcile", "committed"), ("recheck", "committed"), ("recheck", "no change")]
