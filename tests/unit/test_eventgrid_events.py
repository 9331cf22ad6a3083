"""The CloudEvents an alert becomes (pure): types, ids, subjects, data, sizes and the split into batches."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.adapters.notify.eventgrid import (
    HEALTH,
    LOCAL_SOURCE,
    MAX_BATCH_BYTES,
    MAX_EVENT_BYTES,
    PAIR_CLOSED,
    PAIR_OPENED,
    EventGridTopicPublisher,
    batch_events,
    cloud_events,
    event_id,
    event_size,
    event_source,
    publisher_from_settings,
)
from shared.app.auditor import alert_parts
from shared.app.ports import DeliveryError

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
SOURCE = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Web/sites/er-auditor"
LONG = "x" * 80  # resource names of ~80 characters


def lab_alert() -> dict[str, Any]:
    return json.loads((GOLDEN / "lab-diff.json").read_text(encoding="utf-8"))


def vnet_id(name: str, sub: str = "00000000-0000-0000-0000-000000000001") -> str:
    return f"/subscriptions/{sub}/resourceGroups/rg-{LONG}/providers/Microsoft.Network/virtualNetworks/{name}"


def pair(a: str, b: str, *, causes: int = 1, explanation: list[str] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "vnets": [vnet_id(a), vnet_id(b)], "status": "confirmed", "severity": "critical",
        "circuits": [vnet_id("er")], "gateways": [vnet_id("gw1"), vnet_id("gw2")], "warnings": [],
        "endpoints": [{"id": vnet_id(a), "name": a, "addressPrefixes": ["10.0.0.0/16"]},
                      {"id": vnet_id(b), "name": b, "addressPrefixes": ["10.1.0.0/16"]}],
        "cause": [{"resource": vnet_id(f"gw-{i}"), "text": f"gw-{i} allowRemoteVnetTraffic false -> true"}
                  for i in range(causes)],
    }
    if explanation is not None:
        doc["explanation"] = explanation
    return doc


def big_alert(opened: int, closed: int = 0, **kwargs: Any) -> dict[str, Any]:
    return {
        "id": "a" * 32, "runId": "r1", "caller": "alice@contoso.example", "time": "2026-11-25T10:00:00+00:00",
        "correlationId": "corr-1", "trigger": {"kind": "event"},
        "opened": [pair(f"spoke-{i:04d}-{LONG}", f"zz-{i:04d}", **kwargs) for i in range(opened)],
        "closed": [pair(f"old-{i:04d}-{LONG}", f"zz-old-{i:04d}", explanation=["ergw-01 allowRemoteVnetTraffic "
                                                                                "is false"]) for i in range(closed)],
        "groups": [], "warnings": [],
    }


def test_an_opened_pair_is_one_pair_opened_event_with_the_required_attributes() -> None:
    alert = lab_alert()
    [event] = cloud_events(alert, source=SOURCE)
    assert event["specversion"] == "1.0" and event["type"] == PAIR_OPENED and event["source"] == SOURCE
    a, b = alert["opened"][0]["vnets"]
    assert event["subject"] == f"{a}|{b}"
    assert event["id"] == event_id(alert["id"], "opened", [a, b]) and event["id"].startswith(alert["id"] + "-")
    assert event["time"] == "2024-03-22T05:31:12.123456Z"
    data = event["data"]
    assert data["pair"]["vnets"] == [a, b] and data["status"] == "confirmed"
    assert data["caller"] == "alice@contoso.example" and data["correlationId"] == alert["correlationId"]
    assert data["alertId"] == alert["id"] and data["cause"][0]["property"] == "allowRemoteVnetTraffic"
    assert "explain" not in data


def test_a_closed_pair_carries_the_explain_text() -> None:
    alert = big_alert(0, 1)
    [event] = cloud_events(alert, source=SOURCE)
    assert event["type"] == PAIR_CLOSED
    assert event["data"]["explain"] == ["ergw-01 allowRemoteVnetTraffic is false"]


def test_the_subject_orders_the_two_vnets_case_insensitively_whatever_the_input_order() -> None:
    alert = big_alert(1)
    a, b = alert["opened"][0]["vnets"]
    swapped = copy.deepcopy(alert)
    swapped["opened"][0]["vnets"] = [b.upper(), a]
    [one] = cloud_events(alert, source=SOURCE)
    [two] = cloud_events(swapped, source=SOURCE)
    assert one["subject"] == f"{a}|{b}" and two["subject"] == f"{a}|{b.upper()}"
    assert one["id"] == two["id"]  # ids compare VNet ids case-insensitively, like ARM


def test_event_ids_are_stable_per_alert_and_pair_and_differ_across_pairs_and_alerts() -> None:
    alert = big_alert(50, 50)
    ids = [e["id"] for e in cloud_events(alert, source=SOURCE)]
    assert ids == [e["id"] for e in cloud_events(copy.deepcopy(alert), source=SOURCE)]
    assert len(set(ids)) == 100
    other = {**alert, "id": "b" * 32}
    assert not set(ids) & {e["id"] for e in cloud_events(other, source=SOURCE)}


def test_the_same_pair_opened_and_closed_in_one_alert_gets_two_ids() -> None:
    assert event_id("a1", "opened", ["/x", "/y"]) != event_id("a1", "closed", ["/x", "/y"])


def test_a_health_alert_is_one_health_event() -> None:
    alert = {"kind": "health", "id": "h" * 32, "condition": "delivery-failed:slack:SLACK_WEBHOOK_URL",
             "status": "raised", "severity": "critical", "title": "Slack is not accepting alerts",
             "detail": "HTTP 404", "since": "2026-11-25T09:00:00+00:00", "time": "2026-11-25T10:00:00+00:00",
             "opened": [], "closed": []}
    [event] = cloud_events(alert, source=SOURCE)
    assert event["type"] == HEALTH and event["id"] == "h" * 32 + "-health"
    assert event["subject"] == "health/delivery-failed:slack:SLACK_WEBHOOK_URL"
    assert event["data"]["status"] == "raised" and event["data"]["alertId"] == "h" * 32


def test_batches_of_a_big_change_stay_within_the_limit_and_keep_every_event_in_order() -> None:
    events = cloud_events(big_alert(600, 400, causes=3), source=SOURCE)
    batches = batch_events(events)
    assert len(batches) > 1
    assert [e for b in batches for e in b] == events
    for batch in batches:
        assert len(json.dumps(batch).encode("utf-8")) <= MAX_BATCH_BYTES


def test_one_event_over_the_limit_is_cut_down_and_says_so() -> None:
    alert = big_alert(1, causes=20_000)  # a cause list of several MB
    [event] = cloud_events(alert, source=SOURCE)
    assert event_size(event) <= MAX_EVENT_BYTES
    assert event["data"]["truncated"] is True and "endpoints" not in event["data"]["pair"]
    assert 0 < len(event["data"]["cause"]) < 20_000


def test_split_gives_parts_that_each_fit_one_request_and_cover_every_pair_once() -> None:
    publisher = EventGridTopicPublisher("https://t.example/api/events", object(), source=SOURCE)  # type: ignore[arg-type]
    alert = big_alert(700, 300, causes=3)
    parts = publisher.split(alert)
    assert len(parts) > 1
    keys = [(d, tuple(p["vnets"])) for part in parts for d in ("opened", "closed") for p in part[d]]
    assert keys == [(d, tuple(p["vnets"])) for d in ("opened", "closed") for p in alert[d]]
    for part in parts:
        assert part["id"] == alert["id"] and "groups" not in part
        assert len(batch_events(cloud_events(part, source=SOURCE))) == 1
    ids = [e["id"] for part in parts for e in cloud_events(part, source=SOURCE)]
    assert ids == [e["id"] for e in cloud_events(alert, source=SOURCE)]  # a part's events are the alert's


def test_the_outbox_gets_one_item_per_part_and_one_for_a_chat() -> None:
    publisher = EventGridTopicPublisher("https://t.example/api/events", object(), source=SOURCE)  # type: ignore[arg-type]

    class Chat:
        channel, name = "slack", "slack:SLACK_WEBHOOK_URL"

    big, small = big_alert(700, 300), lab_alert()
    items = alert_parts(publisher, big)
    assert len(items) > 1 and len({i for i, _ in items}) == len(items)
    assert all(i.startswith(f"{big['id']}:{publisher.name}:") for i, _ in items)
    assert alert_parts(publisher, small) == [(f"{small['id']}:{publisher.name}", small)]
    assert alert_parts(Chat(), big) == [(f"{big['id']}:slack:SLACK_WEBHOOK_URL", big)]  # type: ignore[arg-type]


def test_the_source_is_the_setting_else_the_function_app_resource_id_else_local() -> None:
    assert event_source({"EVENTGRID_EVENT_SOURCE": SOURCE}) == SOURCE
    app = {"WEBSITE_OWNER_NAME": "1111-2222+rg-er-JapanEastwebspace-Linux", "WEBSITE_RESOURCE_GROUP": "rg-er",
           "WEBSITE_SITE_NAME": "func-er"}
    assert event_source(app) == "/subscriptions/1111-2222/resourceGroups/rg-er/providers/Microsoft.Web/sites/func-er"
    assert event_source({}) == LOCAL_SOURCE


def test_no_endpoint_means_no_publisher() -> None:
    assert publisher_from_settings({}) is None


def unusable(publisher: Any, setting: str) -> None:
    """A configured but unusable topic: a notifier that fails every delivery as a health alarm (never skipped)."""
    assert publisher is not None and publisher.name == "eventgrid:EVENTGRID_TOPIC_ENDPOINT"
    assert setting in publisher.unusable
    with pytest.raises(DeliveryError) as failed:
        publisher.deliver({"id": "a1", "opened": [], "closed": []}, alert_id="a1")
    assert failed.value.alarm and failed.value.retryable


@pytest.mark.parametrize("endpoint", ["http://topic.example/api/events", "not a url", "https:///api/events"])
def test_an_endpoint_that_is_not_https_is_named_and_fails_as_a_health_alarm(
        endpoint: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        unusable(publisher_from_settings({"EVENTGRID_TOPIC_ENDPOINT": endpoint, "EVENTGRID_TOPIC_KEY": "k"}),
                 "EVENTGRID_TOPIC_ENDPOINT")
    assert "EVENTGRID_TOPIC_ENDPOINT" in caplog.text and endpoint not in caplog.text


def test_an_unresolved_key_vault_reference_is_named_and_fails_as_a_health_alarm(
        caplog: pytest.LogCaptureFixture) -> None:
    settings = {"EVENTGRID_TOPIC_ENDPOINT": "https://t.example/api/events",
                "EVENTGRID_TOPIC_KEY": "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/k)"}
    with caplog.at_level(logging.ERROR):
        unusable(publisher_from_settings(settings), "EVENTGRID_TOPIC_KEY")
    assert "EVENTGRID_TOPIC_KEY" in caplog.text


def test_a_key_gives_a_key_credential_and_its_value_never_shows() -> None:
    publisher = publisher_from_settings({"EVENTGRID_TOPIC_ENDPOINT": "https://t.example/api/events",
                                         "EVENTGRID_TOPIC_KEY": "s3cr3t-topic-key"})
    assert publisher is not None and publisher.channel == "eventgrid"
    assert "s3cr3t" not in repr(publisher) and publisher.name == "eventgrid:EVENTGRID_TOPIC_ENDPOINT"


@given(st.lists(st.integers(min_value=1, max_value=5000), max_size=60), st.integers(min_value=2, max_value=20_000))
def test_batches_keep_order_and_stay_within_the_limit_unless_one_event_alone_is_larger(
        sizes: list[int], limit: int) -> None:
    events = [{"id": str(i), "pad": "x" * n} for i, n in enumerate(sizes)]
    batches = batch_events(events, max_bytes=limit)
    assert [e for b in batches for e in b] == events
    assert all(b for b in batches)
    for batch in batches:
        assert len(batch) == 1 or len(json.dumps(batch).encode("utf-8")) <= limit
