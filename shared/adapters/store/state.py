"""The committed state: a local folder (offline default) or blobs in Azure Storage, the head written under an ETag.

Layout (format 2): a small head (sequence, digest, processed event ids, outbox, pending, the audit chain's tail)
and the transit projection (`resources`, the working copy) in its own file/blob named by its key (the topology
digest), written only when the digest changes and never rewritten. Audit records waiting in the outbox are not
in the head either: they are stashed in their own file/blob (`stash`, gzipped JSON; a plain one written before
still reads) before the commit that names them.
A state in the old single-document format still loads; the next commit writes the new layout.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import logging
import os
import re
import threading
import time
import uuid
import zlib
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from shared.adapters.store._azure import _LazyContainer
from shared.adapters.store._local import _flock, _replace_atomically
from shared.app.background import LazyPool
from shared.app.ports import CommittedState, HeadHook, JsonDict, StateConflict, StateCorrupt
from shared.core.chain import canonical_json
from shared.core.collector import collector_paused

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.storage.blob import BlobClient

logger = logging.getLogger(__name__)

DEFAULT_STATE_CONTAINER = "er-transit-state"
STATE_BLOB_NAME = "state.json.gz"
HEAD_FORMAT = 2
# A projection no head names any more is deleted once it is this old: a run that wrote it moments ago and is
# about to commit its head (or one still reading the previous head) must not lose it.
PROJECTION_GRACE_SECONDS = 600
# Working copies kept parsed in memory (content-addressed, so never stale). A copy patched by an event shares all
# but a few resource objects with the one it came from, so keeping several costs little; in a burst, concurrent
# runs commit one after another, and a run that lost a race re-reads the copy the winner just wrote.
_KEEP_COPIES = 8
_NAME_RE = re.compile(r"[A-Za-z0-9_.:-]{1,200}")


def projection_key(state: CommittedState) -> str:
    """The name of the state's projection: its topology digest (or, without one, the hash of its content)."""
    if re.fullmatch(r"[0-9a-f]{64}", state.topology_digest or ""):
        return state.topology_digest
    return hashlib.sha256(canonical_json(state.resources).encode("utf-8")).hexdigest()


def _head(state: CommittedState, key: str, content_sha: str, previous_key: str | None) -> bytes:
    head = state.to_json()
    del head["resources"]
    head.update({"topology": key, "topologySha256": content_sha, "previousTopology": previous_key})
    return json.dumps({"format": HEAD_FORMAT, "writeId": uuid.uuid4().hex, "head": head},
                      separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _projection_bytes(resources: list[JsonDict]) -> bytes:
    # Compact, keys sorted: a committed copy is in id order, so these are the bytes its topology digest hashes
    # (auditor.canonical_digest), and a process that holds them can patch them for the next digest instead of
    # writing the whole copy again (focus.splice_canonical). orjson writes a 20k-VNet copy (28 MB) several times
    # faster than the standard library's C encoder; what it refuses (integers past 64 bits, lone surrogates) goes
    # through the standard library, spelled as canonical_digest spells it.
    try:
        return orjson.dumps(resources, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(resources, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
            "utf-8", "surrogatepass")


_PREWRITE_LOCK = threading.Lock()  # guards each store's pending background writes
_CANONICAL_LOCK = threading.Lock()  # guards each store's kept canonical bytes (read by runs, set by the writer)
# One thread for the process's background projection writes (one run commits at a time per process).
_PREWRITER = LazyPool(1, "projection-writer")


def _packed(text: str | bytes) -> bytes:
    """A stashed record as stored: its JSON (given as text, or already as UTF-8 bytes), gzipped at the fastest
    level. A large change stashes 109 MB of pair documents, which gzip to 3 MB in 0.23 s of work (done by the
    stashing threads, with the GIL released): writing or uploading them whole took longer."""
    return gzip.compress(text.encode("utf-8") if isinstance(text, str) else text, compresslevel=1, mtime=0)


def _unpacked(data: bytes) -> str:
    """The stashed record's JSON text; a stash written plain (before stashes were gzipped) is read as it is.
    A damaged one raises ValueError, as damaged JSON does: the record cannot be appended (dead-lettered)."""
    if data[:2] != b"\x1f\x8b":
        return data.decode("utf-8")
    try:
        return gzip.decompress(data).decode("utf-8")
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"the stashed record is damaged ({exc})") from None


def _check_name(name: str) -> str:
    if not _NAME_RE.fullmatch(name):
        raise ValueError(f"not a valid stash name: {name!r}")
    return name.replace(":", "-")


class _WorkingCopies:
    """Parsed projections by key (content-addressed: a key always names the same content)."""

    def __init__(self) -> None:
        self._copies: OrderedDict[str, list[JsonDict]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> list[JsonDict] | None:
        with self._lock:
            copy = self._copies.get(key)
            if copy is not None:
                self._copies.move_to_end(key)
            return copy

    def drop(self, key: str) -> None:
        with self._lock:
            self._copies.pop(key, None)

    def put(self, key: str, resources: list[JsonDict]) -> None:
        with self._lock:
            self._copies[key] = resources
            self._copies.move_to_end(key)
            while len(self._copies) > _KEEP_COPIES:
                self._copies.popitem(last=False)


def _decode_head(document: Mapping[str, Any]) -> tuple[JsonDict, bool]:
    """(state JSON, is the new layout). The old layout holds the whole state, resources included."""
    if document.get("format") == HEAD_FORMAT and isinstance(document.get("head"), dict):
        return dict(document["head"]), True
    if isinstance(document.get("state"), dict):  # old local layout: {"writeId", "state"}
        return dict(document["state"]), False
    return dict(document), False  # old blob layout: the state itself


def chain_sequence(record: Mapping[str, Any] | None) -> int | None:
    """The highest committed run an audit record shows: its own commit's `stateSequence`, or `stateSeen` (the
    committed run its writer had seen). None: the record says neither (an older record, a damage record)."""
    if not isinstance(record, Mapping):
        return None
    numbers = [v for v in (record.get("stateSequence"), record.get("stateSeen"))
               if isinstance(v, int) and not isinstance(v, bool)]
    return max(numbers) if numbers else None


class _Layout(ABC):
    """What both stores share: head encoding, the projection cache, the stash names, the load/verify logic."""

    _copies: _WorkingCopies
    _etag_meta: dict[str, tuple[str, str]]  # head ETag -> (projection key, its SHA-256), for heads seen here
    _copy_ids: dict[str, str]  # projection key -> the stored copy's identity (ETag, or size/mtime/inode) when read
    _bad_keys: set[str]  # projections found damaged or edited: the next commit naming one writes it anew
    _canonical: OrderedDict[str, bytes]  # projection key -> its bytes, when they are its canonical JSON (1 kept)
    # The audit chain's last record (see watch_chain); the head ETag last found consistent with it (or written
    # over such a head by this process), which a load then need not check again.
    _chain_end: Callable[[], Mapping[str, Any] | None] | None = None
    _refuse_missing = False
    _trusted: str | None = None
    #: The sequence of the committed state this store last loaded or saved (the auditor stamps its audit records
    #: with it, as `stateSeen`: a state older than that was rolled back).
    sequence_seen: int | None = None

    def watch_chain(self, last_record: Callable[[], Mapping[str, Any] | None], *,
                    refuse_missing: bool = True) -> None:
        """Check every verified load against the audit chain's end (`last_record` reads only the last record): a
        state older than a run the chain shows was committed is refused (StateCorrupt), as a tampered one is; so
        is a missing state (deleted) when the chain shows a committed run, unless `refuse_missing` is False."""
        self._chain_end = last_record
        self._refuse_missing = refuse_missing

    def _chain_sequence(self) -> int | None:
        if self._chain_end is None:
            return None
        try:
            return chain_sequence(self._chain_end())
        except Exception as exc:  # the check is a guard: an unreadable log is `audit verify`'s to report
            logger.warning("could not read the audit chain's end to check the state against it (%s)",
                           type(exc).__name__)
            return None

    def _agrees_with_chain(self, state: CommittedState, etag: str | None) -> bool:
        """False: a newer head was committed while we checked (read again). StateCorrupt: rolled back.

        Audit records are appended after their commit (through the outbox), so the chain may lag behind the
        state; it is never ahead of it: every record shows a run that was committed before it was written.
        """
        if self._chain_end is None or etag is None or etag == self._trusted:
            return True
        committed = self._chain_sequence()
        if committed is not None and committed > state.sequence:
            if self._read_head()[1] != etag:
                return False  # committed meanwhile (and its record appended): not a rollback
            raise StateCorrupt(f"the committed state is at run {state.sequence}, but the audit chain shows run "
                               f"{committed} was committed: the state was replaced by an older copy",
                               etag=etag, sequence=committed)
        self._trusted = etag
        return True

    def _appeared_meanwhile(self) -> bool:
        """There is no head. False: none was ever committed (a first run). True: one was committed while we looked.
        StateCorrupt: the audit chain shows a committed run, so the state was deleted."""
        committed = self._chain_sequence()
        if not committed:
            return False
        if self._read_head()[0] is not None:
            return True
        raise StateCorrupt(f"the committed state is missing, but the audit chain shows run {committed} was "
                           "committed: it was deleted", etag=None, sequence=committed)

    def _wrote(self, replaced: str | None, new_etag: str, sequence: int) -> None:
        """After a save: a head written over a trusted one (or over none) is trusted too."""
        self._trusted = new_etag if replaced is None or replaced == self._trusted else None
        self.sequence_seen = sequence

    _prewrites: OrderedDict[str, Future[str]]

    def prewrite(self, key: str, resources: list[JsonDict], data: bytes | None = None) -> None:
        """Start writing the projection `key` (the topology digest a run is about to commit) in the background.

        A run knows its new working copy long before it commits it; writing the copy (28 MB at 20k VNets: a file
        written and synced, or a blob compressed and uploaded) on a thread meanwhile takes it off the run's path,
        since the interpreter lets a thread write and sync while the run decides. `save` then waits for it (and
        writes it itself if the thread failed). A copy written for a run that then commits nothing is an orphan,
        retired like any projection no head names. `resources` must not change afterwards (a committed copy never
        does). `data`: the copy's bytes as _projection_bytes writes them, when the caller has them already."""
        if not re.fullmatch(r"[0-9a-f]{64}", key):
            return
        with _PREWRITE_LOCK:
            if key in self._prewrites:
                return
            self._prewrites[key] = _PREWRITER.get().submit(self._write_projection, key, resources, data)
            while len(self._prewrites) > 4:
                self._prewrites.popitem(last=False)

    def _projection_sha(self, state: CommittedState, key: str, known: tuple[str, str] | None) -> str:
        """The SHA-256 the new head records for its projection `key`, the projection written first if need be.
        `known`: (key, SHA-256) of the head being replaced, when this store saw it."""
        if not state.working_copy_ok:
            return _damaged_sha(known, key)
        if known is not None and known[0] == key and key not in self._bad_keys:
            return known[1]  # the head we replace names the same projection: nothing to write
        return self._projection_written(key, state.resources)

    def _projection_written(self, key: str, resources: list[JsonDict]) -> str:
        """The SHA-256 of the stored projection `key`: the one a `prewrite` wrote, else written now."""
        with _PREWRITE_LOCK:
            future = self._prewrites.pop(key, None)
        if future is not None:
            try:
                return future.result()
            except Exception as exc:  # written again below: the same error then reaches the caller
                logger.warning("projection %s not written in the background (%s); writing it now", key,
                               type(exc).__name__)
        return self._write_projection(key, resources)

    @abstractmethod
    def _write_projection(self, key: str, resources: list[JsonDict], data: bytes | None = None) -> str:
        """Store the projection `key` (once: an existing one is kept unless found damaged); its SHA-256. `data`:
        its bytes, when the caller has them (else written from `resources`)."""

    def canonical_bytes(self, key: str) -> bytes | None:
        """The canonical JSON of the copy `key` (what its topology digest hashes), when this process read or wrote
        it lately: bytes whose SHA-256 is the key are that JSON, whatever wrote them."""
        with _CANONICAL_LOCK:
            return self._canonical.get(key)

    def _keep_canonical(self, key: str, raw: bytes, sha: str) -> None:
        if sha != key:  # written before projections were stored canonically, or not a digest-named copy
            return
        with _CANONICAL_LOCK:
            self._canonical[key] = raw
            self._canonical.move_to_end(key)
            while len(self._canonical) > 1:  # the copy read or written last (28 MB at 20k VNets): the next event's
                self._canonical.popitem(last=False)

    def _remember(self, etag: str, key: str, content_sha: str) -> None:
        if len(self._etag_meta) > 64:
            self._etag_meta.clear()
        self._etag_meta[etag] = (key, content_sha)

    @abstractmethod
    def _read_head(self) -> tuple[bytes | None, str | None]:
        """The head's bytes and ETag, or (None, None) when there is no state yet."""

    @abstractmethod
    def _read_projection(self, key: str) -> tuple[bytes | None, str | None]:
        """The projection blob/file named `key` (None when it is missing) and its identity as stored (ETag, or
        size/mtime/inode): a cached copy is trusted only while the stored one keeps that identity."""

    @abstractmethod
    def _projection_identity(self, key: str) -> str | None:
        """The stored projection's identity (one HEAD request or stat), None when it is missing."""

    def load(self, *, verify: bool = True, on_head: HeadHook | None = None
             ) -> tuple[CommittedState | None, str | None]:
        """See StateStore.load. `on_head(etag, head)`: called when a head is read whose working copy is about to be
        read from storage (not when this process holds it), with the head's ETag and its state fields; an event
        starts its ARM read there, while the copy (28 MB at 20k VNets) is read."""
        try:
            return self._load(verify, on_head)
        except StateCorrupt as exc:
            if exc.sequence is None:
                exc.sequence = self._chain_sequence()  # the rebuild goes on after what the chain shows
            if exc.sequence is not None:
                # A committed run the chain shows: this run's records say so too, so a rollback cannot hide behind
                # a record written without it (a run whose read fails before the rebuild commits).
                self.sequence_seen = max(self.sequence_seen or 0, exc.sequence)
            raise

    def _load(self, verify: bool, on_head: HeadHook | None = None) -> tuple[CommittedState | None, str | None]:
        for _ in range(5):
            content, etag = self._read_head()
            if content is None:
                if verify and self._refuse_missing and self._appeared_meanwhile():
                    continue  # a first state was committed while we looked: read it
                return None, None
            try:
                loaded_state = self._load_head(content, etag, verify, on_head)
            except (ValueError, TypeError, AttributeError, KeyError, RecursionError) as exc:
                # Garbage, truncated or hand-edited: refused loudly (StateCorrupt), never a raw decoding error.
                raise StateCorrupt(f"the committed state cannot be read ({type(exc).__name__}: {str(exc)[:200]})",
                                   etag=etag) from None
            if loaded_state is not None and (not verify or self._agrees_with_chain(loaded_state, etag)):
                self.sequence_seen = loaded_state.sequence
                return loaded_state, etag
        raise StateConflict("the committed state kept changing while it was read")

    def _load_head(self, content: bytes, etag: str | None, verify: bool = True, on_head: HeadHook | None = None
                   ) -> CommittedState | None:
        """The state a head names (None: a newer head was committed meanwhile, read again)."""
        with collector_paused():
            data, layered = _decode_head(json.loads(content))
            if not layered:
                return CommittedState.from_json(data)
            key = str(data.get("topology") or "")
            if etag is not None:
                self._remember(etag, key, str(data.get("topologySha256") or ""))
            resources = self._copies.get(key)
            if resources is not None and verify and self._projection_identity(key) != self._copy_ids.get(key):
                # A warm process checks its cached copy is still the stored one (one HEAD request or stat, no
                # re-read): a copy edited or replaced meanwhile is read and checked again, as a cold process does.
                resources = None
            if resources is None:
                if on_head is not None:
                    on_head(etag, data)
                raw, identity = self._read_projection(key)
                if raw is None:
                    if self._read_head()[1] != etag:
                        return None  # a newer head was committed (and our projection retired): read it again
                    return self._damaged(data, key, f"its projection {key} is missing")
                raw_sha = hashlib.sha256(raw).hexdigest()
                if raw_sha != data.get("topologySha256"):
                    return self._damaged(data, key, f"its projection {key} does not match the head's hash")
                try:
                    # orjson: a 20k-VNet copy (28 MB) loads in half the standard library's time on a cold start;
                    # what it refuses (lone surrogates, written with surrogatepass) the standard library reads.
                    try:
                        loaded = orjson.loads(raw)
                    except orjson.JSONDecodeError:
                        loaded = json.loads(raw.decode("utf-8", "surrogatepass"))
                except ValueError:
                    return self._damaged(data, key, f"its projection {key} is not valid JSON")
                if not isinstance(loaded, list):
                    return self._damaged(data, key, f"its projection {key} is not a list")
                resources = loaded
                self._copies.put(key, resources)
                self._keep_canonical(key, raw, raw_sha)
                if identity is not None:
                    self._copy_ids[key] = identity
        return CommittedState.from_json({**data, "resources": resources})

    def _damaged(self, data: JsonDict, key: str, why: str) -> CommittedState:
        self._bad_keys.add(key)  # the next commit naming this key writes its projection anew
        self._copies.drop(key)  # every later load of this head (a re-read within the run too) sees the damage
        logger.warning("committed working copy is damaged (%s); the next run reads the whole scope again", why)
        return replace_state(CommittedState.from_json({**data, "resources": []}), working_copy_ok=False)


def replace_state(state: CommittedState, **changes: Any) -> CommittedState:
    from dataclasses import replace

    return replace(state, **changes)


class LocalStateStore(_Layout):
    """The committed state in a folder: `state.json` (the head; its ETag is the SHA-256 of its bytes),
    `topology-<key>.json` (the projections) and `pending-audit/<name>.json` (stashed audit records, gzipped)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self._folder = Path(folder)
        self._path = self._folder / "state.json"
        self._lock_path = self._folder / "state.lock"
        self._stash_dir = self._folder / "pending-audit"
        self._copies = _WorkingCopies()
        self._etag_meta = {}
        self._copy_ids = {}
        self._bad_keys = set()
        self._prewrites = OrderedDict()
        self._canonical = OrderedDict()

    def _read(self) -> bytes | None:
        try:
            return self._path.read_bytes()
        except FileNotFoundError:
            return None

    @staticmethod
    def _etag(content: bytes) -> str:
        return '"' + hashlib.sha256(content).hexdigest() + '"'

    def _read_head(self) -> tuple[bytes | None, str | None]:
        # os.replace swaps the file atomically, so a read without the lock sees one whole version.
        content = self._read()
        return (content, self._etag(content)) if content is not None else (None, None)

    def _projection_path(self, key: str) -> Path:
        return self._folder / f"topology-{key}.json"

    def _projection_identity(self, key: str) -> str | None:
        try:
            stat = self._projection_path(key).stat()
        except OSError:
            return None
        return f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ino}"

    def _read_projection(self, key: str) -> tuple[bytes | None, str | None]:
        identity = self._projection_identity(key)  # before reading: a change after it is seen by the next load
        try:
            return self._projection_path(key).read_bytes(), identity
        except (FileNotFoundError, OSError):
            return None, None

    def save(self, state: CommittedState, *, etag: str | None) -> str:
        key = projection_key(state)
        self._folder.mkdir(parents=True, exist_ok=True)
        known = self._etag_meta.get(etag or "")
        content_sha = self._projection_sha(state, key, known)
        with _flock(self._lock_path):
            current = self._read()
            if current is None and etag is not None:
                raise StateConflict(f"no committed state exists any more (expected ETag {etag})")
            if current is not None and (etag is None or self._etag(current) != etag):
                raise StateConflict("the committed state changed since it was read")
            # The head we replace is the one we loaded (same ETag): its key is known without parsing it again.
            previous_key = known[0] if known is not None else _key_of(current)
            # writeId (in the head) makes every commit's bytes (and so its ETag) unique, even when the state repeats.
            head = _head(state, key, content_sha, previous_key if previous_key != key else None)
            _replace_atomically(self._path, head)
        new_etag = self._etag(head)
        self._wrote(etag, new_etag, state.sequence)
        self._remember(new_etag, key, content_sha)
        if state.working_copy_ok:
            self._copies.put(key, state.resources)
        if previous_key != key:
            self._retire({key, previous_key or ""})
        return new_etag

    def _write_projection(self, key: str, resources: list[JsonDict], data: bytes | None = None) -> str:
        path = self._projection_path(key)
        if path.exists() and key not in self._bad_keys:
            existing = path.read_bytes()
            sha = hashlib.sha256(existing).hexdigest()
            self._keep_canonical(key, existing, sha)
            return sha
        # Written once: the key names this content for good. One found damaged or edited is written anew (the
        # head naming it was refused, so no reader relies on its bytes).
        raw = data if data is not None else _projection_bytes(resources)
        self._folder.mkdir(parents=True, exist_ok=True)
        _replace_atomically(path, raw)
        self._bad_keys.discard(key)
        identity = self._projection_identity(key)
        if identity is not None:
            self._copy_ids[key] = identity
        sha = hashlib.sha256(raw).hexdigest()
        self._keep_canonical(key, raw, sha)
        return sha

    def _retire(self, keep: set[str]) -> None:
        cutoff = time.time() - PROJECTION_GRACE_SECONDS
        for path in self._folder.glob("topology-*.json"):
            if path.name[len("topology-"):-len(".json")] in keep:
                continue
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()

    # -- stashed audit records ------------------------------------------------------------------------------
    def stash(self, name: str, text: str | bytes) -> None:
        self._stash_dir.mkdir(parents=True, exist_ok=True)
        _replace_atomically(self._stash_dir / f"{_check_name(name)}.json", _packed(text))

    def unstash(self, name: str) -> str | None:
        try:
            return _unpacked((self._stash_dir / f"{_check_name(name)}.json").read_bytes())
        except FileNotFoundError:
            return None

    def drop(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self._stash_dir / f"{_check_name(name)}.json").unlink()


def _damaged_sha(known: tuple[str, str] | None, key: str) -> str:
    """The projection hash a head keeps when its state's copy could not be loaded intact (a health or outbox
    change written meanwhile): what the refused head named, so the next load finds the copy damaged again. Such
    a state's (empty) resources are never written or cached as its copy."""
    return known[1] if known is not None and known[0] == key else ""


def _key_of(head: bytes | None) -> str | None:
    if head is None:
        return None
    try:
        data, layered = _decode_head(json.loads(head))
    except ValueError:
        return None
    return str(data.get("topology")) if layered else None


class BlobStateStore(_Layout):
    """The committed state in a container: the head blob (gzip JSON, written with an ETag condition),
    `topology/<key>.json.gz` (projections, created once) and `pending-audit/<name>.json` (stashed records, gzipped)."""

    def __init__(
        self,
        *,
        account_url: str | None = None,
        credential: TokenCredential | str | None = None,
        connection_string: str | None = None,
        container: str = DEFAULT_STATE_CONTAINER,
        blob_name: str = STATE_BLOB_NAME,
    ) -> None:
        self._container = _LazyContainer(
            account_url=account_url, credential=credential, connection_string=connection_string, container=container
        )
        self._blob_name = blob_name
        self._copies = _WorkingCopies()
        self._etag_meta = {}
        self._copy_ids = {}
        self._bad_keys = set()
        self._prewrites = OrderedDict()
        self._canonical = OrderedDict()

    def _blob(self, name: str | None = None) -> BlobClient:
        return self._container.get().get_blob_client(name or self._blob_name)

    @staticmethod
    def _projection_name(key: str) -> str:
        return f"topology/{key}.json.gz"

    def _read_head(self) -> tuple[bytes | None, str | None]:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            downloader = self._blob().download_blob()
        except ResourceNotFoundError:
            return None, None
        etag = str(downloader.properties.etag)
        try:
            content = gzip.decompress(downloader.readall())
        except (OSError, EOFError) as exc:  # not gzip, or cut short: refused, rebuilt by the next complete run
            raise StateCorrupt(f"the committed state cannot be read (not gzip: {exc})", etag=etag) from None
        return content, etag

    def _projection_identity(self, key: str) -> str | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return str(self._blob(self._projection_name(key)).get_blob_properties().etag)
        except ResourceNotFoundError:
            return None

    def _read_projection(self, key: str) -> tuple[bytes | None, str | None]:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            downloader = self._blob(self._projection_name(key)).download_blob()
        except ResourceNotFoundError:
            return None, None
        identity = str(downloader.properties.etag)
        try:
            return gzip.decompress(downloader.readall()), identity
        except (OSError, EOFError):
            return b"", identity  # not gzip: fails the hash check, so the copy counts as damaged

    def save(self, state: CommittedState, *, etag: str | None) -> str:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
        from azure.storage.blob import ContentSettings

        settings = ContentSettings(content_type="application/gzip")
        key = projection_key(state)
        known = self._etag_meta.get(etag or "")
        previous_key = known[0] if known is not None else None
        content_sha = self._projection_sha(state, key, known)
        head = _head(state, key, content_sha, previous_key if previous_key != key else None)
        content = gzip.compress(head, compresslevel=6, mtime=0)
        blob = self._blob()
        try:
            if etag is None:
                result = blob.upload_blob(content, overwrite=False, content_settings=settings)
            else:
                result = blob.upload_blob(
                    content,
                    overwrite=True,
                    content_settings=settings,
                    etag=etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ResourceModifiedError, ResourceExistsError, ResourceNotFoundError) as exc:
            raise StateConflict("the committed state changed since it was read") from exc
        except Exception as exc:
            if getattr(exc, "status_code", None) in (409, 412):
                raise StateConflict("the committed state changed since it was read") from exc
            raise
        logger.debug("state head saved: %s bytes compressed", len(content))
        if state.working_copy_ok:
            self._copies.put(key, state.resources)
        new_etag = str(result["etag"])
        self._wrote(etag, new_etag, state.sequence)
        self._remember(new_etag, key, content_sha)
        if previous_key != key:
            self._retire({key, previous_key or ""})
        return new_etag

    def _write_projection(self, key: str, resources: list[JsonDict], data: bytes | None = None) -> str:
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import ContentSettings

        settings = ContentSettings(content_type="application/gzip")
        raw = data if data is not None else _projection_bytes(resources)
        content_sha = hashlib.sha256(raw).hexdigest()
        try:
            # Created once (never overwritten); mtime=0 keeps the gzip bytes a function of the content alone.
            # Level 1: a 20k-VNet copy (28 MB) compresses in 0.06 s to 1.2 MB; level 6 takes three times as long
            # for 0.9 MB, on every event that changes the copy.
            written = self._blob(self._projection_name(key)).upload_blob(
                gzip.compress(raw, compresslevel=1, mtime=0), overwrite=False, content_settings=settings)
            self._copy_ids[key] = str(written["etag"])
        except ResourceExistsError:
            if key in self._bad_keys:  # found damaged or edited: written anew (its head was refused)
                written = self._blob(self._projection_name(key)).upload_blob(
                    gzip.compress(raw, compresslevel=1, mtime=0), overwrite=True, content_settings=settings)
                self._copy_ids[key] = str(written["etag"])
            else:
                existing = self._read_projection(key)[0] or b""
                content_sha = hashlib.sha256(existing).hexdigest()
                self._keep_canonical(key, existing, content_sha)
                return content_sha
        self._bad_keys.discard(key)
        self._keep_canonical(key, raw, content_sha)
        return content_sha

    def _retire(self, keep: set[str]) -> None:
        from azure.core.exceptions import HttpResponseError

        cutoff = time.time() - PROJECTION_GRACE_SECONDS
        try:
            for blob in self._container.get().list_blobs(name_starts_with="topology/"):
                key = blob.name[len("topology/"):-len(".json.gz")]
                modified = blob.last_modified.timestamp() if blob.last_modified else time.time()
                if key not in keep and modified < cutoff:
                    with contextlib.suppress(HttpResponseError):
                        self._blob(blob.name).delete_blob()
        except HttpResponseError as exc:  # housekeeping only: the next commit tries again
            logger.info("could not retire old projections (%s)", exc.status_code)

    # -- stashed audit records ------------------------------------------------------------------------------
    def stash(self, name: str, text: str | bytes) -> None:
        self._blob(f"pending-audit/{_check_name(name)}.json").upload_blob(_packed(text), overwrite=True)

    def unstash(self, name: str) -> str | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            data: bytes = self._blob(f"pending-audit/{_check_name(name)}.json").download_blob().readall()
        except ResourceNotFoundError:
            return None
        return _unpacked(data)

    def drop(self, name: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        with contextlib.suppress(ResourceNotFoundError):
            self._blob(f"pending-audit/{_check_name(name)}.json").delete_blob()
