"""WebhookNotifier against a real local HTTP server scripted per test: retries, pacing, outcomes, no leaked URL."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.notify import WebhookNotifier, notifiers_from_settings, render
from shared.app.ports import DeliveryError

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
SLACK_PATH = "/services/T000/B000/SECRETxyz"
TEAMS_PATH = "/workflows/4f1e/triggers/manual/paths/invoke?api-version=1&sig=SECRETsig0123456789"
SECRETS = ("SECRETxyz", "SECRETsig0123456789", "/services/T000", "/workflows/4f1e")


@dataclass
class Reply:
    status: int = 202
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    accepted: bool = False


class Receiver:
    """A stand-in chat service: answers each POST with the next scripted Reply (then `default`)."""

    def __init__(self, *replies: Reply, default: Reply | None = None, port: int = 0) -> None:
        self.script = list(replies)
        self.default = default or Reply()
        self.received: list[Received] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                record = Received(self.path, dict(self.headers), body, time.monotonic())
                receiver.received.append(record)
                reply = receiver.script.pop(0) if receiver.script else receiver.default
                time.sleep(reply.delay)
                # Marked before answering: the client may go on before this thread runs again.
                record.accepted = 200 <= reply.status < 300 and not reply.delay
                try:
                    self.send_response(reply.status)
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    data = reply.body.encode()
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    record.accepted = False  # the client gave up waiting

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def accepted(self) -> list[Received]:
        return [r for r in self.received if r.accepted]


class FakeTime:
    """Injected clock and sleep: waits are recorded and advance the clock instead of blocking."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    started: list[Receiver] = []
    yield started
    for r in started:
        r.close()


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture(autouse=True)
def debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # urllib3 logs request lines (with the path) at DEBUG


def start(receivers: list[Receiver], *replies: Reply, **kwargs: Any) -> Receiver:
    r = Receiver(*replies, **kwargs)
    receivers.append(r)
    return r


def lab_alert() -> dict[str, Any]:
    return dict(json.loads((GOLDEN / "lab-diff.json").read_text(encoding="utf-8")))


def notifier(channel: str, url: str, fake_time: FakeTime, **kwargs: Any) -> WebhookNotifier:
    options: dict[str, Any] = {"timeout": 2.0, "sleep": fake_time.sleep, "clock": fake_time.clock}
    options.update(kwargs)
    return WebhookNotifier(channel, url, name=f"{channel}:TEST_WEBHOOK_URL", **options)


def failure(n: WebhookNotifier, alert_id: str = "a1") -> DeliveryError:
    with pytest.raises(DeliveryError) as info:
        n.deliver(lab_alert(), alert_id=alert_id)
    return info.value


def assert_no_secret(caplog: pytest.LogCaptureFixture, *errors: BaseException) -> None:
    texts = [caplog.text] + [m for r in caplog.records for m in (r.getMessage(), str(r.args))]
    for exc in errors:
        chain: BaseException | None = exc
        while chain is not None:
            texts += [str(chain), repr(chain), repr(chain.args)]
            chain = chain.__cause__ or chain.__context__
        assert exc.__cause__ is None and exc.__context__ is None
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, f"{secret!r} leaked into {text[:300]!r}"


def test_throttled_teams_post_waits_for_retry_after_then_is_delivered(
    receivers: list[Receiver], fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    server = start(receivers, Reply(429, "", {"Retry-After": "7"}), Reply(202))
    notifier("teams", server.url(TEAMS_PATH), fake_time).deliver(lab_alert(), alert_id="a1")
    assert len(server.received) == 2 and len(server.accepted) == 1
    assert fake_time.sleeps == [7.0]
    assert json.loads(server.received[1].body) == render("teams", {**lab_alert(), "id": "a1"})
    assert "throttled (HTTP 429)" in caplog.text
    assert_no_secret(caplog)


def test_retry_after_beyond_the_wait_budget_leaves_the_alert_for_the_next_run(
    receivers: list[Receiver], fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    server = start(receivers, Reply(429, "", {"Retry-After": "120"}))
    error = failure(notifier("slack", server.url(SLACK_PATH), fake_time, max_total_wait=60.0))
    assert error.retryable and len(server.received) == 1 and fake_time.sleeps == []
    assert "throttled" in str(error) and "slack:TEST_WEBHOOK_URL" in str(error)
    assert_no_secret(caplog, error)


def test_server_errors_are_retried_with_growing_jittered_backoff(
    receivers: list[Receiver], fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    server = start(receivers, Reply(500), Reply(500), Reply(202))
    notifier("teams", server.url(TEAMS_PATH), fake_time).deliver(lab_alert(), alert_id="a1")
    assert len(server.received) == 3 and len(server.accepted) == 1
    first, second = fake_time.sleeps
    assert 0.5 <= first <= 1.0 and 1.0 <= second <= 2.0
    assert_no_secret(caplog)


def test_a_service_down_for_every_attempt_raises_retryable_after_max_attempts(
    receivers: list[Receiver], fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    server = start(receivers, default=Reply(503, "Service Unavailable"))
    error = failure(notifier("json", server.url(TEAMS_PATH), fake_time, max_attempts=4))
    assert error.retryable and len(server.received) == 4 and len(fake_time.sleeps) == 3
    assert "HTTP 503" in str(error) and "4 attempt(s)" in str(error)
    assert_no_secret(caplog, error)


def test_a_response_slower_than_the_timeout_is_retried(
    receivers: list[Receiver], fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    server = start(receivers, Reply(504, delay=1.5), Reply(200, "ok"))
    notifier("slack", server.url(SLACK_PATH), fake_time, timeout=0.3).deliver(lab_alert(), alert_id="a1")
    assert len(server.received) == 2 and len(server.accepted) == 1
    assert "no answer within 0.3 s (ReadTimeout)" in caplog.text
    assert_no_secret(caplog)


def test_every_attempt_timing_out_is_retryable_and_names_the_timeout(
    receivers: list[Receiver], fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    server = start(receivers, default=Reply(202, delay=0.6))
    error = failure(notifier("teams", server.url(TEAMS_PATH), fake_time, timeout=0.2, max_attempts=2))
    assert error.retryable and "ReadTimeout" in str(error)
    assert_no_secret(caplog, error)


def test_refused_connection_keeps_the_alert_and_a_new_run_delivers_it_exactly_once(
    receivers: list[Receiver], fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as s:  # a port nobody listens on (yet)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}{SLACK_PATH}"
    outbox: list[dict[str, Any]] = [{"id": "a1", "alert": lab_alert()}]
    errors: list[DeliveryError] = []

    def run() -> None:  # what the auditor does with its outbox on each run
        n = notifier("slack", url, FakeTime())
        for entry in list(outbox):
            try:
                n.deliver(entry["alert"], alert_id=entry["id"])
            except DeliveryError as exc:
                errors.append(exc)
                if exc.retryable:
                    continue
            outbox.remove(entry)

    run()
    assert outbox and errors[0].retryable and "ConnectionError" in str(errors[0])
    server = start(receivers, Reply(200, "ok"), port=port)
    run()
    run()
    assert outbox == [] and len(errors) == 1
    assert len(server.received) == 1 and len(server.accepted) == 1
    assert json.loads(server.received[0].body) == render("slack", {**lab_alert(), "id": "a1"})
    assert server.received[0].headers["X-Alert-Id"] == "a1"
    assert_no_secret(caplog, *errors)


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (400, "invalid_payload", "malformed (invalid_payload)"),
        (400, "no_text", "no text (no_text)"),
        (403, "action_prohibited", "action_prohibited"),
        (404, "channel_not_found", "channel_not_found"),
        (404, "no_service", "revoked or invalid (no_service)"),
        (410, "channel_is_archived", "archived (channel_is_archived)"),
    ],
)
def test_slack_rejections_are_not_retried_and_say_why(
    receivers: list[Receiver],
    fake_time: FakeTime,
    caplog: pytest.LogCaptureFixture,
    status: int,
    body: str,
    reason: str,
) -> None:
    server = start(receivers, default=Reply(status, body))
    error = failure(notifier("slack", server.url(SLACK_PATH), fake_time))
    assert not error.retryable
    assert len(server.received) == 1 and fake_time.sleeps == []
    assert f"HTTP {status}" in str(error) and reason in str(error) and reason in caplog.text
    assert_no_secret(caplog, error)


def test_a_teams_rejection_echoing_the_url_is_masked(
    receivers: list[Receiver], fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    echo = json.dumps(
        {"error": {"code": "WorkflowTriggerIsNotEnabled", "message": f"The workflow at {TEAMS_PATH} is disabled."}}
    )
    server = start(receivers, default=Reply(404, echo))
    error = failure(notifier("teams", server.url(TEAMS_PATH), fake_time))
    assert not error.retryable and len(server.received) == 1
    assert "WorkflowTriggerIsNotEnabled" in str(error) and "flow was deleted or turned off" in str(error)
    assert_no_secret(caplog, error)


def test_json_channel_posts_the_model_with_an_idempotency_header(
    receivers: list[Receiver], fake_time: FakeTime
) -> None:
    server = start(receivers, Reply(200))
    alert = lab_alert()
    del alert["id"]
    notifier("json", server.url("/ingest"), fake_time).deliver(alert, alert_id="b2")
    [request] = server.received
    assert request.headers["X-Alert-Id"] == "b2"
    assert request.headers["Content-Type"].startswith("application/json")
    assert json.loads(request.body) == render("json", {**alert, "id": "b2"})


def test_a_rendering_failure_is_not_retryable_and_posts_nothing(
    receivers: list[Receiver], fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    server = start(receivers)
    n = notifier("teams", server.url(TEAMS_PATH), fake_time)
    with pytest.raises(DeliveryError) as info:
        n.deliver({"not": "an alert"}, alert_id="a1")
    assert not info.value.retryable and "cannot be rendered" in str(info.value)
    assert server.received == []
    assert_no_secret(caplog, info.value)


def test_slack_posts_to_one_webhook_are_at_least_a_second_apart(receivers: list[Receiver]) -> None:
    server = start(receivers, default=Reply(200, "ok"))
    url = server.url(SLACK_PATH)
    first = WebhookNotifier("slack", url, name="slack:A")
    second = WebhookNotifier("slack", url, name="slack:B")  # another instance, same webhook
    first.deliver(lab_alert(), alert_id="a1")
    second.deliver(lab_alert(), alert_id="a2")
    a, b = server.received
    assert b.at - a.at >= 0.99


def test_slack_pacing_uses_the_injected_clock(receivers: list[Receiver], fake_time: FakeTime) -> None:
    server = start(receivers, default=Reply(200, "ok"))
    n = notifier("slack", server.url(SLACK_PATH), fake_time)
    n.deliver(lab_alert(), alert_id="a1")
    fake_time.now += 0.25
    n.deliver(lab_alert(), alert_id="a2")
    assert fake_time.sleeps == [pytest.approx(0.75)]
    assert len(server.received) == 2


def test_notifiers_come_from_webhook_settings_and_bad_ones_are_named_and_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = {
        "TEAMS_WEBHOOK_URL": "https://prod-01.westeurope.logic.azure.com/workflows/x?sig=SECRETsig0123456789",
        "SLACK_WEBHOOK_URL_NETOPS": "https://hooks.slack.com/services/T000/B000/SECRETxyz",
        "JSON_WEBHOOK_URL_SIEM": "http://127.0.0.1:8080/ingest",
        "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
        "JSON_WEBHOOK_URL_KV": "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/json-hook/)",
        "SLACK_WEBHOOK_URL_EMPTY": "",
        "TEAMS_WEBHOOK_URL_PLAIN": "http://example.com/workflows/SECRETxyz",
        "OTHER_SETTING": "https://example.com",
        "SLACK_WEBHOOK_URL_SAME": "https://hooks.slack.com/services/T000/B000/SECRETxyz",
    }
    notifiers = notifiers_from_settings(settings, timeout=5.0)
    assert [(n.channel, getattr(n, "name", ""), type(n).__name__) for n in notifiers] == [
        ("json", "json:JSON_WEBHOOK_URL_KV", "UnusableWebhookNotifier"),  # configured but unusable: alerts queue
        ("json", "json:JSON_WEBHOOK_URL_SIEM", "WebhookNotifier"),
        ("slack", "slack:SLACK_WEBHOOK_URL_NETOPS", "WebhookNotifier"),
        ("teams", "teams:TEAMS_WEBHOOK_URL", "WebhookNotifier"),
        ("teams", "teams:TEAMS_WEBHOOK_URL_PLAIN", "UnusableWebhookNotifier"),
    ]
    assert "JSON_WEBHOOK_URL_KV is an unresolved Key Vault reference" in caplog.text
    assert "TEAMS_WEBHOOK_URL_PLAIN: plain http is refused" in caplog.text
    assert "SLACK_WEBHOOK_URL_SAME holds the same webhook as SLACK_WEBHOOK_URL_NETOPS" in caplog.text
    assert "SLACK_WEBHOOK_URL_EMPTY" not in caplog.text
    assert all("SECRET" not in repr(n) for n in notifiers)
    assert_no_secret(caplog)
