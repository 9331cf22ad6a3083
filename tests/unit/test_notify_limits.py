"""Chat bodies measured against each service's limits on the hard shapes: many gateways of one circuit at once,
many pairs of one cause, long (~80 character) names with portal links; the minimal fallback and health alerts.

UPDATE_GOLDEN=1 rewrites the golden files (review the diff before committing).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.notify import render, render_text, slack, teams
from shared.adapters.notify.compact import render_minimal
from shared.adapters.notify.view import read_alert
from shared.core.diff import diff_pairs
from shared.core.health import Transition, health_alert
from shared.core.snapshot import parse_resources
from shared.core.transit import compute_pairs
from shared.core.views import diff_json
from tests.builders import circuit, connection, gateway, hub_and_spoke, vnet

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
# Teams refuses a post over about 28 KB ("Request entity too large"; ../shared/DOMAIN.md section 6).
TEAMS_LIMIT = 28 * 1024
SUB = "7d1f6a3e-52c4-4b8e-9a61-3f2b0c8e4d17"


def long_name(kind: str, i: int) -> str:
    """A realistic enterprise name of about 80 characters."""
    base = f"{kind}-contoso-prod-westeurope-{i:02d}-payments-platform-shared-services-landing-zone"
    return (base + "-connectivity-0000000000")[:80]


def estate(hubs: int, spokes: int, enabled: set[int]) -> list[dict[str, Any]]:
    """`hubs` hub VNets on one circuit, each with its gateway and `spokes` spokes (gateway transit)."""
    rg = "rg-contoso-prod-westeurope-connectivity-hub-network-expressroute-0001"
    er = circuit("er-contoso-westeurope-equinix-amsterdam-10g-primary-circuit-for-the-landing-zones", rg=rg, sub=SUB)
    out: list[dict[str, Any]] = [er]
    for h in range(hubs):
        hub = vnet(long_name("vnet-hub", h), f"10.{h}.0.0/16", rg=rg, sub=SUB)
        for s in range(spokes):
            spoke = vnet(long_name(f"vnet-spoke{s}", h), f"10.{h}.{s + 1}.0/24", rg=rg, sub=SUB)
            hub_and_spoke(hub, spoke)
            out.append(spoke)
        gw = gateway(long_name("ergw", h), hub, allow_remote=h in enabled, rg=rg, sub=SUB)
        out += [hub, gw, connection(long_name("conn", h), gw, er["id"], rg=rg, sub=SUB)]
    return out


def alert_between(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> dict[str, Any]:
    old, new = parse_resources(before, source="before"), parse_resources(after, source="after")
    old_pairs, new_pairs = compute_pairs(old), compute_pairs(new)
    doc = diff_json(diff_pairs(old_pairs, new_pairs, before_topology=old, after_topology=new))
    return {"id": "5f0c9a1e2b3d4c5e6f708192a3b4c5d6", "runId": "0123456789abcdef0123456789abcdef",
            "caller": "pipeline-netops-automation@contoso.example", "time": "2026-11-20T09:12:42.1234567Z",
            "correlationId": "c0ffee00-1111-2222-3333-444455556666",
            "trigger": {"kind": "event", "operation": "Microsoft.Network/virtualNetworkGateways/write"}, **doc}


def six_gateways_of_one_circuit() -> dict[str, Any]:
    """Gateway 0 already allows; six more gateways of the same circuit are enabled at once (a pipeline run)."""
    return alert_between(estate(7, 3, {0}), estate(7, 3, set(range(7))))


def twenty_pairs_of_one_cause() -> dict[str, Any]:
    """One gateway flag opens 20 pairs: a hub with 4 spokes meets a hub with 3 spokes."""
    before = estate(2, 0, {1})
    after = estate(2, 0, {0, 1})
    for resources in (before, after):
        hubs = [r for r in resources if r["name"].startswith("vnet-hub")]
        for h, count in ((0, 4), (1, 3)):
            for s in range(count):
                spoke = vnet(long_name(f"vnet-spk{s}", h), f"10.{h}.{s + 1}.0/24", sub=SUB,
                             rg="rg-contoso-prod-westeurope-connectivity-hub-network-expressroute-0001")
                hub_and_spoke(hubs[h], spoke)
                resources.append(spoke)
    return alert_between(before, after)


SHAPES = {"six-gateways": six_gateways_of_one_circuit, "twenty-pairs": twenty_pairs_of_one_cause}


def check_golden(name: str, payload: dict[str, Any]) -> None:
    path = GOLDEN / name
    text = json.dumps(payload, indent=2, ensure_ascii=False) + "\n"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} missing; run with UPDATE_GOLDEN=1 to create it"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from the golden file"


def test_the_hard_shapes_are_as_large_as_the_issue_measured() -> None:
    six, twenty = six_gateways_of_one_circuit(), twenty_pairs_of_one_cause()
    assert len(twenty["opened"]) == 20 and len(twenty["groups"]) == 1
    assert len(six["opened"]) == 6 * 4 * 4 + 15 * 16  # 0 with each new one, and the new ones among themselves
    # Rendered in full (no summarising) both are far over Slack's 12,000 characters of block text.
    view_all = slack.render_slack(read_alert(twenty),
                                  max_groups=10, max_pairs=20)
    assert slack.total_text(view_all) > slack.MAX_TOTAL_TEXT


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_slack_body_of_a_hard_shape_stays_within_every_slack_limit(shape: str) -> None:
    body = render("slack", SHAPES[shape]())
    assert slack.problems(body) == []
    assert slack.total_text(body) <= 12000 and len(body["blocks"]) <= 50
    texts = json.dumps(body, ensure_ascii=False)
    assert "the full list is in the audit log (alert id 5f0c9a1e2b3d4c5e6f708192a3b4c5d6)" in texts
    check_golden(f"slack-{shape}.json", body)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_teams_body_of_a_hard_shape_stays_under_28_kb_as_posted(shape: str) -> None:
    body = render("teams", SHAPES[shape]())
    posted = json.dumps(body, ensure_ascii=False).encode("utf-8")  # exactly what WebhookNotifier sends
    assert len(posted) <= teams.MAX_BYTES < TEAMS_LIMIT
    check_golden(f"teams-{shape}.json", body)


def test_slack_limits_count_fields_links_and_the_header() -> None:
    body = {"blocks": [{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}},
                       {"type": "section", "fields": [{"type": "mrkdwn", "text": "y" * 2001}]},
                       *({"type": "section", "text": {"type": "mrkdwn", "text": "z" * 2999}} for _ in range(4))]}
    found = slack.problems(body)
    assert any("header of 151" in p for p in found) and any("fields" in p for p in found)
    assert any("of block text" in p for p in found)  # 151 + 2001 + 4 * 2999 > 12,000


def test_an_alert_whose_facts_alone_overflow_falls_back_to_the_minimal_alert() -> None:
    alert = twenty_pairs_of_one_cause()
    alert["warnings"] = [f"circuit {long_name('er', i)} could not be read (403) " + "w" * 2000 for i in range(8)]
    for key in ("caller", "correlationId", "time"):
        alert[key] = "x" * 5000  # strings others control: each fact alone is cut to 2,000, together they overflow
    alert["trigger"] = {"kind": "event", "operation": "o" * 5000}
    assert slack.problems(render("slack", alert)) == []  # Slack cuts each fact and the warnings: it still fits
    body = render("teams", alert)  # Teams lists every warning: only the minimal alert fits
    assert teams.posted_size(body) <= teams.MAX_BYTES
    assert "every pair is in the audit log, run 0123456789abcdef0123456789abcdef" in json.dumps(body)


@pytest.mark.parametrize("channel", ["slack", "teams", "json"])
def test_minimal_alert_has_title_counts_severity_id_and_where_the_record_is(channel: str) -> None:
    body = render_minimal(channel, six_gateways_of_one_circuit())
    text = json.dumps(body, ensure_ascii=False)
    for needed in ("ER transit changed: 336 opened, 0 closed", "warning", "5f0c9a1e2b3d4c5e6f708192a3b4c5d6",
                   "the audit log, run 0123456789abcdef0123456789abcdef"):
        assert needed in text
    assert len(text.encode("utf-8")) < 2000


@pytest.mark.parametrize("channel", ["slack", "teams", "json"])
def test_health_alert_renders_on_every_channel_with_its_condition(channel: str) -> None:
    transition = Transition("subscription-unreadable:" + SUB, "raised", f"Subscription {SUB} cannot be read",
                            f"subscription {SUB}: no Reader or not found <b>&", "2026-11-20T09:00:00+00:00")
    alert = health_alert(transition, now=datetime(2026, 11, 20, 10, tzinfo=UTC))
    body = render(channel, alert)
    text = json.dumps(body, ensure_ascii=False)
    assert f"subscription-unreadable:{SUB}" in text and alert["id"] in text
    if channel == "slack":
        assert slack.problems(body) == [] and "&lt;b&gt;&amp;" in text  # escaped: the detail may hold anything
    if channel == "json":
        assert body["schema"] == "er-transit-auditor/health/v1" and body["status"] == "raised"
    assert "[HEALTH RAISED]" in render_text(alert)
