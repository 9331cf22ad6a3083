"""Event Grid publisher: every transit change (and health change) as a CloudEvent on a custom topic.

A Notifier next to Teams, Slack and JSON: it goes through the same outbox (retries, "not before" times, dead
letters). One event per opened or closed pair, one per health change; an alert too large for one publish request
is split up front (`split`) into parts that each fit one batch, so the outbox settles every accepted post on its
own and a retry never re-sends an accepted event.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from hashlib import sha256
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from shared.app.ports import DeliveryError, JsonDict

if TYPE_CHECKING:
    from azure.core.credentials import AzureKeyCredential, TokenCredential
    from azure.eventgrid import EventGridPublisherClient

    from shared.adapters.notify.deliver import UnusableWebhookNotifier

logger = logging.getLogger(__name__)

CHANNEL = "eventgrid"
ENDPOINT_SETTING = "EVENTGRID_TOPIC_ENDPOINT"
KEY_SETTING = "EVENTGRID_TOPIC_KEY"  # local runs only: in Azure the topic refuses keys (local auth disabled)
SOURCE_SETTING = "EVENTGRID_EVENT_SOURCE"  # infra sets it to the function app's resource id
LOCAL_SOURCE = "urn:er-transit-auditor:local"

PAIR_OPENED, PAIR_CLOSED, HEALTH = "ErTransit.PairOpened", "ErTransit.PairClosed", "ErTransit.Health"
DATA_SCHEMA = "er-transit-auditor/event/v1"

# Event Grid (basic tier: custom topics) takes a publish request as an array whose total size is at most 1 MB,
# each event at most 1 MB; anything larger is refused with 413 Payload Too Large. Sources:
# https://learn.microsoft.com/azure/event-grid/event-schema ("the array can have a total size of up to 1 MB. Each
# event in the array is limited to 1 MB") and https://learn.microsoft.com/azure/event-grid/quotas-limits.
# We stay below 1,000,000 bytes of our own JSON so what the SDK adds (its own whitespace, a `traceparent` per
# event when tracing is on) cannot push a batch over 1 MiB.
SERVICE_MAX_BATCH_BYTES = 1024 * 1024
MAX_BATCH_BYTES = 1_000_000
MAX_EVENT_BYTES = MAX_BATCH_BYTES - 2  # one event alone in a batch: "[" + event + "]"

# Per-call options for the SDK pipeline. The basic-tier client does not pass constructor options on to its
# pipeline (azure-eventgrid 4.22 `_patch.py` builds the legacy client with the endpoint, credential and api version
# only), so timeouts and retries go with every `send`. Its own retries are off (retry_total=0): the attempts and
# waits are ours, bounded, so a topic outage holds up the other channels of a run for seconds, not minutes
# (azure-core's defaults are 300 s timeouts and up to 10 retries).
_CALL_OPTIONS = ("retry_total", "connection_timeout", "read_timeout", "connection_verify")


class _SdkOptionNoise(logging.Filter):
    """Drops the warning the SDK logs per event for each per-call option it also hands to its event model.

    azure-eventgrid 4.22 passes `send`'s keyword arguments both to the pipeline (where they work) and to the
    generated CloudEvent model, which warns "<option> is not a known attribute ... and will be ignored".
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.endswith("will be ignored") and message.split(" ", 1)[0] in _CALL_OPTIONS)


_NOISE = _SdkOptionNoise()


def cloud_events(alert: Mapping[str, Any], *, source: str) -> list[JsonDict]:
    """The CloudEvents 1.0 (JSON form) an alert becomes: one per opened/closed pair, or one for a health alert.

    Pure and deterministic: the same alert always gives the same events (ids, times, data), so a retried post
    repeats them exactly and a subscriber can drop duplicates by id.
    """
    alert_id = str(alert.get("id") or "")
    time_text = _event_time(alert.get("time"))
    if alert.get("kind") == "health":
        condition = str(alert.get("condition") or "unknown")
        data = {
            "schema": DATA_SCHEMA, "alertId": alert_id, "condition": condition, "status": alert.get("status"),
            "severity": alert.get("severity"), "title": alert.get("title"), "detail": alert.get("detail"),
            "since": alert.get("since"), "runId": alert.get("runId"),
        }
        return [_fit(_event(f"{alert_id}-health", HEALTH, f"health/{condition}", time_text, source, data))]
    events = []
    for direction, event_type in (("opened", PAIR_OPENED), ("closed", PAIR_CLOSED)):
        for pair in alert.get(direction) or []:
            if isinstance(pair, Mapping):
                events.append(_fit(_pair_event(alert, pair, direction, event_type, time_text, source)))
    return events


def event_id(alert_id: str, direction: str, vnets: Sequence[str]) -> str:
    """`<alert id>-<16 hex>`: the same alert and pair always give the same id (ids compared case-insensitively)."""
    key = "\n".join([direction, *(str(v).lower() for v in vnets)])
    return f"{alert_id}-{sha256(key.encode('utf-8')).hexdigest()[:16]}"


def batch_events(events: Sequence[JsonDict], *, max_bytes: int = MAX_BATCH_BYTES) -> list[list[JsonDict]]:
    """Consecutive events grouped into batches whose JSON array stays within `max_bytes` (order kept)."""
    batches: list[list[JsonDict]] = []
    current: list[JsonDict] = []
    size = 2  # "[]"
    for event in events:
        n = event_size(event)
        extra = n + (2 if current else 0)  # ", " between items, as json.dumps writes it
        if current and size + extra > max_bytes:
            batches.append(current)
            current, size = [], 2
            extra = n
        current.append(event)
        size += extra
    if current:
        batches.append(current)
    return batches


def event_size(event: Mapping[str, Any]) -> int:
    """Bytes of the event as the SDK serialises it (json.dumps defaults: ASCII escapes, ", " and ": ")."""
    return len(json.dumps(event).encode("utf-8"))


class EventGridTopicPublisher:
    """Publishes alerts as CloudEvents to an Event Grid custom topic (implements the Notifier port)."""

    channel = CHANNEL

    def __init__(
        self,
        endpoint: str,
        credential: AzureKeyCredential | TokenCredential,
        *,
        source: str,
        name: str = f"{CHANNEL}:{ENDPOINT_SETTING}",
        secrets: Sequence[str] = (),
        client: EventGridPublisherClient | None = None,
        timeout: float = 10.0,
        max_attempts: int = 3,
        max_total_wait: float = 10.0,
        base_delay: float = 0.5,
        max_batch_bytes: int = MAX_BATCH_BYTES,
        connection_verify: str | bool | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.name = name
        self.endpoint = endpoint
        self.source = source
        self._credential = credential
        self._secrets = {s for s in secrets if s}
        self._client = client
        self._timeout = timeout
        self._max_attempts = max(1, max_attempts)
        self._max_total_wait = max_total_wait
        self._base_delay = base_delay
        self._max_batch_bytes = min(max_batch_bytes, MAX_BATCH_BYTES)
        self._verify = connection_verify
        self._sleep = sleep
        self._rng = rng or random.Random()
        logging.getLogger("azure.eventgrid._legacy._generated._serialization").addFilter(_NOISE)  # no-op if added

    def __repr__(self) -> str:
        return f"EventGridTopicPublisher(name={self.name!r}, endpoint={self.endpoint!r})"

    @property
    def max_call_seconds(self) -> float:
        """About the longest one `deliver` of a part from `split` (one batch) takes: its attempts and waits. The
        auditor renews its claim on the item before a call that could outlast it."""
        return self._max_attempts * self._timeout + self._max_total_wait

    def split(self, alert: JsonDict) -> list[JsonDict]:
        """The alert in parts whose events each fit one publish request (one outbox item per part).

        A part is the alert with a share of its pairs (chat-only fields left out); a health alert is one part.
        """
        if alert.get("kind") == "health":
            return [alert]
        tagged = [(d, p) for d in ("opened", "closed") for p in alert.get(d) or [] if isinstance(p, Mapping)]
        sizes = [event_size(e) for e in cloud_events(alert, source=self.source)]
        parts: list[list[tuple[str, Any]]] = [[]]
        size = 2
        for item, n in zip(tagged, sizes, strict=True):
            extra = n + (2 if parts[-1] else 0)
            if parts[-1] and size + extra > self._max_batch_bytes:
                parts.append([])
                size, extra = 2, n
            parts[-1].append(item)
            size += extra
        if len(parts) == 1:
            return [alert]
        base = {k: v for k, v in alert.items() if k not in ("opened", "closed", "groups")}
        return [{**base, "opened": [p for d, p in part if d == "opened"],
                 "closed": [p for d, p in part if d == "closed"], "part": [i, len(parts)]}
                for i, part in enumerate(parts, 1)]

    def deliver(self, alert: JsonDict, *, alert_id: str) -> None:
        """Publish the alert's events; returns once the topic accepted them all, else raises DeliveryError.

        An alert from `split` is one request. A larger one (a caller that did not split) is sent batch by batch;
        if a later batch fails, a retry re-sends the earlier ones with the same ids (subscribers drop them).
        """
        events = cloud_events({**alert, "id": alert_id}, source=self.source)
        if not events:
            logger.info("%s: alert %s has no pair to publish", self.name, alert_id)
            return
        batches = batch_events(events, max_bytes=self._max_batch_bytes)
        for number, batch in enumerate(batches, 1):
            self._publish(batch, alert_id, f"batch {number}/{len(batches)}" if len(batches) > 1 else "")
        logger.info("%s: alert %s: %d event(s) accepted", self.name, alert_id, len(events))

    # ---- one publish request, with bounded retries ----------------------------------------------------------------
    def _publish(self, batch: list[JsonDict], alert_id: str, label: str) -> None:
        from azure.core.messaging import CloudEvent

        what = f"alert {alert_id}" + (f" {label}" if label else "")
        cloud = [CloudEvent(source=e["source"], type=e["type"], id=e["id"], subject=e.get("subject"),
                            time=_parse_time(e.get("time")), datacontenttype=e.get("datacontenttype"),
                            data=e.get("data")) for e in batch]
        waited = 0.0
        for attempt in range(1, self._max_attempts + 1):
            failure = self._send_once(cloud)
            if failure is None:
                return
            reason, retryable, retry_after, alarm = failure
            if not retryable:
                logger.error("%s: %s refused, not retried: %s", self.name, what, reason)
                raise _delivery_error(f"{self.name}: {what} refused: {reason}", retryable=False, alarm=alarm)
            delay = self._delay(attempt, retry_after)
            if alarm or attempt == self._max_attempts or waited + delay > self._max_total_wait:
                logger.warning("%s: %s not published, left for a later run: %s", self.name, what, reason)
                raise _delivery_error(f"{self.name}: {what} not published after {attempt} attempt(s): {reason}",
                                      retryable=True, retry_after=retry_after, alarm=alarm)
            logger.warning("%s: %s attempt %d/%d failed (%s); retrying in %.1f s", self.name, what, attempt,
                           self._max_attempts, reason, delay)
            self._sleep(delay)
            waited += delay

    def _send_once(self, events: list[Any]) -> tuple[str, bool, float | None, bool] | None:
        """One request: None when accepted, else (reason, retryable, retry_after, alarm). Never lets the key out."""
        from azure.core.exceptions import (
            ClientAuthenticationError,
            HttpResponseError,
            ServiceRequestError,
            ServiceResponseError,
        )

        options: dict[str, Any] = {"retry_total": 0, "connection_timeout": self._timeout,
                                   "read_timeout": self._timeout}
        if self._verify is not None:
            options["connection_verify"] = self._verify
        try:
            self._get_client().send(events, **options)
        except HttpResponseError as exc:  # includes ClientAuthenticationError raised for a 401 answer
            status = exc.status_code
            if status is None and isinstance(exc, ClientAuthenticationError):
                return f"no token for the topic ({type(exc).__name__})", True, None, True
            return self._judge(status or 0, exc)
        except ServiceResponseError as exc:  # sent, but no (complete) answer: the topic may have taken it
            return f"no answer within {self._timeout:g} s ({type(exc).__name__})", True, None, False
        except ServiceRequestError as exc:
            return f"connection failed ({type(exc).__name__})", True, None, False
        except ClientAuthenticationError as exc:  # the credential could not get a token (no status code)
            return f"no token for the topic ({type(exc).__name__})", True, None, True
        return None

    def _judge(self, status: int, exc: Any) -> tuple[str, bool, float | None, bool]:
        detail = self._mask(_error_text(exc))
        reason = f"HTTP {status}" + (f" ({detail})" if detail else "")
        retry_after = _retry_after(getattr(exc, "response", None))
        if status == 429 or status == 408 or status >= 500:
            return reason, True, retry_after, False
        # Refused access or an unknown topic is a configuration fault someone must fix (a health alert), but the
        # events wait for it: a new role assignment can take minutes to apply.
        if status in (401, 403):
            return reason + ": the key or the identity may not publish to this topic (EventGrid Data Sender)", \
                True, None, True
        if status == 404:
            return reason + ": no such topic (check EVENTGRID_TOPIC_ENDPOINT)", True, None, True
        return reason, False, None, False  # 400, 413: the events themselves are refused; a retry cannot help

    def _get_client(self) -> EventGridPublisherClient:
        if self._client is None:
            from azure.eventgrid import EventGridPublisherClient

            self._client = EventGridPublisherClient(self.endpoint, self._credential)
        return self._client

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        backoff = min(self._base_delay * 2.0 ** (attempt - 1), 10.0) * (0.5 + self._rng.random() / 2)
        return max(backoff, retry_after) if retry_after is not None else backoff

    def _mask(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text


def publisher_from_settings(settings: Mapping[str, str], *, client_id: str | None = None,
                            **options: Any) -> EventGridTopicPublisher | UnusableWebhookNotifier | None:
    """The topic publisher the app settings ask for (EVENTGRID_TOPIC_ENDPOINT), or None when none is set.

    A topic setting that exists but cannot be used (not an https endpoint, an unresolved Key Vault reference) gets
    an UnusableWebhookNotifier: its events stay queued and its `delivery-failed` health alert is raised, never a
    silent skip.
    """
    from shared.adapters.notify.deliver import UnusableWebhookNotifier

    name = f"{CHANNEL}:{ENDPOINT_SETTING}"
    endpoint = (settings.get(ENDPOINT_SETTING) or "").strip()
    if not endpoint:
        return None
    try:
        parts = urlsplit(endpoint)
        usable = parts.scheme == "https" and bool(parts.hostname)
    except ValueError:
        usable = False
    if not usable:
        reason = f"setting {ENDPOINT_SETTING} does not hold an https topic endpoint"
        logger.error("%s; its events stay queued", reason)
        return UnusableWebhookNotifier(CHANNEL, name=name, reason=reason)
    key = (settings.get(KEY_SETTING) or "").strip()
    if key.startswith("@Microsoft.KeyVault"):
        reason = f"setting {KEY_SETTING} is an unresolved Key Vault reference (check the app's identity and the secret)"
        logger.error("%s; its events stay queued", reason)
        return UnusableWebhookNotifier(CHANNEL, name=name, reason=reason)
    credential: AzureKeyCredential | TokenCredential
    if key:
        from azure.core.credentials import AzureKeyCredential

        if settings.get("WEBSITE_SITE_NAME"):
            logger.warning("%s is set in Azure; the deployed topic refuses keys (local auth disabled): remove it "
                           "and grant the app's identity 'EventGrid Data Sender'", KEY_SETTING)
        credential = AzureKeyCredential(key)
    else:
        from shared.adapters.arm import default_credential

        credential = default_credential(client_id)
    return EventGridTopicPublisher(endpoint, credential, source=event_source(settings),
                                   secrets=[key] if key else [], **options)


def event_source(settings: Mapping[str, str]) -> str:
    """CloudEvents `source`: EVENTGRID_EVENT_SOURCE, else the function app's resource id from the App Service
    variables (WEBSITE_OWNER_NAME is `<subscription id>+<webspace>`), else a fixed local URN."""
    explicit = (settings.get(SOURCE_SETTING) or "").strip()
    if explicit:
        return explicit
    owner = (settings.get("WEBSITE_OWNER_NAME") or "").split("+", 1)[0].strip()
    group = (settings.get("WEBSITE_RESOURCE_GROUP") or "").strip()
    site = (settings.get("WEBSITE_SITE_NAME") or "").strip()
    if owner and group and site:
        return f"/subscriptions/{owner}/resourceGroups/{group}/providers/Microsoft.Web/sites/{site}"
    return LOCAL_SOURCE


# ---- building one event ---------------------------------------------------------------------------------------------
def _pair_event(alert: Mapping[str, Any], pair: Mapping[str, Any], direction: str, event_type: str,
                time_text: str | None, source: str) -> JsonDict:
    vnets = [str(v) for v in pair.get("vnets") or []]
    ordered = sorted(vnets, key=str.lower)  # the diff already orders them; kept stable whatever the input
    data: JsonDict = {
        "schema": DATA_SCHEMA,
        "direction": direction,
        "pair": {k: pair.get(k) for k in ("vnets", "circuits", "gateways", "warnings", "endpoints") if k in pair},
        "status": pair.get("status"),
        "severity": pair.get("severity"),
        **({"policy": pair["policy"]} if pair.get("policy") else {}),
        "cause": list(pair.get("cause") or []),
        "caller": alert.get("caller") or pair.get("firstCaller"),
        "correlationId": alert.get("correlationId"),
        "alertId": alert.get("id"),
        "runId": alert.get("runId"),
        "trigger": alert.get("trigger"),
    }
    if direction == "closed":
        data["explain"] = list(pair.get("explanation") or pair.get("missing") or [])
    subject = "|".join(ordered)
    return _event(event_id(str(alert.get("id") or ""), direction, ordered), event_type, subject, time_text, source,
                  data)


def _event(ident: str, event_type: str, subject: str, time_text: str | None, source: str, data: JsonDict
           ) -> JsonDict:
    event: JsonDict = {"specversion": "1.0", "id": ident, "source": source, "type": event_type,
                       "subject": subject, "datacontenttype": "application/json", "data": data}
    if time_text:
        event["time"] = time_text
    return event


def _fit(event: JsonDict) -> JsonDict:
    """An event within the 1 MB limit: first without endpoint details, then with lists cut and `truncated` set."""
    if event_size(event) <= MAX_EVENT_BYTES:
        return event
    data = dict(event["data"])
    pair = dict(data.get("pair") or {})
    pair.pop("endpoints", None)
    data["pair"] = pair
    data["truncated"] = True
    trimmed = {**event, "data": data}
    for keep in (100, 10, 1, 0):
        if event_size(trimmed) <= MAX_EVENT_BYTES:
            return trimmed
        for key in ("cause", "explain"):
            if isinstance(data.get(key), list):
                data[key] = data[key][:keep]
        pair["warnings"] = list(pair.get("warnings") or [])[:keep]
        for key in ("detail", "title"):
            if isinstance(data.get(key), str):
                data[key] = data[key][: 1000 * keep]
    return trimmed


def _event_time(value: Any) -> str | None:
    parsed = _parse_time(value)
    return parsed.isoformat().replace("+00:00", "Z") if parsed else None


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _error_text(exc: Any) -> str:
    """`code: message` of Event Grid's error body, else the SDK's reason (never the request or its headers)."""
    error = getattr(exc, "error", None)
    code, message = getattr(error, "code", None), getattr(error, "message", None)
    if code or message:
        return f"{code or ''}: {message or ''}".strip(": ")[:300]
    response = getattr(exc, "response", None)
    try:
        body = json.loads(response.text()) if response is not None else {}
        err = body.get("error", {}) if isinstance(body, dict) else {}
        if isinstance(err, dict) and (err.get("code") or err.get("message")):
            return f"{err.get('code', '')}: {err.get('message', '')}".strip(": ")[:300]
    except (ValueError, AttributeError, TypeError):
        pass
    return str(getattr(exc, "reason", "") or "")[:200]


def _retry_after(response: Any) -> float | None:
    headers = getattr(response, "headers", None) or {}
    value = str(headers.get("Retry-After") or "").strip()
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _delivery_error(message: str, *, retryable: bool, retry_after: float | None = None,
                    alarm: bool = False) -> DeliveryError:
    """A DeliveryError with the Retry-After and alarm hints (the port takes them since issue 10 landed)."""
    return DeliveryError(message, retryable=retryable, retry_after=retry_after, alarm=alarm)


__all__ = ["CHANNEL", "HEALTH", "PAIR_CLOSED", "PAIR_OPENED", "EventGridTopicPublisher", "batch_events",
           "cloud_events", "event_id", "event_source", "publisher_from_settings"]
