"""The Event Grid publisher through the real azure-eventgrid client, over HTTPS, to the local topic stand-in.

The stand-in (scripts/eventgrid_receiver.py) judges requests as Event Grid does; the chat is a real local HTTP
webhook; the auditor runs with the local-folder store, so outbox, retries and settling are the real ones.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import HttpResponseError
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridPublisherClient

from scripts.eventgrid_receiver import CONTENT_TYPE, MAX_BYTES, EventGridReceiver
from shared.adapters.notify import WebhookNotifier
from shared.adapters.notify.eventgrid import HEALTH, PAIR_OPENED, EventGridTopicPublisher, cloud_events
from shared.adapters.store import LocalAuditLog, LocalStateStore
from shared.app.auditor import COMMITTED, Auditor, RunTrigger
from shared.app.ports import DeliveryError
from tests.auditor_support import FakeReader, event_trigger
from tests.builders import lab, rid, small_topology
from tests.integration.fake_arm import FakeCredential

SOURCE = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Web/sites/er-auditor"
KEY = "local-topic-key-0123456789"
GW1 = rid("virtualNetworkGateways", "ergw-01")


class Chat:
    """A local chat webhook (JSON channel): records accepted bodies; `status` other than 200 is an outage."""

    def __init__(self) -> None:
        self.status = 200
        self.bodies: list[dict[str, Any]] = []
        self.posts = 0
        chat = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                chat.posts += 1
                if chat.status == 200:
                    chat.bodies.append(json.loads(body))
                self.send_response(chat.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/chat"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def topic() -> Iterator[EventGridReceiver]:
    with EventGridReceiver(key=KEY, tokens={"fake"}) as receiver:
        yield receiver


@pytest.fixture
def chat() -> Iterator[Chat]:
    server = Chat()
    yield server
    server.stop()


def publisher(topic: EventGridReceiver, credential: Any = None, **kwargs: Any) -> EventGridTopicPublisher:
    options: dict[str, Any] = {"secrets": [KEY], "connection_verify": topic.ca_pem, "sleep": lambda s: None, **kwargs}
    return EventGridTopicPublisher(topic.endpoint, credential or AzureKeyCredential(KEY), source=SOURCE, **options)


def lab_alert() -> dict[str, Any]:
    return json.loads((Path(__file__).resolve().parents[1] / "golden" / "lab-diff.json").read_text("utf-8"))


# ---- the publisher and the stand-in -----------------------------------------------------------------------------
def test_events_reach_the_topic_through_the_sdk_as_a_cloudevents_batch_with_the_key(
        topic: EventGridReceiver) -> None:
    alert = lab_alert()
    publisher(topic).deliver(alert, alert_id=alert["id"])
    [request] = topic.requests
    assert request.status == 200 and request.auth == "key" and request.content_type == CONTENT_TYPE
    [event] = topic.accepted
    assert event == json.loads(json.dumps(cloud_events(alert, source=SOURCE)[0]))  # what we built, unchanged
    assert event["type"] == PAIR_OPENED and event["specversion"] == "1.0"


def test_a_token_credential_is_sent_as_a_bearer_token_for_the_event_grid_scope(topic: EventGridReceiver) -> None:
    credential = FakeCredential()
    alert = lab_alert()
    publisher(topic, credential).deliver(alert, alert_id=alert["id"])
    assert topic.requests[0].auth == "bearer" and len(topic.accepted) == 1
    assert credential.scopes == [("https://eventgrid.azure.net/.default",)]


def test_the_ca_bundle_can_come_from_requests_ca_bundle(topic: EventGridReceiver,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", topic.ca_pem)
    alert = lab_alert()
    EventGridTopicPublisher(topic.endpoint, AzureKeyCredential(KEY), source=SOURCE).deliver(alert,
                                                                                          alert_id=alert["id"])
    assert len(topic.accepted) == 1


def test_a_refused_key_raises_an_alarm_keeps_the_events_and_never_shows_the_key(
        topic: EventGridReceiver, caplog: pytest.LogCaptureFixture) -> None:
    wrong = "wrong-key-abcdefghijklmnop"
    alert = lab_alert()
    with caplog.at_level(logging.DEBUG), pytest.raises(DeliveryError) as raised:
        publisher(topic, AzureKeyCredential(wrong), secrets=[wrong]).deliver(alert, alert_id=alert["id"])
    assert raised.value.retryable and "HTTP 401" in str(raised.value) and "Data Sender" in str(raised.value)
    assert raised.value.alarm is True  # a health alert says the topic refuses us
    assert len(topic.requests) == 1  # a refusal is not hammered within the run
    assert wrong not in caplog.text and wrong not in str(raised.value) and KEY not in caplog.text
    assert topic.accepted == []


def test_an_outage_is_retried_within_the_run_and_then_left_for_a_later_run(topic: EventGridReceiver) -> None:
    alert = lab_alert()
    topic.fail_next(503)
    publisher(topic).deliver(alert, alert_id=alert["id"])
    assert [r.status for r in topic.requests] == [503, 200] and len(topic.accepted) == 1
    topic.go_down(503)
    with pytest.raises(DeliveryError) as raised:
        publisher(topic, max_attempts=2).deliver(alert, alert_id=alert["id"])
    assert raised.value.retryable and "HTTP 503" in str(raised.value)
    assert raised.value.retry_after == 1.0 and not raised.value.alarm  # the topic's Retry-After, kept by the outbox


def test_an_unreachable_topic_is_a_retryable_connection_failure() -> None:
    dead = EventGridTopicPublisher("https://127.0.0.1:9/api/events", AzureKeyCredential(KEY), source=SOURCE,
                                   max_attempts=2, sleep=lambda s: None)
    with pytest.raises(DeliveryError) as raised:
        dead.deliver(lab_alert(), alert_id="a1")
    assert raised.value.retryable and "connection failed" in str(raised.value)


def test_the_stand_in_refuses_a_batch_over_one_megabyte_with_413(topic: EventGridReceiver) -> None:
    client = EventGridPublisherClient(topic.endpoint, AzureKeyCredential(KEY))
    events = [CloudEvent(source=SOURCE, type="T", id=f"e{i}", data={"pad": "x" * 200_000}) for i in range(6)]
    with pytest.raises(HttpResponseError) as raised:
        client.send(events, connection_verify=topic.ca_pem, retry_total=0)
    assert raised.value.status_code == 413 and topic.accepted == []


def test_our_biggest_batch_is_accepted_by_the_stand_in(topic: EventGridReceiver) -> None:
    from tests.unit.test_eventgrid_events import big_alert

    alert = big_alert(900, 100, causes=3)
    publisher(topic).deliver(alert, alert_id=alert["id"])  # unsplit: the publisher batches it
    assert len(topic.requests) > 1 and all(r.status == 200 for r in topic.requests)
    assert max(r.size for r in topic.requests) <= MAX_BYTES
    assert len(topic.accepted) == 1000 and len(set(topic.accepted_ids())) == 1000


@pytest.mark.parametrize(("change", "status", "says"), [
    ({"headers": {"Content-Type": "application/json"}}, 400, "content type"),
    ({"body": [{"id": "1", "source": "/s", "type": "T"}]}, 400, "specversion"),
    ({"body": [{"id": "1", "source": "/s", "specversion": "1.0"}]}, 400, "'type'"),
    ({"body": {"id": "1", "source": "/s", "type": "T", "specversion": "1.0"}}, 400, "JSON array"),
    ({"headers": {"aeg-sas-key": "nope"}}, 401, "not authorized"),
    ({"headers": {"aeg-sas-key": None}}, 401, "no aeg-sas-key"),
    ({"query": ""}, 400, "api-version"),
    ({"path": "/api/other"}, 404, "does not exist"),
])
def test_the_stand_in_answers_bad_requests_as_event_grid_does(topic: EventGridReceiver, change: dict[str, Any],
                                                               status: int, says: str) -> None:
    headers: dict[str, Any] = {"Content-Type": CONTENT_TYPE, "aeg-sas-key": KEY, **change.get("headers", {})}
    body = change.get("body", [{"id": "1", "source": "/s", "type": "T", "specversion": "1.0"}])
    base = topic.endpoint.replace("/api/events", change.get("path", "/api/events"))
    url = base + change.get("query", "?api-version=2018-01-01")
    response = requests.post(url, data=json.dumps(body), headers={k: v for k, v in headers.items() if v},
                             verify=topic.ca_pem, timeout=10)
    assert response.status_code == status
    error = response.json()["error"]
    assert says in error["message"] and error["details"][0]["code"] == error["code"]
    assert topic.accepted == []


# ---- through the auditor's outbox, next to a chat ------------------------------------------------------------------
class Clock:
    """The auditor's clock; `later()` moves it past any retry backoff the outbox set."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def later(self) -> None:
        self.now += timedelta(minutes=20)  # past the outbox's longest backoff (15 min), before any health limit


def auditor(tmp_path: Path, topic: EventGridReceiver, chat: Chat, resources: list[dict[str, Any]],
            clock: Clock | None = None, **kwargs: Any) -> tuple[Auditor, FakeReader]:
    reader = FakeReader(resources)
    notifiers = [publisher(topic, max_attempts=2, **kwargs),
                 WebhookNotifier("json", chat.url, name="json:JSON_WEBHOOK_URL", max_attempts=2, base_delay=0.01,
                                 max_total_wait=0.1, sleep=lambda s: None)]
    return Auditor(reader=reader, state=LocalStateStore(tmp_path), audit=LocalAuditLog(tmp_path),
                   notifiers=notifiers, clock=clock or Clock()), reader


def open_lab_pair(tmp_path: Path, topic: EventGridReceiver, chat: Chat, clock: Clock) -> Auditor:
    audit, reader = auditor(tmp_path, topic, chat, lab((2,)), clock)
    audit.run(RunTrigger(kind="reconcile"))  # baseline: announces nothing
    reader.resources = lab((1, 2))
    return audit


def test_a_chat_outage_does_not_hold_up_the_topic_and_each_event_arrives_once(
        tmp_path: Path, topic: EventGridReceiver, chat: Chat) -> None:
    clock = Clock()
    audit = open_lab_pair(tmp_path, topic, chat, clock)
    chat.status = 503
    started = time.monotonic()
    result = audit.run(event_trigger("e1", GW1))
    assert result.outcome == COMMITTED and len(result.opened) == 1
    assert len(topic.accepted) == 1 and chat.bodies == []
    assert time.monotonic() - started < 10
    chat.status = 200
    for _ in range(2):
        clock.later()
        audit.run(RunTrigger(kind="reconcile"))  # a later run delivers what is left
    assert len(chat.bodies) == 1
    assert len(topic.accepted) == 1  # the topic's item was settled: never posted again
    state, _ = LocalStateStore(tmp_path).load()
    assert state is not None and state.outbox == []


def test_a_topic_outage_does_not_hold_up_chat_and_each_event_arrives_once(
        tmp_path: Path, topic: EventGridReceiver, chat: Chat) -> None:
    clock = Clock()
    audit = open_lab_pair(tmp_path, topic, chat, clock)
    topic.go_down(503)
    started = time.monotonic()
    audit.run(event_trigger("e1", GW1))
    assert len(chat.bodies) == 1 and topic.accepted == []
    assert time.monotonic() - started < 10
    topic.come_back()
    for _ in range(2):
        clock.later()
        audit.run(RunTrigger(kind="reconcile"))
    assert len(topic.accepted) == 1 and topic.accepted[0]["data"]["caller"] == "alice@contoso.example"
    assert len(chat.bodies) == 1
    ids = topic.accepted_ids()
    assert ids == [cloud_events(chat.bodies[0], source=SOURCE)[0]["id"]]  # the id the chat's alert id implies


def test_a_change_too_big_for_one_request_is_posted_in_parts_each_accepted_exactly_once(
        tmp_path: Path, topic: EventGridReceiver, chat: Chat) -> None:
    spokes = [{}] * 12
    before = small_topology([{"allow_remote": False, "spokes": spokes}, {"spokes": spokes}])
    after = small_topology([{"spokes": spokes}, {"spokes": spokes}])
    clock = Clock()
    audit, reader = auditor(tmp_path, topic, chat, before, clock, max_batch_bytes=60_000)
    audit.run(RunTrigger(kind="reconcile"))
    reader.resources = after
    topic.fail_next(None, 503, 503)  # the first part is accepted, the second fails both its attempts
    result = audit.run(event_trigger("e1", rid("virtualNetworkGateways", "ergw-1")))
    opened = len(result.opened)
    assert opened == 13 * 13
    posts = [r for r in topic.requests if r.status == 200]
    # The first part is settled on its own; the rest wait for a later run (the topic just failed).
    assert len(posts) == 1 and 0 < len(topic.accepted) < opened
    for _ in range(2):
        clock.later()
        audit.run(RunTrigger(kind="reconcile"))
    ids = topic.accepted_ids()
    assert len(ids) == opened and len(set(ids)) == opened  # every pair once, none twice
    assert all(r.size <= 60_000 for r in topic.requests)


def test_a_change_of_more_than_500_pairs_gets_an_event_for_every_pair_while_chat_gets_the_summary(
        tmp_path: Path, topic: EventGridReceiver, chat: Chat) -> None:
    spokes = [{}] * 24
    before = small_topology([{"allow_remote": False, "spokes": spokes}, {"spokes": spokes}])
    after = small_topology([{"spokes": spokes}, {"spokes": spokes}])
    audit, reader = auditor(tmp_path, topic, chat, before)
    audit.run(RunTrigger(kind="reconcile"))
    reader.resources = after
    result = audit.run(event_trigger("e1", rid("virtualNetworkGateways", "ergw-1")))
    assert len(result.opened) == 25 * 25
    [alert] = chat.bodies
    assert len(alert["opened"]) == 500 and alert["omitted"]["opened"] == 125
    ids = topic.accepted_ids()
    assert len(ids) == 625 and len(set(ids)) == 625
    assert {tuple(e["data"]["pair"]["vnets"]) for e in topic.accepted} == {tuple(p["vnets"]) for p in result.opened}
    assert all(r.status == 200 and r.size <= MAX_BYTES for r in topic.requests)


def test_a_key_is_refused_by_a_topic_with_local_auth_disabled_while_a_token_is_taken() -> None:
    with EventGridReceiver(key=KEY, tokens={"fake"}, local_auth=False) as entra_only:
        alert = lab_alert()
        with pytest.raises(DeliveryError) as raised:
            publisher(entra_only).deliver(alert, alert_id=alert["id"])
        assert "HTTP 401" in str(raised.value) and entra_only.accepted == []
        publisher(entra_only, FakeCredential()).deliver(alert, alert_id=alert["id"])
        assert len(entra_only.accepted) == 1


def test_a_broken_chat_raises_one_health_event_on_the_topic_and_its_repair_one_more(
        tmp_path: Path, topic: EventGridReceiver, chat: Chat) -> None:
    clock = Clock()
    audit = open_lab_pair(tmp_path, topic, chat, clock)
    chat.status = 404  # the webhook was deleted: a health alarm about that channel
    audit.run(event_trigger("e1", GW1))

    def health() -> list[dict[str, Any]]:
        return [e for e in topic.accepted if e["type"] == HEALTH
                and e["data"]["condition"] == "delivery-failed:json:JSON_WEBHOOK_URL"]

    [raised] = health()
    assert raised["data"]["status"] == "raised" and raised["data"]["severity"] == "critical"
    assert raised["data"]["condition"] == "delivery-failed:json:JSON_WEBHOOK_URL"
    assert raised["subject"] == "health/delivery-failed:json:JSON_WEBHOOK_URL"
    assert [e["type"] for e in topic.accepted].count(PAIR_OPENED) == 1
    clock.later()
    audit.run(RunTrigger(kind="reconcile"))
    assert len(health()) == 1  # still broken: no second event
    chat.status = 200
    clock.later()
    audit.reader.resources = lab((2,))  # type: ignore[attr-defined]
    audit.run(event_trigger("e2", GW1))  # the next alert reaches chat again
    assert [e["data"]["status"] for e in health()] == ["raised", "cleared"]
    assert len(set(topic.accepted_ids())) == len(topic.accepted)


def test_a_chat_down_with_alerts_queued_costs_the_topic_one_delivery_budget_not_one_per_alert(
        tmp_path: Path, topic: EventGridReceiver, chat: Chat) -> None:
    clock = Clock()
    audit = open_lab_pair(tmp_path, topic, chat, clock)
    chat.status = 503
    for n, enabled in enumerate(((1, 2), (2,), (1, 2)), 1):  # three changes while chat is down
        audit.reader.resources = lab(enabled)  # type: ignore[attr-defined]
        audit.run(event_trigger(f"e{n}", GW1))
    assert len(topic.accepted) == 3 and chat.bodies == []
    def attempts() -> int:
        state, _ = LocalStateStore(tmp_path).load()
        assert state is not None and len([i for i in state.outbox if i["kind"] == "alert"]) == 3
        return sum(int(i["attempts"]) for i in state.outbox)

    before, chat.posts = attempts(), 0
    clock.later()
    audit.run(RunTrigger(kind="reconcile"))  # three chat items due: the first fails, the others wait
    assert chat.posts == 2  # one item, its two attempts
    assert attempts() == before + 1  # waiting is not an attempt
    chat.status = 200
    for _ in range(2):
        clock.later()
        audit.run(RunTrigger(kind="reconcile"))
    assert len(chat.bodies) == 3 and len(topic.accepted) == 3  # each alert once on each channel
