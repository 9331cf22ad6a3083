"""The committed state is checked on every run's load, on a local store and on Azurite: a state rolled back to an
older copy (behind the audit chain), or a working copy edited under a warm instance, is refused loudly and rebuilt
announcing nothing; a state ahead of the chain (its records still in the outbox) is not. `audit verify` sees any
record cut from the end of the log. Through the function entry points, with the chat stand-ins and simulated time.
"""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.store import audit_verify_main, store_from_settings
from shared.app.auditor import RunTrigger
from tests.builders import lab
from tests.chat_standins import ChatService
from tests.e2e import test_auditor_health as health
from tests.e2e.test_auditor_health import Rig, SimTime, health_posts, transit

time, services = health.time, health.services  # the same fixtures: simulated time, the Slack and Teams stand-ins


class Store:
    """One store (a local folder or Azurite containers) as the app settings name it, and what an intruder does."""

    def __init__(self, folder: Path, connection_string: str | None = None) -> None:
        self.folder = folder
        self.azure = connection_string is not None
        suffix = uuid.uuid4().hex[:12]
        self.settings = ({"AuditorStorage": connection_string, "STATE_CONTAINER": f"state-{suffix}",
                          "AUDIT_CONTAINER": f"audit-{suffix}", "RECHECK_QUEUE": f"recheck-{suffix}"}
                         if connection_string else {"STORE_DIR": str(folder)})

    def stores(self) -> tuple[Any, Any]:
        state, audit, _ = store_from_settings(self.settings)
        return state, audit

    def _container(self, name: str) -> Any:
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.settings["AuditorStorage"]).get_container_client(name)

    def head(self) -> bytes:
        if not self.azure:
            return (self.folder / "state.json").read_bytes()
        data: bytes = self._container(self.settings["STATE_CONTAINER"]).download_blob("state.json.gz").readall()
        return data

    def put_head(self, data: bytes) -> None:
        if not self.azure:
            (self.folder / "state.json").write_bytes(data)
        else:
            self._container(self.settings["STATE_CONTAINER"]).upload_blob("state.json.gz", data, overwrite=True)

    def delete_head(self) -> None:
        if not self.azure:
            (self.folder / "state.json").unlink()
        else:
            self._container(self.settings["STATE_CONTAINER"]).delete_blob("state.json.gz")

    def edit_working_copy(self, edit: Callable[[list[Any]], list[Any]]) -> None:
        """Edit the committed projection in place, as someone with write access to the store would."""
        if not self.azure:
            [path] = self.folder.glob("topology-*.json")
            path.write_text(json.dumps(edit(json.loads(path.read_text()))))
            return
        container = self._container(self.settings["STATE_CONTAINER"])
        [name] = [b.name for b in container.list_blobs(name_starts_with="topology/")]
        resources = json.loads(gzip.decompress(container.download_blob(name).readall()))
        container.upload_blob(name, gzip.compress(json.dumps(edit(resources)).encode()), overwrite=True)

    def without_last_lines(self, count: int) -> dict[str, str]:
        """Settings naming the log with its last `count` lines cut (locally in place; in Azure, where the audit
        container takes appends only, as a copy in a new container, as someone with control-plane rights could)."""
        state, audit = self.stores()
        lines = list(audit.lines())[:-count]
        if not self.azure:
            for path in self.folder.glob("audit-*.jsonl"):
                path.write_text("".join(f"{line.text}\n" for line in lines if line.file == path.name))
            return self.settings
        copy = f"cut-{uuid.uuid4().hex[:12]}"
        container = self._container(copy)
        container.create_container()
        for file in sorted({line.file for line in lines}):
            blob = container.get_blob_client(file)
            blob.create_append_blob()
            blob.append_block("".join(f"{line.text}\n" for line in lines if line.file == file).encode())
        return {**self.settings, "AUDIT_CONTAINER": copy}


@pytest.fixture(params=["local", "azurite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "local":
        return Store(tmp_path)
    return Store(tmp_path, request.getfixturevalue("azurite").connection_string)


def verify(settings: dict[str, str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = audit_verify_main(None, settings=settings)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1, out  # one line, never a traceback
    return code, out[0]


def test_a_state_rolled_back_to_an_older_copy_is_refused_and_announces_nothing(
        store: Store, services: dict[str, ChatService], time: SimTime, capsys: pytest.CaptureFixture[str]) -> None:
    rig = Rig(store.folder, services, time, stores=store.stores)
    rig.reconcile()  # the baseline: run 1
    rig.event(lab((1, 2)))  # run 2: hub-01 ⇄ hub-02 opens
    older = store.head()
    rig.event(lab((1, 2, 3)))  # run 3: hub-03 opens to both
    assert len(transit(services["slack"].accepted)) == 2
    store.put_head(older)  # someone puts back the copy of run 2
    code, line = verify(store.settings, capsys)
    assert code == 1 and "run 2, but the audit chain shows run 3 was committed" in line
    time.advance(minutes=15)
    rig.reconcile()  # the same (warm) instance
    assert rig.health() == ["state-refused"]
    assert len(transit(services["slack"].accepted)) == 2  # hub-03's opening is not announced a second time
    assert any("refused and rebuilt" in p for p in health_posts(services["teams"].accepted))
    [rebuilt] = [r for r in rig.records() if r.get("stateRebuilt")]
    assert rebuilt["baseline"] is True and "replaced by an older copy" in rebuilt["refused"]
    assert rebuilt["stateSequence"] == 4  # the numbering goes on after what the chain shows
    time.advance(minutes=15)
    Rig(store.folder, services, time, stores=store.stores).reconcile()  # a cold instance trusts the rebuilt state
    assert rig.health() == ["state-refused"] and rig.health("cleared") == ["state-refused"]
    assert verify(store.settings, capsys)[0] == 0


def test_a_rollback_stays_refused_when_the_first_run_after_it_cannot_read(
        store: Store, services: dict[str, ChatService], time: SimTime) -> None:
    rig = Rig(store.folder, services, time, stores=store.stores)
    rig.reconcile()
    rig.event(lab((1, 2)))
    older = store.head()
    rig.event(lab((1, 2, 3)))
    store.put_head(older)
    fresh = Rig(store.folder, services, time, stores=store.stores)  # a new process, nothing seen yet
    fresh.reader.resources, fresh.reader.failure = lab((1, 2, 3)), "throttled"
    time.advance(minutes=15)
    fresh.reconcile()  # refused, but the read fails: nothing is rebuilt; its record still shows run 3
    assert fresh.records()[-1]["outcome"] == "incomplete read" and fresh.records()[-1]["stateSeen"] == 3
    fresh.reader.failure = None
    time.advance(minutes=15)
    fresh.reconcile()
    assert fresh.health() == ["state-refused"] and len(transit(services["slack"].accepted)) == 2


def test_a_state_ahead_of_the_audit_chain_is_not_refused(
        store: Store, services: dict[str, ChatService], time: SimTime) -> None:
    rig = Rig(store.folder, services, time, stores=store.stores)
    rig.reconcile()

    def die(*_: object, **__: object) -> Any:
        raise RuntimeError("the process dies right after the commit")

    rig.auditor._process_outbox = die  # type: ignore[method-assign]
    rig.reader.resources = lab((1, 2))
    with pytest.raises(RuntimeError):
        rig.auditor.run(RunTrigger(kind="reconcile"))
    # Run 2 is committed; its audit record still waits in the outbox: the chain's end shows run 1 only.
    assert max(r.get("stateSequence") or 0 for r in rig.records()) == 1
    fresh = Rig(store.folder, services, time, stores=store.stores)
    fresh.reader.resources = lab((1, 2))
    time.advance(seconds=65)
    fresh.reconcile()
    assert fresh.health() == [] and not [r for r in fresh.records() if r.get("stateRebuilt")]
    assert len(transit(services["slack"].accepted)) == 1


def test_a_working_copy_edited_under_a_warm_instance_is_refused_like_in_a_cold_one(
        store: Store, services: dict[str, ChatService], time: SimTime) -> None:
    rig = Rig(store.folder, services, time, stores=store.stores)
    rig.reader.resources = lab((1, 2))
    rig.reconcile()
    rig.reconcile()  # warm: the instance holds the parsed copy
    # Someone removes gateway 2 from the stored copy: diffed blindly, a later change would "close" hub-01/02.
    store.edit_working_copy(lambda resources: [r for r in resources if r["name"] != "ergw-02"])
    time.advance(minutes=15)
    rig.reconcile()  # the same instance, whose cached copy is still the right one
    assert rig.health() == ["state-refused"]
    [rebuilt] = [r for r in rig.records() if r.get("stateRebuilt")]
    assert rebuilt["baseline"] is True and "working copy" in rebuilt["refused"] and not rebuilt["closed"]
    assert transit(services["slack"].accepted) == []
    time.advance(minutes=15)
    rig.reconcile()  # the topology did not move: the rebuild wrote the copy anew, so it is not refused again
    assert rig.health() == ["state-refused"] and rig.health("cleared") == ["state-refused"]
    rig.event(lab((1, 2, 3)))  # a real change is announced as before
    assert len(transit(services["slack"].accepted)) == 1


@pytest.mark.parametrize("cut", [1, 2, 4])
def test_audit_verify_sees_any_record_cut_from_the_end_of_the_log(
        store: Store, services: dict[str, ChatService], time: SimTime, capsys: pytest.CaptureFixture[str],
        cut: int) -> None:
    rig = Rig(store.folder, services, time, stores=store.stores)
    rig.reconcile()
    rig.event(lab((1, 2)))
    services["slack"].mode = "down"
    for _ in range(2):
        time.advance(minutes=15)
        rig.reconcile()  # no-change records come last (the retries wait out their backoff)
    kinds = [r["outcome"] for r in rig.records()]
    assert len(kinds) > cut and kinds[-1] != "committed"
    assert verify(store.settings, capsys)[0] == 0
    code, line = verify(store.without_last_lines(cut), capsys)
    assert code == 1, kinds
    assert "records at the end of the log are missing" in line and f"({cut} record" in line


def test_audit_verify_answers_one_line_on_a_damaged_anchor(
        tmp_path: Path, services: dict[str, ChatService], time: SimTime, capsys: pytest.CaptureFixture[str]) -> None:
    store = Store(tmp_path)
    Rig(store.folder, services, time, stores=store.stores).reconcile()
    for damage in (b"\xff\xfegarbage", b'{"seq": "x"}', b"[]"):
        (store.folder / "audit-anchor.json").write_bytes(damage)
        code, line = verify(store.settings, capsys)
        assert code == 1 and "audit anchor" in line


def test_audit_verify_says_when_the_anchor_is_gone(
        tmp_path: Path, services: dict[str, ChatService], time: SimTime, capsys: pytest.CaptureFixture[str]) -> None:
    store = Store(tmp_path)
    rig = Rig(store.folder, services, time, stores=store.stores)
    rig.reconcile()
    rig.reconcile()
    (store.folder / "audit-anchor.json").unlink()  # deleted, or the audit files verified on their own
    code, line = verify(store.settings, capsys)
    assert code == 0 and "no audit anchor next to it: records cut from its end cannot be seen" in line


def test_audit_verify_answers_one_line_when_the_store_cannot_be_read(
        tmp_path: Path, services: dict[str, ChatService], time: SimTime, capsys: pytest.CaptureFixture[str]) -> None:
    store = Store(tmp_path)
    Rig(store.folder, services, time, stores=store.stores).reconcile()
    anchor = store.folder / "audit-anchor.json"
    anchor.unlink()
    anchor.mkdir()  # a directory where the anchor file belongs
    for settings in (store.settings, {"AuditorStorage": "not a connection string"}):
        assert audit_verify_main(None, settings=settings) == 2
        out, err = capsys.readouterr()
        assert out == "" and len(err.splitlines()) == 1 and err.startswith("error: cannot read the store: ")


def test_a_deleted_state_is_refused_and_rebuilt_after_the_chain(
        store: Store, services: dict[str, ChatService], time: SimTime, capsys: pytest.CaptureFixture[str]) -> None:
    rig = Rig(store.folder, services, time, stores=store.stores)
    rig.reconcile()
    rig.event(lab((1, 2)))
    store.delete_head()  # the outbox and the pending changes go with it
    assert verify(store.settings, capsys)[0] == 0  # the log on its own is intact
    time.advance(minutes=15)
    rig.reconcile()
    assert rig.health() == ["state-refused"] and len(transit(services["slack"].accepted)) == 1
    [rebuilt] = [r for r in rig.records() if r.get("stateRebuilt")]
    assert "the committed state is missing" in rebuilt["refused"] and rebuilt["stateSequence"] == 3
