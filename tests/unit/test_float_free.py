"""A decision's pair documents are vouched free of floats only when what they are made of holds none; their audit
text is then written unscanned, and is the very text the scan would have let through."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.app.auditor import RunTrigger, decide, default_classifier, encode_parts
from shared.app.ports import CommittedState
from shared.core.diff import Cause, PairChange
from shared.core.focus import by_id, project
from shared.core.model import ResourceId
from shared.core.snapshot import parse_resources
from shared.core.views import ChangeDocs
from tests.builders import two_hubs

NOW = datetime(2026, 11, 26, tzinfo=UTC)
TRIGGER = RunTrigger(kind="event", event_id="e1", operation="write", resource_id="/x", caller="alice@example.com")


def decided(state_pending: list[dict] | None = None, classify: Any = default_classifier) -> Any:
    before, after = by_id(project(two_hubs(False, spokes=3))), by_id(project(two_hubs(True, spokes=3)))
    state = CommittedState(resources=before, sequence=3, pending=state_pending or [])
    return decide(state, after, parse_resources(after), TRIGGER, classify, now=NOW)


def record_of(decision: Any) -> dict:
    return {"runId": "r", "time": NOW.isoformat(), "trigger": TRIGGER.to_json(), "outcome": "committed",
            "opened": decision.opened, "closed": decision.closed, "pending": decision.pending}


def test_a_decision_made_from_the_model_is_float_free_and_written_as_the_scan_would() -> None:
    decision = decided()
    assert len(decision.opened) == 16 and decision.float_free
    unscanned = [p.data() for p in encode_parts(record_of(decision), budget=2_000, floats=False)]
    scanned = [p.data() for p in encode_parts(record_of(decision), budget=2_000)]
    assert len(unscanned) > 3 and unscanned == scanned


def test_a_float_from_the_classifier_or_the_state_is_not_vouched_for() -> None:
    assert not decided(classify=lambda doc, opened: (0.5, None)).float_free
    assert not decided(classify=lambda doc, opened: ("warning", 1.5)).float_free
    kept = {"direction": "opened", "vnets": ["/a", "/b"], "cause": [{"old": 2.5}], "since": NOW.isoformat()}
    assert not decided(state_pending=[kept]).float_free


def test_change_documents_with_a_float_in_a_cause_are_not_vouched_for() -> None:
    topology = parse_resources(two_hubs(True, spokes=3))
    from shared.core.transit import compute_pairs

    pairs = compute_pairs(topology)
    pair = next(iter(pairs.pairs.values()))
    docs = ChangeDocs()
    clean = Cause(ResourceId.parse("/gw"), "gateway", "gw", "modified", "allowRemoteVnetTraffic", False, True)
    docs.doc(PairChange(pair, (clean,), False, topology), pairs.endpoints)
    assert docs.float_free
    odd = Cause(ResourceId.parse("/gw"), "gateway", "gw", "modified", "weight", 1, 1.5)
    docs.doc(PairChange(pair, (odd,), False, topology), pairs.endpoints)
    assert not docs.float_free
