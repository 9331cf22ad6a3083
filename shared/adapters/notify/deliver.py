"""Webhook delivery (bounded retries, Slack pacing, errors that never carry the secret URL) and the console."""

from __future__ import annotations

import email.utils
import json
import logging
import random
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import urlsplit

import requests

from shared.adapters.notify.compact import render_minimal
from shared.adapters.notify.render import RenderError, render, render_text
from shared.adapters.notify.targets import (
    ALLOWED_HOSTS_SETTING,
    AllowedHosts,
    TargetRefused,
    check_resolved,
    check_target,
)
from shared.app.ports import DeliveryError, JsonDict, Notifier

logger = logging.getLogger(__name__)

SETTING_PREFIXES = {"TEAMS_WEBHOOK_URL": "teams", "SLACK_WEBHOOK_URL": "slack", "JSON_WEBHOOK_URL": "json"}
SLACK_INTERVAL = 1.0  # Slack: about one message per second per webhook
# Slack's plain-text error bodies, none of which a retry fixes.
SLACK_ERRORS = {
    "invalid_payload": "Slack rejected the message as malformed (invalid_payload)",
    "no_text": "Slack rejected the message: no text (no_text)",
    "action_prohibited": "the Slack workspace admin restricted this webhook (action_prohibited)",
    "no_service": "the Slack webhook is disabled, revoked or invalid (no_service)",
    "no_service_id": "the Slack webhook URL is invalid (no_service_id)",
    "no_team": "the Slack workspace of this webhook no longer exists (no_team)",
    "team_disabled": "the Slack workspace of this webhook is disabled (team_disabled)",
    "invalid_token": "the Slack webhook token is invalid (invalid_token)",
    "channel_not_found": "the Slack channel of this webhook no longer exists (channel_not_found)",
    "channel_is_archived": "the Slack channel of this webhook is archived (channel_is_archived)",
    "msg_blocks_too_long": "Slack refused the message as too long (msg_blocks_too_long)",
    "invalid_blocks": "Slack refused the message's blocks (invalid_blocks)",
    "invalid_blocks_format": "Slack refused the message's blocks (invalid_blocks_format)",
    "msg_too_long": "Slack refused the message as too long (msg_too_long)",
}
# Refusals of a message's size or shape: the minimal alert is sent instead (ours fit; the limits are undocumented in
# part, see shared/adapters/notify/slack.py). Teams Workflows answers 413 "Request entity too large" over about 28 KB.
SLACK_SIZE_ERRORS = frozenset({"msg_blocks_too_long", "invalid_blocks", "invalid_blocks_format", "msg_too_long"})
# Answers that mean the channel itself is gone or locked (revoked webhook, deleted or disabled flow, archived
# channel): retrying never helps, and someone must hear of it another way (the health alarm).
SLACK_GONE_ERRORS = frozenset({"action_prohibited", "no_service", "no_service_id", "no_team", "team_disabled",
                               "invalid_token", "channel_not_found", "channel_is_archived"})
GONE_STATUSES = frozenset({401, 403, 404, 410})


class Pacer:
    """Keeps posts to one webhook at least `interval` seconds apart within the process (per-URL lock)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._last: dict[str, float] = {}

    def lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def wait(self, key: str, interval: float, clock: Callable[[], float], sleep: Callable[[float], None]) -> None:
        """Call with `lock(key)` held, just before posting."""
        last = self._last.get(key)
        if last is not None:
            remaining = last + interval - clock()
            if remaining > 0:
                sleep(remaining)

    def posted(self, key: str, clock: Callable[[], float]) -> None:
        self._last[key] = clock()


_PROCESS_PACER = Pacer()


class _WhilePostingFilter(logging.Filter):
    """Drops what HTTP libraries log on a thread while it posts to a webhook (urllib3 logs the request line, with
    the URL's path and query, at DEBUG; re-encoded, so masking by string would miss it). Not masked: dropped."""

    def __init__(self) -> None:
        super().__init__()
        self.posting = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(self.posting, "active", False)


# The loggers of urllib3 that put a URL or its path in a record (request line, retries, redirects).
HTTP_LOGGERS = ("urllib3.connectionpool", "urllib3.util.retry", "urllib3.poolmanager", "urllib3.connection")
_URL_FILTER = _WhilePostingFilter()


@dataclass(frozen=True, slots=True)
class _Attempt:
    accepted: bool
    retryable: bool
    reason: str
    retry_after: float | None = None
    refusal: str = ""  # "size": refused for its size or shape; "gone": the channel is revoked, deleted or locked


class WebhookNotifier:
    """Posts alerts to one Teams Workflows, Slack or generic JSON webhook (implements the Notifier port)."""

    def __init__(
        self,
        channel: str,
        url: str,
        *,
        name: str,
        session: requests.Session | None = None,
        timeout: float = 10.0,
        max_attempts: int = 4,
        max_total_wait: float = 60.0,
        base_delay: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        pacer: Pacer | None = None,
        allowed_hosts: AllowedHosts | None = None,
    ) -> None:
        if channel not in SETTING_PREFIXES.values():
            raise ValueError(f"{name}: unknown channel {channel!r}")
        self.channel = channel
        self.name = name
        self._url = url
        self._session = session
        self._timeout = timeout
        self._max_attempts = max(1, max_attempts)
        self._max_total_wait = max_total_wait
        self._base_delay = base_delay
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self._pacer = pacer or _PROCESS_PACER
        # Given (from the settings): the host's addresses are checked before each post (see targets.py).
        self._allowed_hosts = allowed_hosts
        for logger_name in HTTP_LOGGERS:
            logging.getLogger(logger_name).addFilter(_URL_FILTER)  # no-op once added

    def __repr__(self) -> str:
        return f"WebhookNotifier(channel={self.channel!r}, name={self.name!r})"

    @property
    def max_call_seconds(self) -> float:
        """The longest one `deliver` call may take: its attempts (the full alert's and, after a size refusal, the
        minimal alert's share them) and its waits. The auditor holds its claim on the alert at least that long, so
        no other run takes the alert over (and posts it again) while this call still runs."""
        return self._max_attempts * self._timeout + self._max_total_wait

    def deliver(self, alert: JsonDict, *, alert_id: str) -> None:
        """One bounded sequence of attempts; returns once accepted, else raises DeliveryError.

        `alert_id` (the outbox's id) is the id shown in the message and sent as X-Alert-Id / Idempotency-Key.
        A post refused for its size or shape is followed by the minimal alert (title, counts, severity, alert
        id, where the full record is); if that is refused too, or the channel is gone, the error is an alarm.
        """
        body: dict[str, Any] = {}
        unrenderable = ""
        try:
            body = render(self.channel, {**alert, "id": alert_id})
        except RenderError as exc:
            unrenderable = str(exc)
        if unrenderable:  # raised outside the handler so no exception chain is attached
            raise DeliveryError(f"{self.name}: alert {alert_id} cannot be rendered: {unrenderable}", retryable=False)
        # One deadline for the whole call: the minimal alert's retries never add a second budget on top.
        deadline = self._clock() + self.max_call_seconds
        outcome, attempt = self._attempts(body, alert_id, deadline)
        if outcome.refusal == "size":
            logger.warning("%s: alert %s refused for its size or shape (%s); sending the minimal alert instead",
                           self.name, alert_id, outcome.reason)
            outcome, attempt = self._attempts(render_minimal(self.channel, {**alert, "id": alert_id}), alert_id,
                                              deadline)
            if outcome.accepted:
                return
            if not outcome.retryable:
                logger.error("%s: even the minimal alert %s was refused: %s", self.name, alert_id, outcome.reason)
                raise DeliveryError(f"{self.name}: alert {alert_id} refused, and its minimal form too: "
                                    f"{outcome.reason}", retryable=False, alarm=True)
        if outcome.accepted:
            return
        if not outcome.retryable:
            logger.error("%s: alert %s rejected, not retried: %s", self.name, alert_id, outcome.reason)
            raise DeliveryError(f"{self.name}: alert {alert_id} rejected: {outcome.reason}", retryable=False,
                                alarm=outcome.refusal == "gone")
        logger.warning("%s: alert %s not delivered, will be retried on a later run: %s",
                       self.name, alert_id, outcome.reason)
        raise DeliveryError(f"{self.name}: alert {alert_id} not delivered after {attempt} attempt(s): "
                            f"{outcome.reason}", retryable=True, retry_after=outcome.retry_after)

    def _attempts(self, body: dict[str, Any], alert_id: str, deadline: float) -> tuple[_Attempt, int]:
        """Post `body` with bounded retries (Retry-After honoured within the wait budget), never starting a post or
        a wait that would end after `deadline` (each post's timeout is cut to what is left); the last outcome."""
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "X-Alert-Id": alert_id,
            "Idempotency-Key": alert_id,
            "User-Agent": "er-transit-auditor",
        }
        waited = 0.0
        outcome = _Attempt(False, True, "not attempted")
        attempt = 0
        for attempt in range(1, self._max_attempts + 1):
            if deadline - self._clock() <= 0:
                outcome = _Attempt(False, True, f"{outcome.reason}; out of time for this delivery "
                                                f"({self.max_call_seconds:g} s)", outcome.retry_after)
                attempt -= 1
                break
            outcome = self._post(data, headers, deadline)
            if outcome.accepted:
                logger.info("%s: alert %s accepted (attempt %d)", self.name, alert_id, attempt)
                return outcome, attempt
            if not outcome.retryable or attempt == self._max_attempts:
                break
            delay = self._delay(attempt, outcome.retry_after)
            if waited + delay > self._max_total_wait or self._clock() + delay >= deadline:
                logger.warning("%s: alert %s: next wait %.1f s would exceed the %.0f s budget",
                               self.name, alert_id, delay, self._max_total_wait)
                break
            logger.warning("%s: alert %s attempt %d/%d failed (%s); retrying in %.1f s",
                           self.name, alert_id, attempt, self._max_attempts, outcome.reason, delay)
            self._sleep(delay)
            waited += delay
        return outcome, attempt

    def _post(self, data: bytes, headers: dict[str, str], deadline: float) -> _Attempt:
        """One POST, its timeout cut to what is left before `deadline` (requests applies it to the connect and to
        each read). requests' exceptions carry the URL, so only their class name leaves this method."""
        key = "|".join(sorted(_secret_parts(self._url)))
        if self._allowed_hosts is not None:
            refused = ""
            try:
                check_resolved(urlsplit(self._url).hostname or "", self._allowed_hosts)
            except TargetRefused as exc:
                refused = str(exc)
            if refused:
                return _Attempt(False, False, refused)
        with self._pacer.lock(key):
            if self.channel == "slack":
                self._pacer.wait(key, SLACK_INTERVAL, self._clock, self._sleep)
            timeout = min(self._timeout, deadline - self._clock())
            if timeout <= 0:  # the pacing ate what was left
                return _Attempt(False, True, f"out of time for this delivery ({self.max_call_seconds:g} s)")
            _URL_FILTER.posting.active = True
            try:
                post = self._session.post if self._session is not None else requests.post
                response = post(self._url, data=data, headers=headers, timeout=timeout, allow_redirects=False)
            except requests.ConnectTimeout:
                return _Attempt(False, True, "connect timeout (ConnectTimeout)")
            except requests.Timeout as exc:
                # The service may have accepted it without answering in time; a retry may duplicate it.
                return _Attempt(False, True, f"no answer within {self._timeout:g} s ({type(exc).__name__})")
            except requests.ConnectionError as exc:
                return _Attempt(False, True, f"connection failed ({type(exc).__name__})")
            except Exception as exc:  # InvalidURL, InvalidHeader, ...: their text may hold the URL too
                return _Attempt(False, False, f"request failed ({type(exc).__name__})")
            finally:
                _URL_FILTER.posting.active = False
                self._pacer.posted(key, self._clock)
            try:
                return self._judge(response)
            finally:
                response.close()

    def _judge(self, response: requests.Response) -> _Attempt:
        status = response.status_code
        text = _without_urls(_mask(response.text[:500].strip(), _secret_parts(self._url)))
        if 200 <= status < 300:
            if self.channel == "slack" and text not in ("ok", ""):
                logger.warning("%s: Slack answered %d with %r", self.name, status, text[:100])
            return _Attempt(True, False, f"HTTP {status}")
        if status == 429:
            return _Attempt(False, True, "throttled (HTTP 429)", _retry_after(response))
        if status >= 500 or status == 408:
            return _Attempt(False, True, f"HTTP {status}" + _detail(text), _retry_after(response))
        if 300 <= status < 400:
            return _Attempt(False, False, f"HTTP {status}: redirected (not followed; has the webhook URL moved?)")
        token = text.split()[0] if text else ""
        refusal = ""
        if status == 413 or (self.channel == "slack" and token in SLACK_SIZE_ERRORS) or (
                self.channel == "teams" and status == 400 and "too large" in text.lower()):
            refusal = "size"
        elif status in GONE_STATUSES or (self.channel == "slack" and token in SLACK_GONE_ERRORS):
            refusal = "gone"
        return _Attempt(False, False, f"HTTP {status}: {self._rejection(status, text)}", refusal=refusal)

    def _rejection(self, status: int, text: str) -> str:
        if self.channel == "slack":
            token = text.split()[0] if text else ""
            return SLACK_ERRORS.get(token, f"Slack error {token or '(empty body)'}"[:120])
        if self.channel == "teams" and status in (401, 403, 404):
            return "the Workflows URL is invalid, expired or its flow was deleted or turned off" + _detail(
                _json_error(text))
        return "the service refused the message" + _detail(_json_error(text))

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        backoff = min(self._base_delay * 2.0 ** (attempt - 1), 30.0)
        jittered = backoff * (0.5 + self._rng.random() / 2)
        return max(jittered, retry_after) if retry_after is not None else jittered


class ConsoleNotifier:
    """Prints a readable text rendering; the local default when no webhook is configured."""

    channel = "console"
    name = "console"

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def deliver(self, alert: JsonDict, *, alert_id: str) -> None:
        stream = self._stream or sys.stdout
        stream.write(render_text({**alert, "id": alert_id}))
        stream.flush()


class UnusableWebhookNotifier:
    """Stands for a webhook setting that exists but cannot be used (an unresolved Key Vault reference, a refused
    URL): every delivery fails, so the alerts stay queued under the setting's name (delivered once it is fixed)
    and the failure shows as one, never as a silent fallback to the console. `unusable` (why) makes the auditor
    raise the channel's `delivery-failed` health alert at every run, even before there is an alert to post."""

    def __init__(self, channel: str, *, name: str, reason: str) -> None:
        self.channel = channel
        self.name = name
        self.reason = reason
        self.unusable = reason

    def __repr__(self) -> str:
        return f"UnusableWebhookNotifier(channel={self.channel!r}, name={self.name!r})"

    def deliver(self, alert: JsonDict, *, alert_id: str) -> None:
        logger.error("%s: alert %s not delivered: the setting is configured but unusable: %s", self.name, alert_id,
                     self.reason)
        raise DeliveryError(f"{self.name}: alert {alert_id} not delivered: the setting is configured but unusable: "
                            f"{self.reason}", retryable=True, alarm=True)


def notifiers_from_settings(settings: Mapping[str, str], **options: Any) -> list[Notifier]:
    """A WebhookNotifier per `TEAMS_/SLACK_/JSON_WEBHOOK_URL*` setting holding a usable URL, in name order.

    Usable: https to the channel's own service hosts, or to a host WEBHOOK_ALLOWED_HOSTS lists (see targets.py).
    """
    out: list[Notifier] = []
    seen: dict[str, str] = {}
    allowed = AllowedHosts.parse(settings.get(ALLOWED_HOSTS_SETTING))
    for setting in sorted(settings):
        channel = next((c for p, c in SETTING_PREFIXES.items() if setting.upper().startswith(p)), None)
        value = (settings[setting] or "").strip()
        if channel is None or not value:
            continue
        name = f"{channel}:{setting}"
        if value.startswith("@Microsoft.KeyVault"):
            reason = (f"setting {setting} is an unresolved Key Vault reference (check the app's identity and the "
                      "secret)")
            logger.error("%s; its %s alerts stay queued", reason, channel)
            out.append(UnusableWebhookNotifier(channel, name=name, reason=reason))
            continue
        try:
            check_target(setting, channel, value, allowed)
        except TargetRefused as exc:
            logger.error("%s; its %s alerts stay queued", exc, channel)
            out.append(UnusableWebhookNotifier(channel, name=name, reason=str(exc)))
            continue
        if value in seen:
            logger.warning("setting %s holds the same webhook as %s; skipped so alerts are not posted twice",
                           setting, seen[value])
            continue
        seen[value] = setting
        out.append(WebhookNotifier(channel, value, name=name, allowed_hosts=allowed, **options))
    return out


def _secret_parts(url: str) -> set[str]:
    """The whole URL and the pieces that are secret on their own: the path and the query (Slack path, `sig=`)."""
    parts = urlsplit(url)
    pieces = {url, parts.query} | ({parts.path} if len(parts.path) > 1 else set())
    pieces |= {p.split("=", 1)[1] for p in parts.query.split("&") if "=" in p and len(p.split("=", 1)[1]) >= 8}
    return {p for p in pieces if p}


def _mask(text: str, secrets: set[str]) -> str:
    for s in sorted(secrets, key=len, reverse=True):
        text = text.replace(s, "***")
    return text


def _without_urls(text: str) -> str:
    """A service's error text without any URL in it (it may echo ours, encoded in a way masking cannot see)."""
    return re.sub(r"[A-Za-z][A-Za-z0-9+.-]*://\S+", "<URL removed>", text)


def _retry_after(response: requests.Response) -> float | None:
    """Retry-After in seconds (delta-seconds or an HTTP date); None when absent or unreadable."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _json_error(text: str) -> str:
    """`error.code: error.message` of an ARM/Logic Apps style error body, else the text itself."""
    try:
        error = json.loads(text).get("error", {})
        return f"{error.get('code', '')}: {error.get('message', '')}"[:200].strip(": ")
    except (ValueError, AttributeError):
        return text[:200]


def _detail(text: str) -> str:
    return f" ({text})" if text else ""
