"""The event path: an event reads its own resource with ARM (through the real SDK clients and the fake ARM over
HTTPS), patches the committed working copy, and never queries Resource Graph; the promises still hold."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from shared.adapters.arm import ResourceGraphTopologyReader
from shared.adapters.store import LocalAuditLog, LocalRecheckQueue, LocalStateStore, verify_audit
from shared.app.auditor import COMMITTED, DUPLICATE, INCOMPLETE, NO_CHANGE, Auditor, RunTrigger, committed_pair_ids
from tests import builders as b
from tests.auditor_support import RecordingNotifier, event_trigger, pair_names
from tests.integration.fake_arm import FakeArmServer, arm_error

GW1 = b.rid("virtualNetworkGateways", "ergw-01")


def make(fake: FakeArmServer, folder: Path) -> tuple[Auditor, ResourceGraphTopologyReader, RecordingNotifier]:
    reader = ResourceGraphTopologyReader(fake.credential, [b.SUB], **fake.client_options())
    notifier = RecordingNotifier()
    auditor = Auditor(reader=reader, state=LocalStateStore(folder), audit=LocalAuditLog(folder),
                      notifiers=[notifier], recheck=LocalRecheckQueue(folder))
    return auditor, reader, notifier


def baseline(fake: FakeArmServer, folder: Path, resources: list[dict[str, Any]]) -> tuple[Auditor, Any, Any]:
    fake.set_resources({b.SUB: resources})
    auditor, reader, notifier = make(fake, folder)
    assert auditor.run(RunTrigger(kind="reconcile")).outcome == COMMITTED
    fake.clear_requests()
    return auditor, reader, notifier


def last_record(folder: Path) -> dict[str, Any]:
    return list(LocalAuditLog(folder).records())[-1]


def test_an_event_that_opens_a_pair_reads_its_resource_with_arm_and_no_resource_graph(
        fake_arm: FakeArmServer, tmp_path: Path) -> None:
    auditor, reader, notifier = baseline(fake_arm, tmp_path, b.lab((2,)))
    fake_arm.set_resources({b.SUB: b.lab((1, 2))})
    fake_arm.clear_requests()
    result = auditor.run(event_trigger("e1", GW1, caller="bob@contoso.example"))
    assert result.outcome == COMMITTED and pair_names(result.opened) == [("hub-01", "hub-02")]
    assert fake_arm.resource_graph_requests() == []
    assert [r.path.rsplit("/", 1)[-1] for r in fake_arm.arm_requests()] == ["ergw-01"]
    assert reader.last_read_calls.resource_graph == 0 and reader.last_read_calls.arm == 1
    [alert] = notifier.accepted
    assert [c["text"] for c in alert["opened"][0]["cause"]] == ["ergw-01 allowRemoteVnetTraffic false -> true"]


def test_an_event_that_changes_nothing_commits_its_id_without_rewriting_the_projection(
        fake_arm: FakeArmServer, tmp_path: Path) -> None:
    auditor, _, notifier = baseline(fake_arm, tmp_path, b.lab((1, 2)))
    [projection] = tmp_path.glob("topology-*.json")
    written = projection.stat().st_mtime_ns
    result = auditor.run(event_trigger("e1", GW1))
    assert result.outcome == NO_CHANGE and notifier.accepted == []
    assert fake_arm.resource_graph_requests() == []
    assert [p.name for p in tmp_path.glob("topology-*.json")] == [projection.name]
    assert projection.stat().st_mtime_ns == written
    state, _ = LocalStateStore(tmp_path).load()
    assert state is not None and "e1" in state.processed_event_ids


def test_a_404_on_the_event_resource_is_a_deletion_that_closes_its_pairs(
        fake_arm: FakeArmServer, tmp_path: Path) -> None:
    auditor, _, notifier = baseline(fake_arm, tmp_path, b.lab((1, 2)))
    fake_arm.set_resources({b.SUB: [r for r in b.lab((1, 2)) if r["name"] != "conn-02"]})
    result = auditor.run(event_trigger("d1", b.rid("connections", "conn-02")))
    assert result.outcome == COMMITTED and pair_names(result.closed) == [("hub-01", "hub-02")]
    assert fake_arm.resource_graph_requests() == []
    state, _ = LocalStateStore(tmp_path).load()
    assert state is not None and committed_pair_ids(state) == []
    assert not any(r["id"].lower().endswith("/conn-02") for r in state.resources)


def test_a_failed_event_read_closes_nothing_and_commits_nothing(fake_arm: FakeArmServer, tmp_path: Path) -> None:
    auditor, _, notifier = baseline(fake_arm, tmp_path, b.lab((1, 2)))
    before = LocalStateStore(tmp_path).load()
    fake_arm.script(r"/connections/conn-02$", arm_error(503, "ServiceUnavailable"), repeat=True)
    result = auditor.run(event_trigger("d1", b.rid("connections", "conn-02")))
    assert result.outcome == INCOMPLETE and not result.closed and notifier.accepted == []
    assert LocalStateStore(tmp_path).load()[1] == before[1]
    assert fake_arm.resource_graph_requests() == []


def test_a_connection_to_a_gateway_the_copy_lacks_reads_that_gateway_within_the_budget(
        fake_arm: FakeArmServer, tmp_path: Path) -> None:
    full = b.lab((1, 2))
    lacking = [r for r in full if r["name"] not in ("ergw-02", "conn-02")]
    auditor, reader, notifier = baseline(fake_arm, tmp_path, lacking)
    fake_arm.set_resources({b.SUB: full})
    result = auditor.run(event_trigger("c1", b.rid("connections", "conn-02")))
    assert pair_names(result.opened) == [("hub-01", "hub-02")]
    paths = sorted(r.path.rsplit("/", 1)[-1] for r in fake_arm.arm_requests())
    assert paths == ["conn-02", "ergw-02"] and reader.last_read_calls.arm <= 3
    assert fake_arm.resource_graph_requests() == []


def test_a_hub_event_beyond_the_call_budget_warns_and_the_reconcile_completes_it(
        fake_arm: FakeArmServer, tmp_path: Path) -> None:
    hub = b.virtual_hub("vhub-1", "wan-1")
    spokes = [b.vnet(f"wan-spoke-{i}", f"10.20.{i}.0/24") for i in (1, 2)]
    auditor, reader, _ = baseline(fake_arm, tmp_path, [*b.lab((1,)), hub])
    fake_arm.set_resources({b.SUB: [*b.lab((1,)), hub, *spokes, *(b.hub_connection(hub, s) for s in spokes)]})
    auditor.run(event_trigger("h1", f"{hub['id']}/hubVirtualNetworkConnections/conn-wan-spoke-1"))
    assert reader.last_read_calls.arm == 3 and fake_arm.resource_graph_requests() == []
    warnings = last_record(tmp_path)["warnings"]
    assert any("was not read within this event's budget" in w and "wan-spoke-" in w for w in warnings)
    state, _ = LocalStateStore(tmp_path).load()
    assert state is not None and sum("/wan-spoke-" in r["id"].lower() and "/virtualnetworks/" in r["id"].lower()
                                     for r in state.resources) == 1
    auditor.run(RunTrigger(kind="reconcile"))
    state, _ = LocalStateStore(tmp_path).load()
    assert state is not None and sum("/wan-spoke-" in r["id"].lower() and "/virtualnetworks/" in r["id"].lower()
                                     for r in state.resources) == 2


def test_a_duplicate_event_reads_nothing(fake_arm: FakeArmServer, tmp_path: Path) -> None:
    auditor, _, notifier = baseline(fake_arm, tmp_path, b.lab((2,)))
    fake_arm.set_resources({b.SUB: b.lab((1, 2))})
    auditor.run(event_trigger("e1", GW1))
    fake_arm.clear_requests()
    assert auditor.run(event_trigger("e1", GW1)).outcome == DUPLICATE
    assert fake_arm.count() == 0 and len(notifier.accepted) == 1


def test_a_lost_event_is_caught_by_the_next_reconcile(fake_arm: FakeArmServer, tmp_path: Path) -> None:
    auditor, _, notifier = baseline(fake_arm, tmp_path, b.lab((2,)))
    fake_arm.set_resources({b.SUB: b.lab((1, 2))})  # the gateway changed; its event never arrived
    result = auditor.run(RunTrigger(kind="reconcile"))
    assert pair_names(result.opened) == [("hub-01", "hub-02")] and len(notifier.accepted) == 1
    assert len(fake_arm.resource_graph_requests()) >= 1


def test_a_damaged_working_copy_is_read_again_in_full_and_rebaselined_without_alerts(
        fake_arm: FakeArmServer, tmp_path: Path) -> None:
    auditor, _, notifier = baseline(fake_arm, tmp_path, b.lab((2,)))
    [projection] = tmp_path.glob("topology-*.json")
    projection.write_text(json.dumps([{"id": "tampered", "type": "x"}]))
    fake_arm.set_resources({b.SUB: b.lab((1, 2))})
    fresh, *_ = make(fake_arm, tmp_path)  # a new process: nothing cached
    fresh.notifiers = [notifier]
    result = fresh.run(event_trigger("e1", GW1))
    assert result.outcome == COMMITTED and result.opened == [] and result.closed == []
    # No transit alert; the refused working copy raises the health alarm (issue 10).
    assert [a.get("condition") for a in notifier.accepted] == ["state-refused"]
    assert len(fake_arm.resource_graph_requests()) >= 1
    record = [r for r in LocalAuditLog(tmp_path).records() if r["outcome"] == COMMITTED][-1]
    assert record["baseline"] is True and any("re-baselined" in w for w in record["warnings"])
    assert record["stateRebuilt"] is True
    state, _ = LocalStateStore(tmp_path).load()
    assert state is not None and state.working_copy_ok and pair_names(
        [{"vnets": list(p)} for p in committed_pair_ids(state)]) == [("hub-01", "hub-02")]
    assert verify_audit(LocalAuditLog(tmp_path).lines()).ok


# -- a new process: the event's read overlaps the load of the working copy (_EarlyRead) -------------------------------
class _WaitingStore(LocalStateStore):
    """Reads the working copy only once the fake ARM has been asked for the event's resource (or after 5 s), and
    says whether it was: only a run that starts its ARM read before reading the copy gets past without waiting."""

    def __init__(self, folder: Path, fake: FakeArmServer, name: str) -> None:
        super().__init__(folder)
        self.fake, self.name = fake, name
        self.asked_first: list[bool] = []

    def _read_projection(self, key: str) -> tuple[bytes | None, str | None]:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(r.path.endswith("/" + self.name)
                                                      for r in self.fake.arm_requests()):
            time.sleep(0.01)
        self.asked_first.append(any(r.path.endswith("/" + self.name) for r in self.fake.arm_requests()))
        return super()._read_projection(key)


def cold(fake: FakeArmServer, folder: Path, name: str) -> tuple[Auditor, _WaitingStore, RecordingNotifier]:
    auditor, _, notifier = make(fake, folder)
    store = _WaitingStore(folder, fake, name)
    return replace(auditor, state=store), store, notifier


def test_a_new_process_reads_the_event_resource_while_it_loads_the_working_copy(
        fake_arm: FakeArmServer, tmp_path: Path) -> None:
    baseline(fake_arm, tmp_path, b.lab((2,)))
    fake_arm.set_resources({b.SUB: b.lab((1, 2))})
    fake_arm.clear_requests()
    auditor, store, notifier = cold(fake_arm, tmp_path, "ergw-01")
    result = auditor.run(event_trigger("e1", GW1, caller="bob@contoso.example"))
    assert store.asked_first == [True]
    assert result.outcome == COMMITTED and pair_names(result.opened) == [("hub-01", "hub-02")]
    assert [r.path.rsplit("/", 1)[-1] for r in fake_arm.arm_requests()] == ["ergw-01"]
    assert fake_arm.resource_graph_requests() == [] and len(notifier.accepted) == 1


def test_a_new_process_still_reads_what_the_event_newly_references_once_the_copy_is_loaded(
        fake_arm: FakeArmServer, tmp_path: Path) -> None:
    full = b.lab((1, 2))
    baseline(fake_arm, tmp_path, [r for r in full if r["name"] not in ("ergw-02", "conn-02")])
    fake_arm.set_resources({b.SUB: full})
    auditor, store, _ = cold(fake_arm, tmp_path, "conn-02")
    result = auditor.run(event_trigger("c1", b.rid("connections", "conn-02")))
    assert store.asked_first == [True] and pair_names(result.opened) == [("hub-01", "hub-02")]
    assert sorted(r.path.rsplit("/", 1)[-1] for r in fake_arm.arm_requests()) == ["conn-02", "ergw-02"]


def test_a_new_process_reads_nothing_for_a_duplicate_event(fake_arm: FakeArmServer, tmp_path: Path) -> None:
    auditor, _, _ = baseline(fake_arm, tmp_path, b.lab((2,)))
    fake_arm.set_resources({b.SUB: b.lab((1, 2))})
    auditor.run(event_trigger("e1", GW1))
    fake_arm.clear_requests()
    fresh, store, notifier = cold(fake_arm, tmp_path, "ergw-01")
    assert fresh.run(event_trigger("e1", GW1)).outcome == DUPLICATE
    assert fake_arm.count() == 0 and store.asked_first == [False] and notifier.accepted == []


def test_a_new_process_whose_early_read_fails_closes_nothing(fake_arm: FakeArmServer, tmp_path: Path) -> None:
    baseline(fake_arm, tmp_path, b.lab((1, 2)))
    before = LocalStateStore(tmp_path).load()
    fake_arm.script(r"/connections/conn-02$", arm_error(503, "ServiceUnavailable"), repeat=True)
    auditor, store, notifier = cold(fake_arm, tmp_path, "conn-02")
    result = auditor.run(event_trigger("d1", b.rid("connections", "conn-02")))
    assert store.asked_first == [True]
    assert result.outcome == INCOMPLETE and not result.closed and notifier.accepted == []
    assert LocalStateStore(tmp_path).load()[1] == before[1]


def test_a_warm_up_readies_the_reader_too_without_an_arm_call(fake_arm: FakeArmServer, tmp_path: Path) -> None:
    baseline(fake_arm, tmp_path, b.lab((2,)))
    fake_arm.set_resources({b.SUB: b.lab((1, 2))})
    fake_arm.clear_requests()
    auditor, reader, _ = make(fake_arm, tmp_path)  # a new instance
    asked = len(fake_arm.credential.scopes)
    assert auditor.warm() is True
    assert fake_arm.count() == 0 and list(reader._network) == [b.SUB.lower()]
    warm_scopes = fake_arm.credential.scopes[asked:]
    assert auditor.run(event_trigger("e1", GW1)).outcome == COMMITTED
    assert warm_scopes == [fake_arm.credential.scopes[-1]]  # the scope the event's own calls ask for


def test_a_reader_that_fails_to_warm_leaves_the_warm_up_and_the_event_to_go_on(
        fake_arm: FakeArmServer, tmp_path: Path, caplog: Any) -> None:
    baseline(fake_arm, tmp_path, b.lab((2,)))
    fake_arm.set_resources({b.SUB: b.lab((1, 2))})
    auditor, reader, _ = make(fake_arm, tmp_path)
    real = fake_arm.credential.get_token
    calls = []

    def flaky(*scopes: str, **kwargs: Any) -> Any:
        calls.append(scopes)
        if len(calls) == 1:
            raise RuntimeError("identity endpoint not ready")
        return real(*scopes, **kwargs)

    fake_arm.credential.get_token = flaky  # type: ignore[method-assign]
    assert auditor.warm() is True and "warm-up of the reader skipped: RuntimeError" in caplog.text
    assert pair_names(auditor.run(event_trigger("e1", GW1)).opened) == [("hub-01", "hub-02")]


def test_an_event_patches_the_committed_copys_canonical_bytes_instead_of_writing_the_copy_again(
        fake_arm: FakeArmServer, tmp_path: Path, monkeypatch: Any) -> None:
    import hashlib

    import shared.app.auditor as auditor_module

    auditor, _, _ = baseline(fake_arm, tmp_path, b.lab((2,)))
    fake_arm.set_resources({b.SUB: b.lab((1, 2))})
    whole: list[int] = []
    real = auditor_module.canonical_digest_and_bytes
    monkeypatch.setattr(auditor_module, "canonical_digest_and_bytes", lambda r: whole.append(1) or real(r))
    assert auditor.run(event_trigger("e1", GW1)).outcome == COMMITTED  # patches the bytes the baseline wrote
    fake_arm.set_resources({b.SUB: b.lab((1,))})
    fresh, _, _ = make(fake_arm, tmp_path)  # a new process: it patches the bytes it loads
    assert fresh.run(event_trigger("e2", b.rid("virtualNetworkGateways", "ergw-02"))).outcome == COMMITTED
    assert whole == []  # no copy digested whole
    state, _ = LocalStateStore(tmp_path).load()
    assert state is not None
    [projection] = [p for p in tmp_path.glob("topology-*.json") if state.topology_digest in p.name]
    # The stored projection is the copy's canonical JSON: its SHA-256 is the topology digest.
    assert hashlib.sha256(projection.read_bytes()).hexdigest() == state.topology_digest == real(state.resources)[0]
