"""_EarlyRead: an event's ARM read started while the store reads the working copy (the rules that keep it safe)."""

from __future__ import annotations

import threading
from typing import Any

from shared.app.auditor import RunTrigger, _EarlyRead
from shared.core.focus import FocusedRead

TRIGGER = RunTrigger(kind="event", event_id="e1", operation="Microsoft.Network/virtualNetworkGateways/write",
                     resource_id="/subscriptions/s/resourceGroups/r/providers/Microsoft.Network/connections/c")


class Reader:
    """Asks `known` about one reference, as the ARM reader does once the event's resource is read."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bool]] = []
        self.lock = threading.Lock()

    def read_focused(self, resource_id: str, *, known: Any) -> FocusedRead:
        answer = known("/subscriptions/s/x")
        with self.lock:
            self.calls.append((resource_id, answer))
        return FocusedRead(replace=(resource_id,), resources=(), warnings=(), calls=1)


def test_the_read_taken_for_the_head_it_started_on_learns_the_copy_ids() -> None:
    reader = Reader()
    early = _EarlyRead(reader.read_focused, TRIGGER)
    early.start("etag-1", {"processedEventIds": ["other"]})
    early.start("etag-1", {})  # a second call (the store read the head again): still one read
    future = early.take("etag-1", frozenset({"/subscriptions/s/x"}))
    assert future is not None
    read = future.result(timeout=5)
    assert read is not None and read.replace == (TRIGGER.resource_id,)
    assert reader.calls == [(TRIGGER.resource_id, True)]


def test_a_read_started_on_another_head_is_not_taken_and_stops_waiting() -> None:
    reader = Reader()
    early = _EarlyRead(reader.read_focused, TRIGGER)
    early.start("etag-1", {})
    assert early.take("etag-2", frozenset({"/subscriptions/s/x"})) is None
    early._future.result(timeout=5)  # type: ignore[union-attr]  # it ended without the ids: nothing more read
    assert reader.calls == [(TRIGGER.resource_id, True)]


def test_a_head_that_already_decided_the_event_starts_no_read() -> None:
    reader = Reader()
    early = _EarlyRead(reader.read_focused, TRIGGER)
    early.start("etag-1", {"processedEventIds": ["e1"]})
    assert early.take("etag-1", frozenset()) is None and reader.calls == []


def test_an_abandoned_read_never_blocks() -> None:
    reader = Reader()
    early = _EarlyRead(reader.read_focused, TRIGGER)
    early.start("etag-1", {})
    early.abandon()
    early._future.result(timeout=5)  # type: ignore[union-attr]
    assert reader.calls == [(TRIGGER.resource_id, True)]
