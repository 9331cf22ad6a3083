"""Bad input never escapes an entry point: mutated Event Grid deliveries and queue messages (surrogates, NaN and
Infinity, wrong types, deep nesting, huge strings) are handled or logged and acknowledged; the state and the
audit chain stay valid, and no alert is invented (the topology never changes here)."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.functions import EventGridEvent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared import entrypoints
from shared.adapters.store import LocalAuditLog, LocalStateStore, verify_audit
from shared.app.auditor import Auditor, RunTrigger
from tests.auditor_support import FakeReader, RecordingNotifier
from tests.builders import lab

EVENT = json.loads((Path(__file__).resolve().parents[2] / "examples" / "replay-lab" / "03-enable-gw1"
                    / "event.json").read_text())[0]

nasty_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["\ud800", "a\udfffb", "\x00", "../../etc", "<!channel>", "x" * 200_000, "🚨" * 1000]),
)
nasty = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True), nasty_text),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(nasty_text, inner, max_size=4)),
    max_leaves=12,
)


def deep(levels: int) -> Any:
    node: Any = "x"
    for _ in range(levels):
        node = {"a": [node]}
    return node


FIELDS = ["id", "subject", "eventType", "eventTime", "topic", "data"]
DATA_FIELDS = ["resourceUri", "operationName", "correlationId", "claims", "status", "subscriptionId"]


@st.composite
def mutated_event(draw: st.DrawFn) -> dict[str, Any]:
    event = copy.deepcopy(EVENT)
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.booleans()):
            event[draw(st.sampled_from(FIELDS))] = draw(st.one_of(nasty, st.just(deep(200))))
        elif isinstance(event.get("data"), dict):
            event["data"][draw(st.sampled_from(DATA_FIELDS))] = draw(st.one_of(nasty, st.just(deep(200))))
    return event


def as_host_event(raw: dict[str, Any]) -> EventGridEvent:
    """What the host would hand the function (keyword arguments as the decoder sets them)."""
    return EventGridEvent(id=raw.get("id"), data=raw.get("data"), topic=raw.get("topic"),  # type: ignore[arg-type]
                          subject=raw.get("subject"), event_type=raw.get("eventType"),  # type: ignore[arg-type]
                          event_time=None, data_version=raw.get("dataVersion"))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, RecordingNotifier]]:
    folder = tmp_path_factory.mktemp("fuzz")
    notifier = RecordingNotifier()
    auditor = Auditor(reader=FakeReader(lab((1, 2))), state=LocalStateStore(folder), audit=LocalAuditLog(folder),
                      notifiers=[notifier])
    auditor.run(RunTrigger(kind="reconcile"))  # the baseline: every later run sees the same topology
    entrypoints.use(auditor)
    logging.getLogger("shared").setLevel(logging.CRITICAL)  # thousands of logged skips are expected here
    yield folder, notifier
    logging.getLogger("shared").setLevel(logging.NOTSET)
    entrypoints.reset()


def check(folder: Path, notifier: RecordingNotifier) -> None:
    assert [a for a in notifier.accepted if a.get("opened") or a.get("closed")] == []  # nothing invented
    state, _ = LocalStateStore(folder).load()
    assert state is not None and state.working_copy_ok and state.outbox == []
    assert all(len(i) <= 1024 for i in state.processed_event_ids)  # ids kept in state are bounded
    assert verify_audit(LocalAuditLog(folder).lines()).ok


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                        HealthCheck.too_slow])


@FUZZ
@given(raw=mutated_event())
def test_no_mutated_event_escapes_the_event_entry_point(rig: tuple[Path, RecordingNotifier],
                                                        raw: dict[str, Any]) -> None:
    entrypoints.handle_event(as_host_event(raw))
    check(*rig)


@FUZZ
@given(message=st.one_of(nasty, st.just(deep(500)),
                         st.fixed_dictionaries({"after": st.fixed_dictionaries({"resourceId": nasty})})))
def test_no_mutated_queue_message_escapes_the_recheck_entry_point(rig: tuple[Path, RecordingNotifier],
                                                                  message: Any) -> None:
    entrypoints.handle_recheck(message if isinstance(message, dict) else {"after": message})
    check(*rig)


def test_the_reconcile_entry_point_after_the_storm_keeps_everything_valid(
        rig: tuple[Path, RecordingNotifier]) -> None:
    entrypoints.handle_reconcile()
    check(*rig)


def _with(path: str, value: Any) -> dict[str, Any]:
    event = copy.deepcopy(EVENT)
    target = event
    *parents, leaf = path.split(".")
    for key in parents:
        target = target[key]
    target[leaf] = value
    return event


UPN = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"
ISSUE_CASES = {  # what the issue found escaping (26 uncaught exceptions in 1,505 mutated deliveries)
    "surrogate id": _with("id", "evt-\ud800"),
    "surrogate subject": {**_with("subject", "/subscriptions/\ud800"), "data": {**EVENT["data"], "resourceUri": None}},
    "surrogate claim": _with("data.claims", {UPN: "bob\ud800@contoso.example"}),
    "surrogate correlation id": _with("data.correlationId", "c0rr-\udfff"),
    "10 MB subject": {**_with("subject", "/subscriptions/" + "x" * 10_000_000),
                      "data": {**EVENT["data"], "resourceUri": None}},
    "NaN operation": _with("data.operationName", float("nan")),
    "deep data": _with("data.claims", deep(5000)),
}


@pytest.mark.parametrize("case", sorted(ISSUE_CASES))
def test_the_inputs_the_issue_found_escaping_are_handled(rig: tuple[Path, RecordingNotifier], case: str) -> None:
    raw = ISSUE_CASES[case]
    entrypoints.handle_event(as_host_event({**raw, "id": raw["id"] if case == "surrogate id" else f"case-{case}"}))
    check(*rig)


@pytest.mark.parametrize("resource_id", [float("nan"), float("inf"), "\ud800", "/subscriptions/" + "x" * 10_000_000])
def test_a_recheck_naming_its_resource_oddly_rechecks_everything(rig: tuple[Path, RecordingNotifier],
                                                                 resource_id: Any) -> None:
    entrypoints.handle_recheck({"after": {"resourceId": resource_id}})
    check(*rig)


def test_an_audit_record_that_cannot_be_appended_never_sticks_in_the_outbox(tmp_path: Path) -> None:
    class Picky(LocalAuditLog):
        def append(self, record: Any) -> Any:
            if getattr(record, "record", record).get("outcome") == "committed" and not getattr(
                    record, "record", record).get("baseline"):
                raise ValueError("audit record is larger than 4194304 bytes")
            return super().append(record)

    notifier = RecordingNotifier()
    reader = FakeReader(lab((2,)))
    auditor = Auditor(reader=reader, state=LocalStateStore(tmp_path), audit=Picky(tmp_path), notifiers=[notifier])
    auditor.run(RunTrigger(kind="reconcile"))
    reader.resources = lab((1, 2))
    auditor.run(RunTrigger(kind="reconcile"))
    state, _ = LocalStateStore(tmp_path).load()
    assert state is not None and state.outbox == []
    assert len(notifier.accepted) == 1  # the alert behind it was posted
    [dead] = [r for r in LocalAuditLog(tmp_path).records() if r["outcome"] == "dead letter"]
    assert dead["item"]["kind"] == "audit" and "larger than" in dead["item"]["error"]
    assert verify_audit(LocalAuditLog(tmp_path).lines()).ok
