"""Renderers: golden payloads for the lab and a 500-pair change, and each chat service's structural limits.

UPDATE_GOLDEN=1 rewrites the golden files from the current output (review the diff before committing).
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.notify import ConsoleNotifier, render, render_main, render_text

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
SUB = "00000000-0000-0000-0000-000000000001"
NET = f"/subscriptions/{SUB}/resourceGroups/rg-er-lab/providers/Microsoft.Network"
PORTAL = "https://portal.azure.com/#resource"
TEAMS_MAX_BYTES = 28 * 1024


def lab_alert() -> dict[str, Any]:
    return dict(json.loads((GOLDEN / "lab-diff.json").read_text(encoding="utf-8")))


def big_alert(opened: int = 400, closed: int = 100) -> dict[str, Any]:
    """A change opening `opened` spoke pairs (one gateway flag) and closing `closed` (one connection removed)."""
    def vnet(i: int) -> str:
        return f"/subscriptions/{SUB}/resourceGroups/rg-spokes-{i // 100:02d}/providers/Microsoft.Network/" \
               f"virtualNetworks/spoke-{i:03d}"

    def pair(i: int, j: int, cause: dict[str, Any], status: str = "confirmed") -> dict[str, Any]:
        return {
            "vnets": [vnet(i), vnet(j)],
            "status": status,
            "circuits": [f"{NET}/expressRouteCircuits/er-lab"],
            "gateways": [f"{NET}/virtualNetworkGateways/ergw-{i % 3 + 1:02d}",
                         f"{NET}/virtualNetworkGateways/ergw-{j % 3 + 1:02d}"],
            "warnings": [],
            "endpoints": [
                {"id": vnet(k), "name": f"spoke-{k:03d}", "subscription": SUB,
                 "resourceGroup": f"rg-spokes-{k // 100:02d}",
                 "addressPrefixes": [f"10.{k // 250}.{k % 250}.0/24"]}
                for k in (i, j)
            ],
            "cause": [cause],
        }

    flag = {"resource": f"{NET}/virtualNetworkGateways/ergw-01", "name": "ergw-01", "kind": "gateway",
            "change": "modified", "property": "allowRemoteVnetTraffic", "old": False, "new": True,
            "text": "ergw-01 allowRemoteVnetTraffic false -> true"}
    removed = {"resource": f"{NET}/connections/cn-ergw-03-er-lab", "name": "cn-ergw-03-er-lab", "kind": "connection",
               "change": "removed", "property": None, "old": None, "new": None,
               "text": "cn-ergw-03-er-lab removed"}
    opened_pairs = [pair(i, 400 + i % 50, flag, "pending" if i == 7 else "confirmed") for i in range(opened)]
    closed_pairs = [pair(450 + i % 50, 500 + i, removed) for i in range(closed)]
    for p in closed_pairs[:3]:
        p["severity"] = "critical"
    return {
        "id": "9e0c1d2b3a4f5e6d",
        "caller": "pipeline-netops@contoso.example",
        "time": "2024-03-23T01:02:03Z",
        "correlationId": "11111111-2222-3333-4444-555555555555",
        "trigger": {"kind": "reconcile"},
        "opened": opened_pairs,
        "closed": closed_pairs,
        "groups": [
            {"cause": [flag], "opened": [p["vnets"] for p in opened_pairs], "closed": []},
            {"cause": [removed], "opened": [], "closed": [p["vnets"] for p in closed_pairs]},
        ],
        "warnings": ["circuit er-partner could not be read (403); pairs over it may be missing"],
    }


def check_golden(name: str, payload: dict[str, Any]) -> None:
    path = GOLDEN / name
    text = json.dumps(payload, indent=2, ensure_ascii=False) + "\n"
    if len(text) > 200_000:
        # A body this large (the full 500-pair model) is pinned by its digest plus a readable summary.
        text = json.dumps(_digest(payload), indent=2, ensure_ascii=False) + "\n"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} missing; run with UPDATE_GOLDEN=1 to create it"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from the golden file"


def _digest(payload: dict[str, Any]) -> dict[str, Any]:
    compact = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return {
        "sha256": hashlib.sha256(compact).hexdigest(),
        "bytes": len(compact),
        "keys": list(payload),
        "scalars": {k: v for k, v in payload.items() if isinstance(v, str | int | float | bool)},
        "lengths": {k: len(v) for k, v in payload.items() if isinstance(v, list)},
    }


def assert_slack_limits(body: dict[str, Any]) -> None:
    assert isinstance(body["text"], str) and body["text"].strip()
    assert len(body["blocks"]) <= 50
    for block in body["blocks"]:
        if block["type"] == "section" and "text" in block:
            assert len(block["text"]["text"]) <= 3000
        if block["type"] == "section" and "fields" in block:
            assert len(block["fields"]) <= 10
            assert all(len(f["text"]) <= 2000 for f in block["fields"])
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150


def assert_teams_shape(body: dict[str, Any]) -> dict[str, Any]:
    assert body["type"] == "message"
    [attachment] = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert attachment["contentUrl"] is None
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    assert len(json.dumps(body, ensure_ascii=False).encode("utf-8")) < TEAMS_MAX_BYTES
    assert len(json.dumps(body, ensure_ascii=False).encode("utf-8")) <= 24 * 1024
    assert all(a["type"] == "Action.OpenUrl" for a in card.get("actions", []))
    return dict(card)


@pytest.mark.parametrize("channel", ["teams", "slack", "json"])
def test_lab_payload_matches_golden(channel: str) -> None:
    check_golden(f"{channel}-lab.json", render(channel, lab_alert()))


@pytest.mark.parametrize("channel", ["teams", "slack", "json"])
def test_500_pair_payload_matches_golden(channel: str) -> None:
    check_golden(f"{channel}-500.json", render(channel, big_alert()))


@pytest.mark.parametrize("channel", ["teams", "slack"])
def test_lab_alert_says_what_opened_between_which_vnets_and_why(channel: str) -> None:
    text = json.dumps(render(channel, lab_alert()), ensure_ascii=False)
    for expected in ["hub-01", "hub-02", "10.1.0.0/16", "10.2.0.0/16", SUB, "rg-er-lab", "er-lab", "ergw-01",
                     "ergw-02", "allowRemoteVnetTraffic false → true", "alice@contoso.example",
                     "8c29ff75-1b2e-4c3d-9a4f-5e6d7c8b9a01", "2024-03-22 05:31:12 UTC", "confirmed", "warning",
                     f"{PORTAL}{NET}/virtualNetworks/hub-01", f"{PORTAL}{NET}/virtualNetworks/hub-02",
                     f"{PORTAL}{NET}/expressRouteCircuits/er-lab", f"{PORTAL}{NET}/virtualNetworkGateways/ergw-01"]:
        assert expected in text, expected
    assert "hub-03" not in text


def test_lab_slack_message_is_within_limits_with_a_fallback_naming_the_pair() -> None:
    body = render("slack", lab_alert())
    assert_slack_limits(body)
    assert "hub-01 ⇄ hub-02" in body["text"] and "ergw-01 allowRemoteVnetTraffic" in body["text"]


def test_lab_teams_card_has_the_workflows_envelope_and_links_to_the_resources() -> None:
    card = assert_teams_shape(render("teams", lab_alert()))
    urls = [a["url"] for a in card["actions"]]
    assert urls[0] == f"{PORTAL}{NET}/virtualNetworkGateways/ergw-01"
    assert f"{PORTAL}{NET}/virtualNetworks/hub-01" in urls and f"{PORTAL}{NET}/expressRouteCircuits/er-lab" in urls


def test_json_payload_is_the_alert_model_with_a_summary() -> None:
    alert = lab_alert()
    body = render("json", alert)
    assert body["summary"] == "ER transit opened: hub-01 ⇄ hub-02"
    assert body["severity"] == "warning"
    assert {k: body[k] for k in alert} == alert


def test_500_pairs_are_summarised_within_slack_limits_pointing_to_the_audit_log() -> None:
    body = render("slack", big_alert())
    assert_slack_limits(body)
    text = json.dumps(body, ensure_ascii=False)
    assert "400 opened, 100 closed" in text
    assert "more pairs; the full list is in the audit log (alert id 9e0c1d2b3a4f5e6d)" in text
    assert "ergw-01" in text and "cn-ergw-03-er-lab" in text  # both causes are shown


def test_500_pairs_are_summarised_within_the_teams_card_size() -> None:
    body = render("teams", big_alert())
    assert_teams_shape(body)
    text = json.dumps(body, ensure_ascii=False)
    assert "the full list is in the audit log (alert id 9e0c1d2b3a4f5e6d)" in text
    assert "1 pending" in text


def test_the_most_severe_group_comes_first_and_sets_the_alert_severity() -> None:
    body = render("teams", big_alert())
    card = body["attachments"][0]["content"]
    assert card["body"][0]["color"] == "Attention"
    assert "cn-ergw-03-er-lab" in card["body"][2]["items"][0]["text"]


def test_many_causes_are_summarised_with_a_count_of_the_causes_left_out() -> None:
    alert = big_alert(opened=0, closed=0)
    alert["groups"] = []
    for i in range(80):
        cause = {"resource": f"{NET}/virtualNetworkGateways/gw-{i}", "name": f"gw-{i}", "kind": "gateway",
                 "change": "modified", "property": "allowRemoteVnetTraffic", "old": True, "new": False}
        for j in range(3):
            alert["closed"].append({"vnets": [f"{NET}/virtualNetworks/a-{i}-{j}", f"{NET}/virtualNetworks/b-{i}-{j}"],
                                    "cause": [cause]})
    slack, teams = render("slack", alert), render("teams", alert)
    assert_slack_limits(slack)
    assert_teams_shape(teams)
    for body in (slack, teams):
        assert "more causes" in json.dumps(body, ensure_ascii=False)


def test_a_pair_with_huge_fields_still_fits_a_slack_section() -> None:
    alert = lab_alert()
    pair = alert["opened"][0]
    pair["warnings"] = ["x" * 5000]
    pair["endpoints"][0]["addressPrefixes"] = [f"10.{i}.0.0/16" for i in range(200)]
    pair["endpoints"][0]["name"] = "n" * 4000
    assert_slack_limits(render("slack", alert))
    assert_teams_shape(render("teams", alert))


def test_a_bare_diff_without_metadata_renders() -> None:
    diff = {"opened": [{"vnets": [f"{NET}/virtualNetworks/hub-01", f"{NET}/virtualNetworks/hub-02"]}], "closed": []}
    for channel in ("teams", "slack"):
        text = json.dumps(render(channel, diff), ensure_ascii=False)
        assert "hub-01" in text and "rg-er-lab" in text and "not determined" in text


def test_slack_escapes_control_characters_in_names() -> None:
    alert = lab_alert()
    alert["caller"] = "<!channel> & co"
    text = json.dumps(render("slack", alert))
    assert "<!channel>" not in text and "&lt;!channel&gt; &amp; co" in text


def test_pending_pairs_are_marked_pending() -> None:
    alert = copy.deepcopy(lab_alert())
    alert["opened"][0]["status"] = "pending"
    assert "*pending*" in render("slack", alert)["blocks"][4]["text"]["text"]
    assert "[warning, pending]" in render_text(alert)


def test_console_notifier_prints_every_pair_and_the_cause() -> None:
    out = io.StringIO()
    ConsoleNotifier(out).deliver(lab_alert(), alert_id="c3")
    text = out.getvalue()
    assert "OPENED hub-01 (10.1.0.0/16) <-> hub-02 (10.2.0.0/16)" in text
    assert "cause: ergw-01 allowRemoteVnetTraffic false -> true" in text
    assert "alert id: c3" in text  # the outbox's id wins


@pytest.mark.parametrize("channel", ["teams", "slack", "json"])
def test_render_main_prints_the_body(channel: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert render_main(channel, str(GOLDEN / "lab-diff.json")) == 0
    assert json.loads(capsys.readouterr().out) == render(channel, lab_alert())


@pytest.mark.parametrize(("content", "channel", "message"), [
    (None, "slack", "cannot read"),
    ("{not json", "slack", "is not JSON"),
    ('["a list"]', "teams", "not an alert"),
    ('{"opened": []}', "fax", "unknown channel"),
])
def test_render_main_rejects_bad_input_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, channel: str, message: str
) -> None:
    path = tmp_path / "diff.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    assert render_main(channel, str(path)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in captured.err and captured.err.count("\n") == 1
