"""Webhook targets (issue 16, item 10): each channel's own hosts, anything else only when WEBHOOK_ALLOWED_HOSTS
lists it; internal addresses refused; no URL in any log record, not even masked."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from shared.adapters.notify import WebhookNotifier, notifiers_from_settings
from shared.adapters.notify.targets import AllowedHosts, TargetRefused, check_resolved
from shared.app.ports import DeliveryError
from tests.integration.test_notify_delivery import Receiver, lab_alert

REPO = Path(__file__).resolve().parents[2]


def accepted(url: str, channel: str = "slack", allowed: str | None = None) -> bool:
    settings = {f"{channel.upper()}_WEBHOOK_URL": url}
    if allowed is not None:
        settings["WEBHOOK_ALLOWED_HOSTS"] = allowed
    return any(isinstance(n, WebhookNotifier) for n in notifiers_from_settings(settings))


@pytest.mark.parametrize(("channel", "url"), [
    ("slack", "https://hooks.slack.com/services/T000/B000/xyz"),
    ("teams", "https://prod-27.westeurope.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke?sig=x"),
    ("teams", "https://default0a1b2c.07.environment.api.powerplatform.com:443/powerautomate/automations/direct/"
              "workflows/abc/triggers/manual/paths/invoke?api-version=1&sig=x"),
])
def test_each_channels_own_hosts_are_accepted(channel: str, url: str) -> None:
    assert accepted(url, channel)


@pytest.mark.parametrize(("channel", "url", "why"), [
    ("json", "https://169.254.169.254/metadata/instance?api-version=2021-02-01", "internal"),
    ("slack", "https://10.1.2.3/services/x", "internal"),
    ("teams", "https://[fd00::1]/workflows/x", "internal"),
    ("slack", "https://[::ffff:127.0.0.1]/services/x", "internal"),
    ("slack", "http://localhost:8765/slack", "plain http is refused"),
    ("slack", "http://127.0.0.1:8765/slack", "plain http is refused"),
    ("slack", "https://hooks.slack.com.evil.example/services/x", "not a slack webhook host"),
    ("slack", "https://evil.example/services/x", "not a slack webhook host"),
    ("teams", "https://logic.azure.com.evil.example/workflows/x", "not a teams webhook host"),
    ("teams", "https://hooks.slack.com/services/x", "not a teams webhook host"),
    ("json", "https://siem.example.com/ingest", "not a json webhook host"),
    ("slack", "https://hooks.slack.com@evil.example/services/x", "user information"),
])
def test_other_hosts_and_internal_addresses_are_refused_naming_the_setting_not_the_url(
        channel: str, url: str, why: str, caplog: pytest.LogCaptureFixture) -> None:
    assert not accepted(url, channel)
    assert why in caplog.text and f"{channel.upper()}_WEBHOOK_URL" in caplog.text
    path = "/" + url.split("/", 3)[3]
    assert path not in caplog.text


@pytest.mark.parametrize(("url", "allowed"), [
    ("http://127.0.0.1:8765/slack", "127.0.0.1"),
    ("http://localhost:8765/slack", "localhost, 10.0.0.1"),
    ("https://siem.example.com/ingest", "SIEM.example.com"),
    ("https://10.1.2.3/services/x", "10.1.2.3"),
    ("https://[fd00::1]/x", "[fd00::1]"),
])
def test_a_listed_host_is_accepted(url: str, allowed: str) -> None:
    assert accepted(url, "json", allowed)


def test_listing_is_exact_and_http_only_for_loopback() -> None:
    assert not accepted("https://siem.example.com.evil.example/x", "json", "siem.example.com")
    assert not accepted("http://siem.example.com/x", "json", "siem.example.com")
    assert not accepted("https://10.1.2.4/x", "json", "10.1.2.3")


def test_a_service_host_resolving_to_an_internal_address_is_refused_unless_that_address_is_listed() -> None:
    def resolve(host: str) -> list[str]:
        return ["52.1.2.3", "169.254.169.254"]
    with pytest.raises(TargetRefused, match="resolves to the internal address 169.254.169.254"):
        check_resolved("hooks.slack.com", AllowedHosts.parse(""), resolve=resolve)
    check_resolved("hooks.slack.com", AllowedHosts.parse("169.254.169.254"), resolve=resolve)
    check_resolved("hooks.slack.com", AllowedHosts.parse(""), resolve=lambda h: ["52.1.2.3"])


def test_a_listed_name_that_resolves_to_loopback_is_posted_to(caplog: pytest.LogCaptureFixture) -> None:
    receiver = Receiver()
    try:
        [n] = notifiers_from_settings({"JSON_WEBHOOK_URL": f"http://localhost:{receiver.port}/hook",
                                       "WEBHOOK_ALLOWED_HOSTS": "localhost"})
        n.deliver(lab_alert(), alert_id="a1")
        assert len(receiver.accepted) == 1
    finally:
        receiver.close()


def test_an_unlisted_name_resolving_to_loopback_is_not_posted_to() -> None:
    receiver = Receiver()
    try:
        n = WebhookNotifier("json", f"https://localhost:{receiver.port}/hook", name="json:JSON_WEBHOOK_URL",
                            allowed_hosts=AllowedHosts.parse(""), max_attempts=1)
        with pytest.raises(DeliveryError, match="resolves to the internal address") as info:
            n.deliver(lab_alert(), alert_id="a1")
        assert not info.value.retryable and receiver.received == []
    finally:
        receiver.close()


def test_no_url_reaches_the_logs_even_re_encoded(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    receiver = Receiver()
    try:
        # requests re-encodes the URL it sends (%7E becomes ~, a space %20): a string mask would miss it.
        url = f"http://127.0.0.1:{receiver.port}/hook/S3CRET%7Epath?sig=S3CRET sig&x=%41"
        [n] = notifiers_from_settings({"JSON_WEBHOOK_URL": url, "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1"})
        n.deliver(lab_alert(), alert_id="a1")
        assert len(receiver.accepted) == 1
    finally:
        receiver.close()
    texts = [caplog.text] + [r.getMessage() for r in caplog.records]
    assert not [t for t in texts if "S3CRET" in t or "/hook" in t]


# -- through the CLI: the README's local-receiver flow ---------------------------------------------------------------

def replay_env(receiver: Receiver, allowed: str | None) -> dict[str, str]:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO),
           "SLACK_WEBHOOK_URL": receiver.url("/slack"), "TEAMS_WEBHOOK_URL": receiver.url("/teams")}
    if allowed is not None:
        env["WEBHOOK_ALLOWED_HOSTS"] = allowed
    return env


def test_the_local_receiver_flow_posts_once_127_0_0_1_is_listed(tmp_path: Path) -> None:
    receiver = Receiver()
    try:
        done = subprocess.run([sys.executable, "-m", "shared.cli", "replay", "examples/replay-lab", "--store",
                               str(tmp_path), "--json"], cwd=REPO, capture_output=True, text=True, timeout=120,
                              env=replay_env(receiver, "127.0.0.1"))
        assert done.returncode == 0, done.stderr
        paths = sorted({r.path for r in receiver.accepted})
        assert paths == ["/slack", "/teams"]
        assert all(json.loads(r.body) for r in receiver.accepted)
    finally:
        receiver.close()


def test_the_local_receiver_is_not_posted_to_when_it_is_not_listed(tmp_path: Path) -> None:
    receiver = Receiver()
    try:
        done = subprocess.run([sys.executable, "-m", "shared.cli", "replay", "examples/replay-lab", "--store",
                               str(tmp_path), "--json"], cwd=REPO, capture_output=True, text=True, timeout=120,
                              env=replay_env(receiver, None))
        assert receiver.received == []
        assert "SLACK_WEBHOOK_URL: plain http is refused" in done.stderr
        assert "/slack" not in done.stderr
    finally:
        receiver.close()
