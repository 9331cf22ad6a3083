"""The auditor's promises, run against the real local-folder store and fakes at the reader/notifier ports."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.adapters.store import LocalAuditLog, LocalRecheckQueue, LocalStateStore, verify_audit
from shared.app.auditor import COMMITTED, DUPLICATE, INCOMPLETE, NO_CHANGE, Auditor, RunTrigger, committed_pair_ids
from tests.auditor_support import FakeReader, RecordingNotifier, event_trigger, pair_names
from tests.builders import connection, lab, rid, two_hubs, with_state

GW1 = rid("virtualNetworkGateways", "ergw-01")


def make(tmp_path: Path, resources: list[dict], **kwargs: object) -> tuple[Auditor, FakeReader, RecordingNotifier]:
    reader, notifier = FakeReader(resources), RecordingNotifier()
    auditor = Auditor(reader=reader, state=LocalStateStore(tmp_path), audit=LocalAuditLog(tmp_path),
                      notifiers=[notifier], recheck=LocalRecheckQueue(tmp_path), **kwargs)  # type: ignore[arg-type]
    return auditor, reader, notifier


def committed_pairs(state: object) -> list[dict]:
    return [{"vnets": list(ids)} for ids in committed_pair_ids(state)]  # type: ignore[arg-type]


def records(tmp_path: Path) -> list[dict]:
    return list(LocalAuditLog(tmp_path).records())


def test_first_run_is_a_baseline_that_announces_nothing(tmp_path: Path) -> None:
    auditor, _, notifier = make(tmp_path, lab((1, 2)))
    result = auditor.run(RunTrigger(kind="reconcile"))
    assert result.outcome == COMMITTED and not result.opened
    assert notifier.accepted == []
    state, _ = LocalStateStore(tmp_path).load()
    assert state is not None and pair_names(committed_pairs(state)) == [("hub-01", "hub-02")]
    assert records(tmp_path)[0]["baseline"] is True


def test_enabling_both_gateways_announces_one_pair_with_cause_and_caller(tmp_path: Path) -> None:
    auditor, reader, notifier = make(tmp_path, lab((2,)))
    auditor.run(RunTrigger(kind="reconcile"))
    reader.resources = lab((1, 2))
    result = auditor.run(event_trigger("e1", GW1, caller="bob@contoso.example"))
    assert result.outcome == COMMITTED
    assert pair_names(result.opened) == [("hub-01", "hub-02")]
    [alert] = notifier.accepted
    assert alert["caller"] == "bob@contoso.example" and alert["correlationId"] == "corr-e1"
    assert [c["text"] for c in alert["opened"][0]["cause"]] == ["ergw-01 allowRemoteVnetTraffic false -> true"]
    assert reader.calls[-1] == GW1  # the event's own resource is re-read


def test_duplicate_event_is_a_no_op(tmp_path: Path) -> None:
    auditor, reader, notifier = make(tmp_path, lab((2,)))
    auditor.run(RunTrigger(kind="reconcile"))
    reader.resources = lab((1, 2))
    assert auditor.run(event_trigger("e1", GW1)).outcome == COMMITTED
    assert auditor.run(event_trigger("e1", GW1)).outcome == DUPLICATE
    assert len(notifier.accepted) == 1
    assert [r["outcome"] for r in records(tmp_path) if r["outcome"] != "delivery"] == [
        COMMITTED, COMMITTED, DUPLICATE]


def test_events_out_of_order_announce_each_real_change_once(tmp_path: Path) -> None:
    auditor, reader, notifier = make(tmp_path, lab(()))
    auditor.run(RunTrigger(kind="reconcile"))
    reader.resources = lab((1, 2))
    # The later event arrives first: the live read already shows both flags, so one opening, once.
    auditor.run(event_trigger("e-gw1", GW1))
    auditor.run(event_trigger("e-gw2", rid("virtualNetworkGateways", "ergw-02")))
    assert [pair_names(a["opened"]) for a in notifier.accepted] == [[("hub-01", "hub-02")]]


def test_failed_read_after_a_commit_never_closes_anything(tmp_path: Path) -> None:
    auditor, reader, notifier = make(tmp_path, lab((1, 2)))
    auditor.run(RunTrigger(kind="reconcile"))
    store = LocalStateStore(tmp_path)
    _, etag_before = store.load()
    reader.failure = "subscription 0000...0001 answered 403 AuthorizationFailed"
    result = auditor.run(event_trigger("e1", GW1))
    assert result.outcome == INCOMPLETE and result.closed == []
    assert notifier.accepted == []
    assert store.load()[1] == etag_before  # state untouched
    last = records(tmp_path)[-1]
    assert last["outcome"] == INCOMPLETE and "403" in last["detail"]
    # The event was not marked processed: its redelivery is decided once the read works again.
    reader.failure = None
    assert auditor.run(event_trigger("e1", GW1)).outcome == NO_CHANGE


def test_chat_outage_keeps_the_alert_until_a_later_run_delivers_it_once(tmp_path: Path) -> None:
    auditor, reader, notifier = make(tmp_path, lab((2,)))
    auditor.run(RunTrigger(kind="reconcile"))
    notifier.down = True
    reader.resources = lab((1, 2))
    result = auditor.run(event_trigger("e1", GW1))
    assert result.undelivered and notifier.accepted == []
    state, _ = LocalStateStore(tmp_path).load()
    assert state is not None and [i["kind"] for i in state.outbox] == ["alert"]
    # Another process, after the outage: a reconcile that finds nothing new still delivers what is left.
    notifier.down = False
    second, *_ = make(tmp_path, lab((1, 2)))
    second.notifiers = [notifier]
    second.run(RunTrigger(kind="reconcile"))
    second.run(RunTrigger(kind="reconcile"))
    assert len(notifier.accepted) == 1 and pair_names(notifier.accepted[0]["opened"]) == [("hub-01", "hub-02")]
    state, _ = LocalStateStore(tmp_path).load()
    assert state is not None and state.outbox == []


def test_a_crash_between_commit_and_delivery_loses_nothing(tmp_path: Path) -> None:
    auditor, reader, notifier = make(tmp_path, lab((2,)), lease_seconds=0)

    class Crash(Exception):
        pass

    def crash(*_: object, **__: object) -> None:
        raise Crash()

    auditor.run(RunTrigger(kind="reconcile"))
    reader.resources = lab((1, 2))
    auditor._process_outbox = crash  # type: ignore[method-assign]  # the process dies right after the commit
    with pytest.raises(Crash):
        auditor.run(event_trigger("e1", GW1))
    survivor, *_ = make(tmp_path, lab((1, 2)))
    survivor.notifiers = [notifier]
    survivor.run(RunTrigger(kind="reconcile"))
    assert len(notifier.accepted) == 1
    outcomes = [r["outcome"] for r in records(tmp_path)]
    assert outcomes.count(COMMITTED) == 2  # the crashed run's audit record was written by the survivor
    assert verify_audit(LocalAuditLog(tmp_path).lines()).ok


def test_a_crash_after_committing_a_record_of_many_parts_loses_none_of_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import functools

    import shared.app.auditor as auditor_module

    # Parts of 40 kB: the 1,089 pairs are recorded in many parts, stashed side by side before the commit.
    monkeypatch.setattr(auditor_module, "encode_parts", functools.partial(auditor_module.encode_parts,
                                                                          budget=40_000))
    auditor, reader, notifier = make(tmp_path, two_hubs(False), lease_seconds=0)
    auditor.run(RunTrigger(kind="reconcile"))
    reader.resources = two_hubs(True)

    def crash(*_: object, **__: object) -> None:
        raise RuntimeError("the process dies right after the commit")

    auditor._process_outbox = crash  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        auditor.run(event_trigger("big", rid("virtualNetworkGateways", "gw-1")))
    stashes = sorted((tmp_path / "pending-audit").glob("*.json"))
    assert len(stashes) > 5 and all(p.read_bytes()[:2] == b"\x1f\x8b" for p in stashes)
    survivor, *_ = make(tmp_path, two_hubs(True))
    survivor.run(RunTrigger(kind="reconcile"))
    parts = [r for r in records(tmp_path) if r["outcome"] == COMMITTED and not r.get("baseline")]
    assert len(parts) == len(stashes) and [r["part"] for r in parts] == list(range(1, len(parts) + 1))
    assert sum(len(r["opened"]) for r in parts) == 33 * 33  # every pair, from the stashes
    assert verify_audit(LocalAuditLog(tmp_path).lines()).ok
    assert not list((tmp_path / "pending-audit").glob("*.json"))  # appended, then dropped


def test_a_part_that_cannot_be_stashed_commits_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import functools

    import shared.app.auditor as auditor_module

    monkeypatch.setattr(auditor_module, "encode_parts", functools.partial(auditor_module.encode_parts,
                                                                          budget=40_000))
    auditor, reader, notifier = make(tmp_path, two_hubs(False))
    auditor.run(RunTrigger(kind="reconcile"))
    before = LocalStateStore(tmp_path).load()[0]
    reader.resources = two_hubs(True)
    real = LocalStateStore.stash

    def flaky(self: LocalStateStore, name: str, text: str | bytes) -> None:
        if name.endswith("-3"):
            raise OSError("disk full")
        real(self, name, text)

    monkeypatch.setattr(LocalStateStore, "stash", flaky)
    with pytest.raises(OSError, match="disk full"):
        auditor.run(event_trigger("big", rid("virtualNetworkGateways", "gw-1")))
    after = LocalStateStore(tmp_path).load()[0]
    assert before is not None and after is not None and after.sequence == before.sequence  # nothing committed
    assert notifier.accepted == []
    monkeypatch.setattr(LocalStateStore, "stash", real)  # the disk has room again: the event's retry announces
    result = auditor.run(event_trigger("big", rid("virtualNetworkGateways", "gw-1")))
    assert len(result.opened) == 33 * 33 and len(notifier.accepted) == 1


def test_permanent_delivery_error_is_dead_lettered_not_retried_forever(tmp_path: Path) -> None:
    auditor, reader, notifier = make(tmp_path, lab((2,)))
    auditor.run(RunTrigger(kind="reconcile"))
    notifier.permanent_error = True
    reader.resources = lab((1, 2))
    auditor.run(event_trigger("e1", GW1))
    auditor.run(RunTrigger(kind="reconcile"))
    assert notifier.attempts == 1
    state, _ = LocalStateStore(tmp_path).load()
    assert state is not None and state.outbox == []  # it left the outbox, so it blocks nothing
    [dead] = [r for r in records(tmp_path) if r["outcome"] == "dead letter"]
    assert dead["item"]["notifier"] == notifier.name and "invalid_payload" in dead["item"]["error"]
    assert dead["counts"] == {"opened": 1, "closed": 0} and dead["alertId"]
    # and the refused channel raised the health alarm (audited; the only channel is the broken one)
    assert [r["condition"] for r in records(tmp_path) if r["outcome"] == "health raised"] == [
        f"delivery-failed:{notifier.name}"]


def test_settling_gateway_is_pending_then_confirmed_with_the_original_caller(tmp_path: Path) -> None:
    auditor, reader, notifier = make(tmp_path, lab((1, 2)))
    auditor.run(RunTrigger(kind="reconcile"))
    reader.resources = with_state(lab((1, 2, 3)), "ergw-03", "Updating")
    result = auditor.run(event_trigger("e3", rid("virtualNetworkGateways", "ergw-03"), caller="carol@contoso.example"))
    assert notifier.accepted == [] and pair_names(result.pending) == [("hub-01", "hub-03"), ("hub-02", "hub-03")]
    queue = LocalRecheckQueue(tmp_path)
    assert queue.take_due() == []  # scheduled for later, not due yet
    [message] = queue.take_due(now=datetime.now(UTC) + timedelta(hours=1))
    assert message["reason"] == "settling"
    reader.resources = lab((1, 2, 3))
    auditor.run(RunTrigger(kind="recheck"))
    [alert] = notifier.accepted
    assert pair_names(alert["opened"]) == [("hub-01", "hub-03"), ("hub-02", "hub-03")]
    assert alert["caller"] == "carol@contoso.example"
    assert [c["text"] for c in alert["opened"][0]["cause"]] == ["ergw-03 allowRemoteVnetTraffic false -> true"]


def test_settling_removal_keeps_the_pair_until_it_is_gone(tmp_path: Path) -> None:
    auditor, reader, notifier = make(tmp_path, lab((1, 2)))
    auditor.run(RunTrigger(kind="reconcile"))
    reader.resources = with_state(lab((1, 2)), "conn-02", "Deleting")
    auditor.run(event_trigger("e1", rid("connections", "conn-02")))
    assert notifier.accepted == []
    state, _ = LocalStateStore(tmp_path).load()
    assert state is not None and pair_names(committed_pairs(state)) == [("hub-01", "hub-02")]
    reader.resources = [r for r in lab((1, 2)) if r["name"] != "conn-02"]
    auditor.run(RunTrigger(kind="reconcile"))
    [alert] = notifier.accepted
    assert pair_names(alert["closed"]) == [("hub-01", "hub-02")]
    assert "connection conn-02 removed" in [c["text"] for c in alert["closed"][0]["cause"]]
    # The alert also says what now keeps the pair closed (the `explain` text), and the renderers show it.
    assert "ergw-02 has no ExpressRoute connection to a circuit" in alert["closed"][0]["explanation"]
    from shared.adapters.notify import render_text

    assert "now missing: ergw-02 has no ExpressRoute connection to a circuit" in render_text(alert)


@pytest.mark.parametrize("workers", [8])
def test_burst_of_50_concurrent_events_gives_one_alert_and_an_intact_chain(tmp_path: Path, workers: int) -> None:
    auditor, reader, notifier = make(tmp_path, lab(()))
    auditor.run(RunTrigger(kind="reconcile"))
    reader.resources = lab((1, 2, 3))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda i: auditor.run(event_trigger(f"burst-{i % 40}", GW1)), range(50)))
    assert len(notifier.accepted) == 1
    assert pair_names(notifier.accepted[0]["opened"]) == [("hub-01", "hub-02"), ("hub-01", "hub-03"),
                                                          ("hub-02", "hub-03")]
    assert sum(r.outcome == COMMITTED and bool(r.opened) for r in results) == 1
    assert sum(r.outcome == DUPLICATE for r in results) == 10  # 40 distinct ids, 10 redelivered
    state, _ = LocalStateStore(tmp_path).load()
    assert state is not None and len(committed_pairs(state)) == 3 and state.outbox == []
    assert len({i for i in state.processed_event_ids if i.startswith("burst-")}) == 40
    assert verify_audit(LocalAuditLog(tmp_path).lines()).ok


def test_unchanged_reconcile_does_not_rewrite_state(tmp_path: Path) -> None:
    auditor, _, _ = make(tmp_path, lab((1, 2)) + [connection("conn-x", lab()[2], lab()[0]["id"])])
    auditor.run(RunTrigger(kind="reconcile"))
    _, etag = LocalStateStore(tmp_path).load()
    assert auditor.run(RunTrigger(kind="reconcile")).outcome == NO_CHANGE
    assert LocalStateStore(tmp_path).load()[1] == etag


def test_a_settling_removal_that_is_reverted_announces_nothing(tmp_path: Path) -> None:
    auditor, reader, notifier = make(tmp_path, lab((1, 2)))
    auditor.run(RunTrigger(kind="reconcile"))
    deleting = with_state(lab((1, 2)), "conn-02", "Deleting")
    reader.resources = [r for r in deleting if r["name"] != "ergw-02"] + [
        {**r, "properties": {**r["properties"], "allowRemoteVnetTraffic": False}}
        for r in deleting if r["name"] == "ergw-02"]
    auditor.run(event_trigger("e1", rid("connections", "conn-02")))
    state, _ = LocalStateStore(tmp_path).load()
    assert state is not None and [d["delta"] for d in state.pairs] == ["+"]  # still committed, removal settling
    reader.resources = lab((1, 2))  # the delete failed and the flag was turned back on
    auditor.run(RunTrigger(kind="reconcile"))
    assert notifier.accepted == []
    state, _ = LocalStateStore(tmp_path).load()
    assert state is not None and state.pairs == [] and pair_names(committed_pairs(state)) == [("hub-01", "hub-02")]


def test_a_huge_change_is_summarised_in_the_alert_and_recorded_in_full(tmp_path: Path) -> None:
    from shared.adapters.notify import render, render_text
    from shared.app.auditor import MAX_ALERT_PAIRS

    auditor, reader, notifier = make(tmp_path, two_hubs(False))
    auditor.run(RunTrigger(kind="reconcile"))
    reader.resources = two_hubs(True)
    result = auditor.run(event_trigger("big", rid("virtualNetworkGateways", "gw-1")))
    assert len(result.opened) == 33 * 33 == 1089
    [alert] = notifier.accepted
    assert len(alert["opened"]) == MAX_ALERT_PAIRS and alert["omitted"] == {"opened": 1089 - MAX_ALERT_PAIRS,
                                                                             "closed": 0}
    assert "1089 opened" in render_text(alert) and f"{1089 - MAX_ALERT_PAIRS} more pairs not included" in render_text(
        alert)
    assert len(render("slack", alert)["blocks"]) <= 50
    recorded = [r for r in records(tmp_path) if r["outcome"] == "committed" and not r.get("baseline")]
    assert sum(len(r["opened"]) for r in recorded) == 1089  # the audit log has every pair
    assert all(r["pairDetail"] == "compact" and "endpoints" not in r["opened"][0] for r in recorded)
    assert "endpoints" in alert["opened"][0]  # the alert keeps the details it shows
