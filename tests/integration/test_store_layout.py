"""The state layout (a small head, the projection in its own file/blob named by its digest, audit records stashed
outside the state) on both backends, and the migration from the old single-document layout."""

from __future__ import annotations

import gzip
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.store import EncodedRecord, LocalAuditLog, canonical_json, chain_next, chain_text
from shared.app.ports import CommittedState
from shared.core.chain import ChainTail
from tests.integration.test_store_contract import AzuriteBackend, Backend, LocalBackend


@pytest.fixture(params=["local", "azurite"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "local":
        return LocalBackend(tmp_path / "store")
    return AzuriteBackend(request.getfixturevalue("azurite").connection_string)


def big_state(n: int, *, seq: int = 1, digest: str = "a" * 64) -> CommittedState:
    resources = [{"id": f"/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/v{i:05d}",
                  "type": "microsoft.network/virtualnetworks", "properties": {"addressSpace": {
                      "addressPrefixes": [f"10.{i // 256}.{i % 256}.0/24"]}}} for i in range(n)]
    return CommittedState(pairs=[], resources=resources, topology_digest=digest, processed_event_ids=["e"],
                          outbox=[{"id": "a1", "kind": "alert", "payload": {"text": "x"}}], sequence=seq)


def head_bytes(backend: Backend) -> bytes:
    if isinstance(backend, LocalBackend):
        return (backend.folder / "state.json").read_bytes()
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(backend.connection_string)  # type: ignore[attr-defined]
    blob = service.get_blob_client(backend.state_container, "state.json.gz")  # type: ignore[attr-defined]
    return gzip.decompress(blob.download_blob().readall())


def projections(backend: Backend) -> list[str]:
    if isinstance(backend, LocalBackend):
        return sorted(p.name for p in backend.folder.glob("topology-*.json"))
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(backend.connection_string)  # type: ignore[attr-defined]
    container = service.get_container_client(backend.state_container)  # type: ignore[attr-defined]
    return sorted(b.name for b in container.list_blobs(name_starts_with="topology/"))


def write_old_layout(backend: Backend, state: CommittedState) -> None:
    if isinstance(backend, LocalBackend):
        backend.folder.mkdir(parents=True, exist_ok=True)
        (backend.folder / "state.json").write_text(canonical_json({"writeId": "w", "state": state.to_json()}))
        return
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(backend.connection_string)  # type: ignore[attr-defined]
    container = service.get_container_client(backend.state_container)  # type: ignore[attr-defined]
    container.create_container()
    container.upload_blob("state.json.gz", gzip.compress(canonical_json(state.to_json()).encode()))


def test_the_head_stays_small_and_holds_no_resources(backend: Backend) -> None:
    store = backend.state_store()
    store.save(big_state(5000), etag=None)
    head = head_bytes(backend)
    assert len(head) < 4096
    assert "resources" not in json.loads(head)["head"]
    state, _ = backend.state_store().load()
    assert state == big_state(5000)


def test_the_projection_is_written_once_per_digest(backend: Backend) -> None:
    store = backend.state_store()
    etag = store.save(big_state(100, seq=1), etag=None)
    etag = store.save(big_state(100, seq=2), etag=etag)
    etag = backend.state_store().save(big_state(100, seq=3), etag=backend.state_store().load()[1])
    assert len(projections(backend)) == 1
    backend.state_store().save(big_state(101, seq=4, digest="b" * 64), etag=etag)
    assert len(projections(backend)) == 2  # the previous one is kept (a reader may still be on it)
    state, _ = backend.state_store().load()
    assert state is not None and state.sequence == 4 and len(state.resources) == 101


def test_a_state_in_the_old_layout_loads_and_the_next_commit_writes_the_new_one(backend: Backend) -> None:
    old = big_state(10, seq=7)
    write_old_layout(backend, old)
    store = backend.state_store()
    state, etag = store.load()
    assert state == old
    assert state is not None
    store.save(replace(state, sequence=8), etag=etag)
    assert json.loads(head_bytes(backend))["format"] == 2
    assert len(projections(backend)) == 1
    reloaded, _ = backend.state_store().load()
    assert reloaded is not None and reloaded.sequence == 8 and reloaded.resources == old.resources


def overwrite_projection(backend: Backend, content: bytes) -> None:
    if isinstance(backend, LocalBackend):
        [path] = backend.folder.glob("topology-*.json")
        path.write_bytes(content)
    else:
        from azure.storage.blob import BlobServiceClient

        service = BlobServiceClient.from_connection_string(backend.connection_string)  # type: ignore[attr-defined]
        [name] = projections(backend)
        service.get_blob_client(backend.state_container, name).upload_blob(  # type: ignore[attr-defined]
            gzip.compress(content), overwrite=True)


def test_a_projection_that_does_not_match_its_head_is_reported_damaged(backend: Backend) -> None:
    backend.state_store().save(big_state(20), etag=None)
    overwrite_projection(backend, b"[]")
    state, etag = backend.state_store().load()
    assert state is not None and etag is not None
    assert state.working_copy_ok is False and state.resources == [] and state.sequence == 1


def test_a_warm_load_checks_the_stored_copy_without_reading_it_and_sees_it_edited(backend: Backend) -> None:
    store = backend.state_store()
    store.save(big_state(50), etag=None)
    reads: list[str] = []
    read = store._read_projection

    def counted(key: str) -> Any:
        reads.append(key)
        return read(key)

    store._read_projection = counted
    for _ in range(3):
        state, _ = store.load()
        assert state is not None and state.working_copy_ok
    assert reads == []  # the cached copy is still the stored one: checked by its identity, not re-read
    overwrite_projection(backend, json.dumps(big_state(49).resources, separators=(",", ":")).encode())
    state, _ = store.load()  # the same (warm) store: the edited copy fails its hash, as in a cold one
    assert state is not None and state.working_copy_ok is False and len(reads) == 1
    state, _ = store.load(verify=False)  # a re-read within the run sees the damage too (never the stale cache)
    assert state is not None and state.working_copy_ok is False


def test_stashed_audit_records_round_trip_and_are_dropped(backend: Backend) -> None:
    store = backend.state_store()
    store.stash("run1-1", '{"runId":"run1","opened":["∆"]}')
    assert backend.state_store().unstash("run1-1") == '{"runId":"run1","opened":["∆"]}'
    store.drop("run1-1")
    assert backend.state_store().unstash("run1-1") is None
    with pytest.raises(ValueError):
        store.stash("../escape", "{}")


def stash_bytes(backend: Backend, name: str, data: bytes | None = None) -> bytes:
    """The stash `name` as stored (with `data`: stored so first, as an earlier version or damage left it)."""
    if isinstance(backend, LocalBackend):
        path = backend.folder / "pending-audit" / f"{name}.json"
        if data is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return path.read_bytes()
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(backend.connection_string)  # type: ignore[attr-defined]
    blob = service.get_blob_client(backend.state_container, f"pending-audit/{name}.json")  # type: ignore[attr-defined]
    if data is not None:
        blob.upload_blob(data, overwrite=True)
    return bytes(blob.download_blob().readall())


def test_a_stashed_record_is_stored_gzipped_and_a_plain_or_damaged_one_is_read_as_such(backend: Backend) -> None:
    store = backend.state_store()
    store.stash("run0-1", "{}")  # the container or folder exists from here on
    record = {"runId": "run2", "opened": [{"vnets": [f"/subscriptions/s/vnet-{i:05d}", "/subscriptions/s/hub"],
                                           "status": "confirmed"} for i in range(3000)]}
    text = canonical_json(record)
    store.stash("run2-1", text.encode())  # as EncodedRecord.data() gives it
    assert backend.state_store().unstash("run2-1") == text
    stored = stash_bytes(backend, "run2-1")
    assert stored[:2] == b"\x1f\x8b" and len(stored) * 10 < len(text)  # a large change's parts: 109 MB -> 3 MB
    stash_bytes(backend, "run3-1", b'{"runId":"run3","opened":["\xe2\x88\x86"]}')  # written plain, before gzip
    assert store.unstash("run3-1") == '{"runId":"run3","opened":["∆"]}'
    stash_bytes(backend, "run4-1", gzip.compress(text.encode())[:-40])  # cut short
    with pytest.raises(ValueError, match="damaged"):  # what the outbox dead-letters, as it does damaged JSON
        store.unstash("run4-1")


# -- the chain, serialised once ---------------------------------------------------------------------------------
def test_chain_text_gives_the_same_record_line_and_hash_as_chain_next() -> None:
    from datetime import UTC, datetime

    record: dict[str, Any] = {"runId": "r", "opened": [{"vnets": ["a", "ß"], "n": 1.5}], "z": None, "a": True}
    first = chain_next(None, record, recorded_at=datetime(2026, 1, 1, tzinfo=UTC))
    stored, line = chain_text(None, EncodedRecord.of(record), recorded_at=datetime(2026, 1, 1, tzinfo=UTC))
    assert stored == first and line == canonical_json(first)
    second = chain_next(first, record, recorded_at=datetime(2026, 1, 2, tzinfo=UTC))
    import hashlib

    prev = (first["seq"], hashlib.sha256(line.encode()).hexdigest())
    stored2, line2 = chain_text(prev, EncodedRecord.of(record), recorded_at=datetime(2026, 1, 2, tzinfo=UTC))
    assert stored2 == second and line2 == canonical_json(second)


def test_an_append_after_our_own_does_not_read_the_last_line_back(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import shared.adapters.store.audit as audit_module

    log = LocalAuditLog(tmp_path)
    log.append({"runId": "r1"})

    def no_reading(*_: Any) -> None:
        raise AssertionError("the last line was read back")

    monkeypatch.setattr(audit_module, "_last_line", no_reading)
    log.append({"runId": "r2"})
    # Another writer appends meanwhile: the tail no longer matches the file, so the line is read after all.
    monkeypatch.undo()
    LocalAuditLog(tmp_path).append({"runId": "other"})
    log.append({"runId": "r3"})
    from shared.adapters.store import verify_audit

    result = verify_audit(LocalAuditLog(tmp_path).lines())
    assert result.ok and result.count == 4


def test_a_seeded_tail_is_trusted_only_while_the_file_has_its_size(tmp_path: Path) -> None:
    from shared.adapters.store import verify_audit

    writer = LocalAuditLog(tmp_path)
    writer.append({"runId": "r1"})
    tail = writer.tail
    assert isinstance(tail, ChainTail) and tail.seq == 1
    writer.append({"runId": "r2"})
    stale = LocalAuditLog(tmp_path)
    stale.seed_tail(tail)  # an older tail (from a state written before r2): the size differs, so it is not used
    stale.append({"runId": "r3"})
    result = verify_audit(LocalAuditLog(tmp_path).lines())
    assert result.ok and result.count == 3


def test_a_projection_written_ahead_is_the_one_the_head_names(backend: Backend,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    store = backend.state_store()
    etag = store.save(big_state(50, seq=1), etag=None)
    writes: list[str] = []
    real = type(store)._write_projection

    def counted(self: Any, key: str, resources: Any, *data: Any) -> str:
        writes.append(key)
        return real(self, key, resources, *data)

    monkeypatch.setattr(type(store), "_write_projection", counted)
    new = big_state(60, seq=2, digest="c" * 64)
    store.prewrite("c" * 64, new.resources)  # the run knows its copy: written while it decides
    store.prewrite("c" * 64, new.resources)  # asked twice: written once
    store.save(new, etag=etag)
    assert writes == ["c" * 64]  # save waited for the background write instead of writing again
    state, _ = backend.state_store().load()  # a new instance reads it back intact (its hash is in the head)
    assert state is not None and state.working_copy_ok and state.resources == new.resources


def test_a_failed_write_ahead_is_written_again_by_the_save(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    store = backend.state_store()
    real = type(store)._write_projection
    calls: list[int] = []

    def flaky(self: Any, key: str, resources: Any, *data: Any) -> str:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("disk full")  # the background write fails
        return real(self, key, resources, *data)

    monkeypatch.setattr(type(store), "_write_projection", flaky)
    state = big_state(30, seq=1, digest="d" * 64)
    store.prewrite("d" * 64, state.resources)
    store.save(state, etag=None)
    assert len(calls) == 2
    loaded, _ = backend.state_store().load()
    assert loaded is not None and loaded.working_copy_ok and loaded.resources == state.resources
