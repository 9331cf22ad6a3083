"""Event Grid event -> a Trigger (a watched change to re-read) or a Skip (not ours).

Malformed input raises MalformedEventError; the function layer logs it and returns (no endless retries).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

UPN_CLAIM = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"
OBJECT_ID_CLAIMS = ("http://schemas.microsoft.com/identity/claims/objectidentifier", "oid")
_WATCHED_FILE = "watched_operations.json"


class MalformedEventError(ValueError):
    """The event is not a well-formed Event Grid resource event; retrying it would not help."""


@dataclass(frozen=True, slots=True)
class WatchedOperations:
    """The event types and ARM operations that can open or close a transit path, lower-cased for matching."""

    event_types: frozenset[str]
    operations: frozenset[str]

    def watches_type(self, event_type: str) -> bool:
        return event_type.lower() in self.event_types

    def watches_operation(self, operation: str) -> bool:
        return operation.lower() in self.operations


@dataclass(frozen=True, slots=True)
class Trigger:
    """A relevant event: which resource changed, how, by whom. A hint to re-read, never data."""

    event_id: str
    event_type: str
    operation: str
    resource_id: str
    subscription_id: str
    caller: str
    caller_object_id: str | None
    correlation_id: str | None
    event_time: str | None
    status: str | None


@dataclass(frozen=True, slots=True)
class Skip:
    """An event that is well formed but not one we watch."""

    reason: str
    event_id: str | None = None


@lru_cache(maxsize=1)
def load_watched_operations() -> WatchedOperations:
    """The watched event types and operations from shared/adapters/watched_operations.json (read once).

    Each event type must be one of azure.eventgrid's SystemEventNames (a misspelt type in the shared file would
    otherwise make every event "not watched", and the infra filter would silently drop them too).
    """
    text = resources.files(__package__ or "shared.adapters").joinpath(_WATCHED_FILE).read_text(encoding="utf-8")
    raw = json.loads(text)
    unknown = [str(t) for t in raw["eventTypes"] if not is_system_event_name(str(t))]
    if unknown:
        raise ValueError(f"{_WATCHED_FILE}: not an Event Grid system event type: {', '.join(unknown)}")
    return WatchedOperations(
        event_types=frozenset(str(t).lower() for t in raw["eventTypes"]),
        operations=frozenset(str(o).lower() for o in raw["operations"]),
    )


def is_system_event_name(event_type: str) -> bool:
    """Whether `event_type` is a system event type azure.eventgrid names (SystemEventNames), case-insensitively."""
    from azure.eventgrid import SystemEventNames

    return event_type.lower() in {str(name.value).lower() for name in SystemEventNames}


@dataclass(frozen=True, slots=True)
class _Envelope:
    event_id: Any
    event_type: Any
    subject: Any
    event_time: str | None
    data: Any


def parse_event(event: object, *, watched: WatchedOperations | None = None) -> Trigger | Skip:
    """Decide what an event means for us.

    `event` is an `azure.functions.EventGridEvent` or `CloudEvent`, or one raw event as a dict (Event Grid
    schema or CloudEvents 1.0 schema), or its JSON text. Raises MalformedEventError for anything else.
    """
    watched = watched or load_watched_operations()
    env = _envelope(event)
    event_id = _required_str(env.event_id, "id", None)
    event_type = _required_str(env.event_type, "eventType (CloudEvents: type)", event_id)
    if not watched.watches_type(event_type):
        return Skip(f"event type {event_type!r} is not watched", event_id)

    data = env.data
    if data is None:
        raise MalformedEventError(_where(event_id) + "has no 'data' object; it is not a resource event")
    if not isinstance(data, Mapping):
        raise MalformedEventError(_where(event_id) + f"'data' must be a JSON object, got {_json_type(data)}")
    operation = _required_str(data.get("operationName"), "data.operationName", event_id)
    if not watched.watches_operation(operation):
        return Skip(f"operation {operation!r} is not watched", event_id)

    resource_id = _optional_str(data.get("resourceUri"), "data.resourceUri", event_id) or _optional_str(
        env.subject, "subject", event_id
    )
    if not resource_id:
        raise MalformedEventError(_where(event_id) + "names no resource: neither data.resourceUri nor subject is set")
    subscription_id = _optional_str(data.get("subscriptionId"), "data.subscriptionId", event_id)
    subscription_id = subscription_id or _subscription_of(resource_id)
    if not subscription_id:
        raise MalformedEventError(
            _where(event_id)
            + f"resource id {resource_id!r} does not start with /subscriptions/<id> and data.subscriptionId "
            "is not set"
        )

    claims = data.get("claims")
    if claims is not None and not isinstance(claims, Mapping):
        raise MalformedEventError(_where(event_id) + f"'data.claims' must be a JSON object, got {_json_type(claims)}")
    claims = claims or {}
    return Trigger(
        event_id=event_id,
        event_type=event_type,
        operation=operation,
        resource_id=resource_id,
        subscription_id=subscription_id,
        caller=clean_text(_caller(claims)) or "unknown",
        caller_object_id=clean_text(_first_claim(claims, OBJECT_ID_CLAIMS)),
        correlation_id=_optional_str(data.get("correlationId"), "data.correlationId", event_id),
        event_time=clean_text(env.event_time, 64),
        status=_optional_str(data.get("status"), "data.status", event_id),
    )


# The envelope is read here, not with azure.eventgrid's models: the SDK has names only (SystemEventNames, used
# above), no typed resource-event data, and EventGridEvent.from_dict accepts an event without eventType while
# CloudEvent.from_dict fails on a bad time with an unrelated int() error, either of which would replace our
# one-line errors that name the field.
def _envelope(event: object) -> _Envelope:
    if isinstance(event, bytes | bytearray):
        try:
            event = event.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedEventError(f"event is not UTF-8 text: {exc.reason}") from None
    if isinstance(event, str):
        try:
            event = json.loads(event)
        except json.JSONDecodeError as exc:
            raise MalformedEventError(f"event is not JSON: {exc.msg} at line {exc.lineno}") from None
    if isinstance(event, Mapping):
        if "specversion" in event:
            return _Envelope(
                event.get("id"),
                event.get("type"),
                event.get("subject"),
                _time_text(event.get("time")),
                event.get("data"),
            )
        return _Envelope(
            event.get("id"),
            event.get("eventType"),
            event.get("subject"),
            _time_text(event.get("eventTime")),
            event.get("data"),
        )
    get_json = getattr(event, "get_json", None)
    if callable(get_json):
        # azure.functions.EventGridEvent / CloudEvent, as decoded by the Functions host.
        if hasattr(event, "event_type"):
            return _Envelope(
                getattr(event, "id", None),
                event.event_type,
                getattr(event, "subject", None),
                _time_text(getattr(event, "event_time", None)),
                get_json(),
            )
        if hasattr(event, "specversion"):
            return _Envelope(
                getattr(event, "id", None),
                getattr(event, "type", None),
                getattr(event, "subject", None),
                _time_text(getattr(event, "time", None)),
                get_json(),
            )
    if isinstance(event, list):
        raise MalformedEventError(
            f"got a JSON array of {len(event)} events; pass one event at a time (Event Grid delivers arrays)"
        )
    raise MalformedEventError(f"not an Event Grid event: got {_json_type(event)}")


def _time_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        # The host parses eventTime into a datetime (microseconds); give it back in Event Grid's Z form.
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, str):
        return value
    raise MalformedEventError(f"eventTime must be a string, got {_json_type(value)}")


def _caller(claims: Mapping[str, Any]) -> str:
    """Who made the change, by what identifies them: the UPN, else the object id; a display name (the `name`
    claim, which its owner may set to anything) only labelled as such."""
    upn = claims.get(UPN_CLAIM)
    if isinstance(upn, str) and upn.strip():
        return upn
    name = claims.get("name")
    shown = f'display name "{name.strip()}"' if isinstance(name, str) and name.strip() else ""
    appid = claims.get("appid")
    oid = _first_claim(claims, OBJECT_ID_CLAIMS)
    if oid:
        label = shown or (f"app {appid}" if isinstance(appid, str) and appid.strip() else "")
        return f"object id {oid}" + (f" ({label})" if label else "")
    if shown:
        return shown
    if isinstance(appid, str) and appid.strip():
        return f"app:{appid}"
    return "unknown"


def _first_claim(claims: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = claims.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _subscription_of(resource_id: str) -> str | None:
    parts = resource_id.strip("/").split("/")
    if len(parts) >= 2 and parts[0].lower() == "subscriptions" and parts[1]:
        return parts[1]
    return None


def _required_str(value: object, field: str, event_id: str | None) -> str:
    text = _optional_str(value, field, event_id)
    if not text:
        raise MalformedEventError(_where(event_id) + f"has no {field}")
    return text


# Ids and names from an event are kept in state (processed event ids), hashed and printed: each is bounded (an ARM
# resource id is a few hundred characters at most) and must be valid Unicode (a lone surrogate cannot be encoded).
MAX_FIELD_LENGTH = 1024


def _optional_str(value: object, field: str, event_id: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedEventError(_where(event_id) + f"{field} must be a string, got {_json_type(value)}")
    if len(value) > MAX_FIELD_LENGTH:
        raise MalformedEventError(_where(event_id) + f"{field} is longer than {MAX_FIELD_LENGTH} characters")
    if not _encodable(value):
        raise MalformedEventError(_where(event_id) + f"{field} is not valid Unicode (a lone surrogate)")
    return value.strip() or None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def clean_text(value: object, limit: int = MAX_FIELD_LENGTH) -> str | None:
    """Display text from outside (a caller's claim, a time) made safe to hash, store and print: a string, lone
    surrogates replaced, at most `limit` characters; None for anything else."""
    if not isinstance(value, str):
        return None
    text = value if len(value) <= limit else value[: limit - 1] + "…"
    return text.encode("utf-8", "replace").decode("utf-8")


def _where(event_id: str | None) -> str:
    return f"event {event_id!r} " if event_id else "event "


def _json_type(value: object) -> str:
    """The JSON type name of a value, never the value itself (it may hold a token)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__
