"""One contract for the state store, audit log and recheck queue, run against the local folder and Azurite."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.store import (
    GENESIS_HASH,
    AppendBlobAuditLog,
    AuditLine,
    AuditLogCorrupt,
    BlobStateStore,
    LocalAuditLog,
    LocalRecheckQueue,
    LocalStateStore,
    StorageQueueRecheck,
    audit_verify_main,
    line_hash,
    store_from_settings,
    verify_audit,
)
from shared.app.ports import CommittedState, StateConflict, bounded_ids

Clock = Callable[[], datetime]
LineTransform = Callable[[list[AuditLine]], list[AuditLine]]


class ManualClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def set(self, moment: datetime) -> None:
        with self._lock:
            self.now = moment


class Backend:
    """What a contract test needs from one implementation."""

    name: str

    def state_store(self) -> Any:
        raise NotImplementedError

    def audit_log(self, clock: Clock | None = None) -> Any:
        raise NotImplementedError

    def tampered(self, log: Any, transform: LineTransform) -> Any:
        """A log whose stored lines are `transform(lines of log)`."""
        raise NotImplementedError

    def recheck_queue(self) -> Any:
        raise NotImplementedError

    def due_messages(self, queue: Any) -> list[dict[str, Any]]:
        raise NotImplementedError


@dataclass
class LocalBackend(Backend):
    folder: Path
    name: str = "local"

    def state_store(self) -> LocalStateStore:
        return LocalStateStore(self.folder)

    def audit_log(self, clock: Clock | None = None) -> LocalAuditLog:
        return LocalAuditLog(self.folder) if clock is None else LocalAuditLog(self.folder, clock=clock)

    def tampered(self, log: Any, transform: LineTransform) -> LocalAuditLog:
        # Tamper with the files in place, as someone with file access would.
        lines = transform(list(log.lines()))
        for path in self.folder.glob("audit-*.jsonl"):
            path.write_text("".join(f"{line.text}\n" for line in lines if line.file == path.name), encoding="utf-8")
        return LocalAuditLog(self.folder)

    def recheck_queue(self) -> LocalRecheckQueue:
        return LocalRecheckQueue(self.folder)

    def due_messages(self, queue: Any) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = queue.take_due()
        return result


@dataclass
class AzuriteBackend(Backend):
    connection_string: str
    name: str = "azurite"

    def __post_init__(self) -> None:
        # Fresh containers and queue per test, so tests never see each other's blobs.
        suffix = uuid.uuid4().hex[:12]
        self.state_container = f"state-{suffix}"
        self.audit_container = f"audit-{suffix}"
        self.queue_name = f"recheck-{suffix}"

    def state_store(self) -> BlobStateStore:
        return BlobStateStore(connection_string=self.connection_string, container=self.state_container)

    def audit_log(self, clock: Clock | None = None, container: str | None = None) -> AppendBlobAuditLog:
        container = container or self.audit_container
        if clock is None:
            return AppendBlobAuditLog(connection_string=self.connection_string, container=container)
        return AppendBlobAuditLog(connection_string=self.connection_string, container=container, clock=clock)

    def tampered(self, log: Any, transform: LineTransform) -> AppendBlobAuditLog:
        # The real audit container only allows appends, so write the tampered copy into a new container.
        from azure.storage.blob import BlobServiceClient

        lines = transform(list(log.lines()))
        copy = f"tampered-{uuid.uuid4().hex[:12]}"
        container = BlobServiceClient.from_connection_string(self.connection_string).create_container(copy)
        for file in sorted({line.file for line in lines}):
            blob = container.get_blob_client(file)
            blob.create_append_blob()
            for line in lines:
                if line.file == file:
                    blob.append_block((line.text + "\n").encode("utf-8"))
        return self.audit_log(container=copy)

    def recheck_queue(self) -> StorageQueueRecheck:
        return StorageQueueRecheck(connection_string=self.connection_string, queue=self.queue_name)

    def due_messages(self, queue: Any) -> list[dict[str, Any]]:
        from azure.storage.queue import QueueClient, TextBase64DecodePolicy

        client = QueueClient.from_connection_string(
            self.connection_string, self.queue_name, message_decode_policy=TextBase64DecodePolicy()
        )
        out = []
        for message in client.receive_messages(max_messages=32, visibility_timeout=30):
            out.append(json.loads(message.content))
            client.delete_message(message)
        return out


@pytest.fixture(params=["local", "azurite"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "local":
        return LocalBackend(tmp_path / "store")
    emulator = request.getfixturevalue("azurite")
    return AzuriteBackend(emulator.connection_string)


def _state(n: int = 0) -> CommittedState:
    return CommittedState(
        pairs=[{"a": f"/subscriptions/s/vnet-{n}", "b": "/subscriptions/s/vnet-hub", "via": "ergw-∆"}],
        resources=[{"id": f"/subscriptions/s/providers/x/{n}", "properties": {"nested": [1, 2.5, None, True]}}],
        topology_digest="d" * 64,
        processed_event_ids=[f"evt-{n}"],
        outbox=[{"id": "o1", "channel": "teams", "alert": {"text": "opened"}}],
        pending=[{"resourceId": "r", "until": "2024-01-01T00:00:00Z"}],
        sequence=n,
    )


def _record(i: int) -> dict[str, Any]:
    return {
        "trigger": "event",
        "caller": "user@example.com",
        "correlationId": f"corr-{i}",
        "opened": [{"pair": ["a", "b"], "cause": "allowRemoteVnetTraffic false -> true"}],
        "closed": [],
        "outcome": "committed",
        "notified": ["teams"],
    }


def _fill(log: Any, count: int) -> list[dict[str, Any]]:
    return [log.append(_record(i)) for i in range(1, count + 1)]


class TestStateStoreContract:
    def test_load_before_any_commit_returns_nothing(self, backend: Backend) -> None:
        assert backend.state_store().load() == (None, None)

    def test_saved_state_loads_back_equal_with_the_returned_etag(self, backend: Backend) -> None:
        store = backend.state_store()
        etag = store.save(_state(1), etag=None)
        state, loaded_etag = backend.state_store().load()
        assert state == _state(1)
        assert loaded_etag == etag

    def test_save_with_stale_etag_raises_conflict_and_keeps_the_winner(self, backend: Backend) -> None:
        store = backend.state_store()
        first = store.save(_state(1), etag=None)
        second = store.save(_state(2), etag=first)
        assert second != first
        with pytest.raises(StateConflict):
            store.save(_state(3), etag=first)
        assert store.load() == (_state(2), second)

    def test_save_with_no_etag_only_creates(self, backend: Backend) -> None:
        store = backend.state_store()
        store.save(_state(1), etag=None)
        with pytest.raises(StateConflict):
            store.save(_state(2), etag=None)
        assert store.load()[0] == _state(1)

    def test_saving_the_same_state_again_still_changes_the_etag(self, backend: Backend) -> None:
        store = backend.state_store()
        first = store.save(_state(1), etag=None)
        second = store.save(_state(1), etag=first)
        with pytest.raises(StateConflict):
            store.save(_state(1), etag=first)
        assert store.load()[1] == second

    def test_large_state_round_trips(self, backend: Backend) -> None:
        resources = [
            {"id": f"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v{i}",
             "properties": {"addressSpace": [f"10.{i % 256}.{i // 256 % 256}.0/24"], "tags": {"k": "v" * 40}}}
            for i in range(20000)
        ]  # fmt: skip
        state = CommittedState(resources=resources, topology_digest="x", sequence=7)
        store = backend.state_store()
        store.save(state, etag=None)
        assert store.load()[0] == state

    def test_fifty_concurrent_read_modify_write_runs_all_land(self, backend: Backend) -> None:
        store = backend.state_store()
        store.save(CommittedState(), etag=None)
        start = threading.Barrier(50)
        conflicts = 0
        conflicts_lock = threading.Lock()

        def run(i: int) -> None:
            nonlocal conflicts
            own = backend.state_store()  # each run builds its own adapter, as separate invocations do
            start.wait()
            for _ in range(500):
                state, etag = own.load()
                assert state is not None
                changed = replace(
                    state,
                    processed_event_ids=bounded_ids(state.processed_event_ids, f"evt-{i}"),
                    sequence=state.sequence + 1,
                )
                try:
                    own.save(changed, etag=etag)
                    return
                except StateConflict:
                    with conflicts_lock:
                        conflicts += 1
            raise AssertionError(f"run {i} never committed")

        with ThreadPoolExecutor(max_workers=50) as pool:
            for future in [pool.submit(run, i) for i in range(50)]:
                future.result()
        final, _ = store.load()
        assert final is not None
        assert sorted(final.processed_event_ids) == sorted(f"evt-{i}" for i in range(50))
        assert final.sequence == 50
        assert conflicts > 0  # the runs really raced


class TestAuditLogContract:
    def test_empty_log_has_no_records_and_verifies(self, backend: Backend) -> None:
        log = backend.audit_log()
        assert list(log.records()) == []
        assert verify_audit(log.lines()).ok

    def test_appended_records_are_chained_and_read_back_oldest_first(self, backend: Backend) -> None:
        log = backend.audit_log()
        stored = _fill(log, 3)
        assert [r["seq"] for r in stored] == [1, 2, 3]
        assert stored[0]["prevHash"] == GENESIS_HASH
        assert stored[1]["prevHash"] == line_hash(stored[0])
        assert stored[2]["prevHash"] == line_hash(stored[1])
        assert {k: v for k, v in stored[0].items() if k not in {"seq", "prevHash", "hash", "recordedAt"}} == _record(1)
        assert list(backend.audit_log().records()) == stored
        result = verify_audit(backend.audit_log().records())
        assert (result.ok, result.count, result.problem) == (True, 3, None)

    def test_record_may_not_set_the_chain_fields(self, backend: Backend) -> None:
        log = backend.audit_log()
        with pytest.raises(ValueError, match="seq"):
            log.append({**_record(1), "seq": 9})
        assert list(log.records()) == []

    def test_fifty_concurrent_appends_form_one_chain(self, backend: Backend) -> None:
        start = threading.Barrier(50)

        def run(i: int) -> dict[str, Any]:
            log = backend.audit_log()  # separate adapters, as separate invocations have
            start.wait()
            stored: dict[str, Any] = log.append(_record(i))
            return stored

        with ThreadPoolExecutor(max_workers=50) as pool:
            returned = [f.result() for f in [pool.submit(run, i) for i in range(50)]]
        records = list(backend.audit_log().records())
        assert [r["seq"] for r in records] == list(range(1, 51))
        assert sorted(r["correlationId"] for r in records) == sorted(f"corr-{i}" for i in range(50))
        assert sorted(returned, key=lambda r: r["seq"]) == records
        result = verify_audit(backend.audit_log().lines())
        assert result.ok and result.count == 50

    def test_modified_record_is_reported_by_seq_and_file(self, backend: Backend) -> None:
        log = backend.audit_log()
        _fill(log, 5)

        def modify(lines: list[AuditLine]) -> list[AuditLine]:
            record = json.loads(lines[2].text)
            record["outcome"] = "no change"
            lines[2] = AuditLine(lines[2].file, lines[2].line, json.dumps(record))
            return lines

        tampered = backend.tampered(log, modify)
        result = verify_audit(tampered.lines())
        assert not result.ok
        assert result.seq == 3 and result.count == 2
        assert result.file is not None and result.file.startswith("audit-")
        assert result.problem is not None and "record 3" in result.problem and "hash" in result.problem
        # The parsed-records form finds the same record.
        assert verify_audit(tampered.records()).seq == 3

    def test_modified_record_with_recomputed_hash_breaks_the_next_link(self, backend: Backend) -> None:
        from shared.adapters.store import record_hash

        log = backend.audit_log()
        _fill(log, 4)

        def forge(lines: list[AuditLine]) -> list[AuditLine]:
            record = json.loads(lines[1].text)
            record["closed"] = [{"pair": ["x", "y"], "cause": "forged"}]
            record["hash"] = record_hash(record)
            lines[1] = AuditLine(lines[1].file, lines[1].line, json.dumps(record))
            return lines

        result = verify_audit(backend.tampered(log, forge).lines())
        assert not result.ok and result.seq == 3 and "prevHash" in (result.problem or "")

    def test_deleted_record_is_reported_as_missing(self, backend: Backend) -> None:
        log = backend.audit_log()
        _fill(log, 5)
        result = verify_audit(backend.tampered(log, lambda lines: lines[:3] + lines[4:]).lines())
        assert not result.ok and result.seq == 4 and result.count == 3
        assert "missing" in (result.problem or "")

    def test_reordered_records_are_detected(self, backend: Backend) -> None:
        log = backend.audit_log()
        _fill(log, 5)
        result = verify_audit(backend.tampered(log, lambda ls: [ls[0], ls[2], ls[1], ls[3], ls[4]]).lines())
        assert not result.ok and result.seq == 2

    def test_unparsable_line_is_reported(self, backend: Backend) -> None:
        log = backend.audit_log()
        _fill(log, 3)

        def garble(lines: list[AuditLine]) -> list[AuditLine]:
            lines[1] = AuditLine(lines[1].file, lines[1].line, lines[1].text[:40])
            return lines

        tampered = backend.tampered(log, garble)
        result = verify_audit(tampered.lines())
        assert not result.ok and result.seq == 2 and "not valid JSON" in (result.problem or "")
        with pytest.raises(AuditLogCorrupt):
            list(tampered.records())

    def test_day_rollover_continues_the_chain_in_a_new_file(self, backend: Backend) -> None:
        clock = ManualClock(datetime(2024, 5, 1, 23, 59, 58, tzinfo=UTC))
        log = backend.audit_log(clock)
        first_day = _fill(log, 2)
        clock.set(datetime(2024, 5, 2, 0, 0, 1, tzinfo=UTC))
        second_day = [log.append(_record(10)), log.append(_record(11))]
        clock.set(datetime(2024, 5, 4, 8, 0, tzinfo=UTC))
        fourth_day = log.append(_record(12))
        lines = list(backend.audit_log(clock).lines())
        assert [line.file for line in lines] == [
            "audit-2024-05-01.jsonl",
            "audit-2024-05-01.jsonl",
            "audit-2024-05-02.jsonl",
            "audit-2024-05-02.jsonl",
            "audit-2024-05-04.jsonl",
        ]
        assert second_day[0]["seq"] == 3 and second_day[0]["prevHash"] == line_hash(first_day[-1])
        assert fourth_day["prevHash"] == line_hash(second_day[-1])
        assert second_day[0]["recordedAt"] == "2024-05-02T00:00:01Z"
        result = verify_audit(lines)
        assert result.ok and result.count == 5
        # A record removed across the day boundary is caught too, naming the second day's file.
        broken = verify_audit(backend.tampered(log, lambda ls: ls[:1] + ls[2:]).lines())
        assert (broken.seq, broken.file) == (2, "audit-2024-05-02.jsonl")

    def test_lagging_clock_appends_to_the_newest_file(self, backend: Backend) -> None:
        clock = ManualClock(datetime(2024, 5, 2, 0, 0, 5, tzinfo=UTC))
        log = backend.audit_log(clock)
        _fill(log, 1)
        clock.set(datetime(2024, 5, 1, 23, 59, 59, tzinfo=UTC))  # another instance, a few seconds behind
        log.append(_record(2))
        lines = list(backend.audit_log().lines())
        assert [line.file for line in lines] == ["audit-2024-05-02.jsonl"] * 2
        assert verify_audit(lines).ok


class TestRecheckQueueContract:
    def test_scheduled_message_becomes_visible_only_after_the_delay(self, backend: Backend) -> None:
        queue = backend.recheck_queue()
        message = {"resourceId": "/subscriptions/s/rg/x", "reason": "provisioningState Updating", "n": 1}
        queue.schedule(message, delay_seconds=2)
        assert backend.due_messages(queue) == []
        time.sleep(2.5)
        assert backend.due_messages(queue) == [message]
        assert backend.due_messages(queue) == []  # taken once

    def test_zero_delay_is_due_at_once_and_negative_delay_is_refused(self, backend: Backend) -> None:
        queue = backend.recheck_queue()
        queue.schedule({"n": 2}, delay_seconds=0)
        assert backend.due_messages(queue) == [{"n": 2}]
        with pytest.raises(ValueError):
            queue.schedule({"n": 3}, delay_seconds=-1)


def test_local_recheck_queue_hands_out_due_messages_in_due_order(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2024, 1, 1, tzinfo=UTC))
    queue = LocalRecheckQueue(tmp_path, clock=clock)
    queue.schedule({"n": "late"}, delay_seconds=120)
    queue.schedule({"n": "early"}, delay_seconds=60)
    queue.schedule({"n": "last"}, delay_seconds=600)
    assert queue.take_due(now=clock.now + timedelta(seconds=59)) == []
    assert queue.take_due(now=clock.now + timedelta(seconds=121)) == [{"n": "early"}, {"n": "late"}]
    assert queue.take_due(now=clock.now + timedelta(days=1)) == [{"n": "last"}]


def test_local_state_store_is_atomic_across_processes(tmp_path: Path) -> None:
    import subprocess
    import sys

    LocalStateStore(tmp_path).save(CommittedState(), etag=None)
    script = (
        "import sys\n"
        "from dataclasses import replace\n"
        "from shared.app.ports import StateConflict\n"
        "from shared.adapters.store import LocalStateStore\n"
        "store = LocalStateStore(sys.argv[1])\n"
        "for i in range(10):\n"
        "    while True:\n"
        "        s, e = store.load()\n"
        "        try:\n"
        "            ids = s.processed_event_ids + [sys.argv[2] + str(i)]\n"
        "            store.save(replace(s, processed_event_ids=ids), etag=e)\n"
        "            break\n"
        "        except StateConflict:\n"
        "            pass\n"
    )
    repo = Path(__file__).resolve().parents[2]
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path), f"p{n}-"], cwd=repo) for n in range(4)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    state, _ = LocalStateStore(tmp_path).load()
    assert state is not None and sorted(state.processed_event_ids) == sorted(
        f"p{n}-{i}" for n in range(4) for i in range(10)
    )


def test_local_audit_appends_from_several_processes_form_one_chain(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from shared.adapters.store import LocalAuditLog\n"
        "log = LocalAuditLog(sys.argv[1])\n"
        "for i in range(15):\n"
        "    log.append({'correlationId': sys.argv[2] + str(i), 'outcome': 'committed'})\n"
    )
    repo = Path(__file__).resolve().parents[2]
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path), f"p{n}-"], cwd=repo) for n in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    result = verify_audit(LocalAuditLog(tmp_path).lines())
    assert result.ok and result.count == 60


def test_audit_verify_main_prints_one_line_and_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = LocalAuditLog(tmp_path)
    _fill(log, 4)
    assert audit_verify_main(str(tmp_path)) == 0
    assert capsys.readouterr().out == "audit chain intact: 4 records\n"

    day_file = next(tmp_path.glob("audit-*.jsonl"))
    kept = day_file.read_text(encoding="utf-8").splitlines(keepends=True)
    day_file.write_text("".join(kept[:1] + kept[2:]), encoding="utf-8")
    assert audit_verify_main(str(tmp_path)) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"audit chain broken at record 2 ({day_file.name}): ") and out.count("\n") == 1


def test_audit_verify_main_on_a_missing_folder_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert audit_verify_main(str(tmp_path / "nope")) == 1
    assert "broken" in capsys.readouterr().out


def test_append_after_a_garbled_last_line_goes_on_in_a_new_segment(tmp_path: Path) -> None:
    log = LocalAuditLog(tmp_path)
    _fill(log, 2)
    day_file = next(tmp_path.glob("audit-*.jsonl"))
    with open(day_file, "a", encoding="utf-8") as handle:
        handle.write('{"seq": 3, "trunc')
    stored = LocalAuditLog(tmp_path).append(_record(3))  # a fresh log: it must read the garbled tail itself
    assert stored["seq"] == 4  # seq 3 is the record that opens the segment and names the damage
    segment = day_file.with_name(day_file.name.replace(".jsonl", ".s002.jsonl"))
    first = json.loads(segment.read_text(encoding="utf-8").splitlines()[0])
    assert first["outcome"] == "audit damaged" and first["damage"]["line"] == 3


def test_settings_choose_local_folder_by_default(tmp_path: Path) -> None:
    state, audit, recheck = store_from_settings({"STORE_DIR": str(tmp_path)})
    assert isinstance(state, LocalStateStore)
    assert isinstance(audit, LocalAuditLog)
    assert isinstance(recheck, LocalRecheckQueue)
    state.save(CommittedState(sequence=1), etag=None)
    assert (tmp_path / "state.json").exists()


def test_settings_with_connection_string_reach_azurite(azurite: Any) -> None:
    state, audit, recheck = store_from_settings(
        {"AuditorStorage": azurite.connection_string, "AuditorStorage__blobServiceUri": azurite.blob_url}
    )
    assert isinstance(state, BlobStateStore)
    assert isinstance(audit, AppendBlobAuditLog)
    assert isinstance(recheck, StorageQueueRecheck)
    loaded, etag = state.load()
    etag = state.save(replace(loaded or CommittedState(), sequence=(loaded.sequence + 1 if loaded else 1)), etag=etag)
    assert state.load()[1] == etag


def test_settings_with_service_uri_use_identity_and_build_nothing_eagerly() -> None:
    # Nothing is contacted until first use: building the adapters with an unreachable URI must not fail.
    state, audit, recheck = store_from_settings(
        {"AuditorStorage__blobServiceUri": "https://acct.blob.core.windows.net", "AuditorStorage__clientId": "cid"}
    )
    assert isinstance(state, BlobStateStore)
    assert isinstance(audit, AppendBlobAuditLog)
    assert isinstance(recheck, StorageQueueRecheck)
    assert recheck._account.account_url == "https://acct.queue.core.windows.net"


def test_rollover_seals_the_previous_day_blob_so_a_stale_writer_cannot_fork(azurite: Any) -> None:
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.blob import BlobServiceClient

    backend = AzuriteBackend(azurite.connection_string)
    clock = ManualClock(datetime(2024, 5, 1, 23, 59, 59, tzinfo=UTC))
    log = backend.audit_log(clock)
    _fill(log, 2)
    clock.set(datetime(2024, 5, 2, 0, 0, 0, tzinfo=UTC))
    log.append(_record(3))
    container = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(
        backend.audit_container
    )
    day1 = container.get_blob_client("audit-2024-05-01.jsonl")
    assert day1.get_blob_properties().get("is_append_blob_sealed") is True
    # A writer that listed before the rollover and still appends to the old day is refused.
    with pytest.raises(ResourceExistsError):
        day1.append_block(b'{"seq": 3}\n')
    assert verify_audit(backend.audit_log().lines()).ok
