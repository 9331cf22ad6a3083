"""Hand-written fakes at the auditor's ports (readers, notifiers) that record what they were asked."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from shared.app.ports import DeliveryError, IncompleteReadError, JsonDict


class FakeReader:
    """A TopologyReader holding the 'live' resources; can be told to fail."""

    def __init__(self, resources: Sequence[JsonDict]) -> None:
        self.resources = list(resources)
        self.failure: str | None = None
        self.calls: list[str | None] = []

    def read(self, *, focus_resource_id: str | None = None) -> list[JsonDict]:
        self.calls.append(focus_resource_id)
        if self.failure:
            raise IncompleteReadError(self.failure)
        return list(self.resources)


class RecordingNotifier:
    """A Notifier that records accepted alerts; `down` makes it fail like an unreachable service."""

    channel = "json"

    def __init__(self, name: str = "json:RECORDER") -> None:
        self.name = name
        self.accepted: list[JsonDict] = []
        self.attempts = 0
        self.down = False
        self.permanent_error = False
        self._lock = threading.Lock()

    def deliver(self, alert: JsonDict, *, alert_id: str) -> None:
        with self._lock:
            self.attempts += 1
            if self.permanent_error:
                raise DeliveryError(f"{self.name}: 400 invalid_payload", retryable=False)
            if self.down:
                raise DeliveryError(f"{self.name}: connection refused", retryable=True)
            self.accepted.append(alert)


def pair_names(pairs: Sequence[JsonDict]) -> list[tuple[str, str]]:
    return sorted(tuple(v.rsplit("/", 1)[-1] for v in p["vnets"]) for p in pairs)  # type: ignore[misc]


def event_trigger(event_id: str, resource_id: str, caller: str = "alice@contoso.example") -> Any:
    from shared.app.auditor import RunTrigger

    return RunTrigger(kind="event", event_id=event_id, operation="Microsoft.Network/virtualNetworkGateways/write",
                      resource_id=resource_id, caller=caller, correlation_id=f"corr-{event_id}",
                      event_time="2026-11-20T09:00:00.0000000Z")
