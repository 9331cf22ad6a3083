"""Committed state and hash-chained audit log: Azure Storage adapters and local-folder adapters (offline default).

Also the audit chain itself (`chain_next`, `verify_audit`) and `audit_verify_main` for `shared.cli audit verify`.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import json
import logging
import os
import random
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.ports import AuditLog, CommittedState, JsonDict, RecheckQueue, StateConflict, StateStore

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.storage.blob import BlobClient, ContainerClient
    from azure.storage.queue import QueueClient

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]

DEFAULT_STATE_CONTAINER = "er-transit-state"
DEFAULT_AUDIT_CONTAINER = "er-transit-audit"
DEFAULT_RECHECK_QUEUE = "er-transit-recheck"
DEFAULT_STORE_DIR = "./.er-transit-store"
STATE_BLOB_NAME = "state.json.gz"

GENESIS_HASH = "0" * 64
RESERVED_AUDIT_KEYS = frozenset({"seq", "prevHash", "hash", "recordedAt"})
# One audit record is one append block; an append block is at most 4 MiB.
MAX_AUDIT_RECORD_BYTES = 4 * 1024 * 1024
# Queue messages are at most 64 KiB (after base64) and may stay invisible for at most 7 days.
MAX_RECHECK_DELAY_SECONDS = 7 * 24 * 3600

_AUDIT_FILE_RE = re.compile(r"audit-(\d{4}-\d{2}-\d{2})\.jsonl")
_TAIL_CHUNK = 64 * 1024


class AuditLogCorrupt(Exception):
    """The audit log cannot be extended or read: its last line (or another line) is not a valid record."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------------------------------------------
# The audit chain (pure)
# --------------------------------------------------------------------------------------------------------------


def canonical_json(value: Any) -> str:
    """The one JSON spelling that hashes are computed over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def record_hash(record: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of `record` without its `hash` field."""
    return _sha256(canonical_json({k: v for k, v in record.items() if k != "hash"}))


def line_hash(record: Mapping[str, Any]) -> str:
    """SHA-256 of the record's canonical JSON line (what the next record's `prevHash` holds)."""
    return _sha256(canonical_json(dict(record)))


def audit_file_name(day: date) -> str:
    return f"audit-{day.isoformat()}.jsonl"


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("the clock must return timezone-aware datetimes")
    return moment.astimezone(UTC)


def chain_next(previous: Mapping[str, Any] | None, record: Mapping[str, Any], *, recorded_at: datetime) -> JsonDict:
    """`record` as it is stored after `previous` (None: the first record): with seq, prevHash, recordedAt, hash."""
    reserved = RESERVED_AUDIT_KEYS.intersection(record)
    if reserved:
        raise ValueError(f"audit record must not set {sorted(reserved)}: the log sets them")
    stored: JsonDict = dict(record)
    stored["seq"] = 1 if previous is None else int(previous["seq"]) + 1
    stored["prevHash"] = GENESIS_HASH if previous is None else line_hash(previous)
    stored["recordedAt"] = _as_utc(recorded_at).isoformat().replace("+00:00", "Z")
    stored["hash"] = record_hash(stored)
    return stored


@dataclass(frozen=True, slots=True)
class AuditLine:
    """One raw line of an audit file, as read (before parsing)."""

    file: str
    line: int
    text: str


@dataclass(frozen=True, slots=True)
class AuditVerification:
    """The outcome of walking the chain.

    ok: every record is intact and linked. count: records checked and found intact (all of them when ok).
    problem: "record N (file): reason" for the first broken or missing link; seq and file repeat its parts.
    """

    ok: bool
    count: int
    problem: str | None = None
    seq: int | None = None
    file: str | None = None


def _file_of(record: Mapping[str, Any]) -> str:
    recorded = record.get("recordedAt")
    if isinstance(recorded, str):
        with contextlib.suppress(ValueError):
            return audit_file_name(datetime.fromisoformat(recorded.replace("Z", "+00:00")).date())
    return "unknown file"


def verify_audit(records: Iterable[Mapping[str, Any] | AuditLine]) -> AuditVerification:
    """Walk the chain oldest first and name the first modified, missing, reordered or unparsable record.

    Items are parsed records (their file is derived from recordedAt) or raw `AuditLine`s (file known).
    A removal at the very end of the log cannot be seen from the chain alone.
    """
    previous: Mapping[str, Any] | None = None
    count = 0

    def broken(seq: int, file: str, reason: str) -> AuditVerification:
        return AuditVerification(False, count, f"record {seq} ({file}): {reason}", seq, file)

    for item in records:
        expected = count + 1
        if isinstance(item, AuditLine):
            file = item.file
            try:
                parsed: Any = json.loads(item.text)
            except ValueError:
                return broken(expected, file, f"line {item.line} is not valid JSON")
            if not isinstance(parsed, dict):
                return broken(expected, file, f"line {item.line} is not a JSON object")
            record: Mapping[str, Any] = parsed
        else:
            record = item
            file = _file_of(record)
        seq = record.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            return broken(expected, file, "record has no integer seq")
        if not isinstance(record.get("hash"), str) or not isinstance(record.get("prevHash"), str):
            return broken(seq, file, "record has no hash or prevHash")
        try:
            computed = record_hash(record)
        except ValueError:
            return broken(seq, file, "record cannot be hashed")
        if computed != record["hash"]:
            return broken(seq, file, "hash mismatch (record modified)")
        if seq > expected:
            missing = (
                f"record {expected} is missing" if seq == expected + 1 else f"records {expected}-{seq - 1} are missing"
            )
            return broken(expected, file, f"{missing} (found seq {seq})")
        if seq < expected:
            return broken(seq, file, f"seq {seq} found where {expected} was expected (reordered or duplicated)")
        wanted = GENESIS_HASH if previous is None else line_hash(previous)
        if record["prevHash"] != wanted:
            return broken(seq, file, "prevHash does not match the previous record (removed, reordered or forked)")
        previous = record
        count += 1
    return AuditVerification(True, count)


def _parse_lines(lines: Iterable[AuditLine]) -> Iterator[JsonDict]:
    for line in lines:
        try:
            parsed = json.loads(line.text)
        except ValueError as exc:
            raise AuditLogCorrupt(f"{line.file} line {line.line} is not valid JSON") from exc
        if not isinstance(parsed, dict):
            raise AuditLogCorrupt(f"{line.file} line {line.line} is not a JSON object")
        yield parsed


def _next_line(previous_text: str | None, record: Mapping[str, Any], now: datetime, where: str) -> tuple[JsonDict, str]:
    previous: JsonDict | None = None
    if previous_text is not None:
        try:
            loaded = json.loads(previous_text)
        except ValueError as exc:
            raise AuditLogCorrupt(f"the last line of {where} is not valid JSON; run `audit verify`") from exc
        if not isinstance(loaded, dict) or not isinstance(loaded.get("seq"), int):
            raise AuditLogCorrupt(f"the last line of {where} is not an audit record; run `audit verify`")
        previous = loaded
    stored = chain_next(previous, record, recorded_at=now)
    text = canonical_json(stored) + "\n"
    if len(text.encode("utf-8")) > MAX_AUDIT_RECORD_BYTES:
        raise ValueError(f"audit record is larger than {MAX_AUDIT_RECORD_BYTES} bytes")
    return stored, text


def _split_lines(file: str, content: bytes) -> Iterator[AuditLine]:
    for number, raw in enumerate(content.decode("utf-8", errors="replace").split("\n"), start=1):
        if raw.strip():
            yield AuditLine(file, number, raw)


def _last_line(read_range: Callable[[int, int], bytes], size: int) -> str | None:
    """The last non-empty line of a file of `size` bytes, reading backwards in chunks."""
    end = size
    buffer = b""
    while end > 0:
        start = max(0, end - _TAIL_CHUNK)
        buffer = read_range(start, end) + buffer
        end = start
        stripped = buffer.rstrip(b"\n")
        if not stripped:
            buffer = b""
            continue
        cut = stripped.rfind(b"\n")
        if cut >= 0 or end == 0:
            return stripped[cut + 1 :].decode("utf-8", errors="replace")
    return None


# --------------------------------------------------------------------------------------------------------------
# Local folder implementations
# --------------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[None]:
    """An exclusive lock held across threads and processes (each call opens its own file description)."""
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _replace_atomically(path: Path, content: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class LocalStateStore:
    """The committed state as `state.json` in a folder; the ETag is the SHA-256 of the file's bytes."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self._folder = Path(folder)
        self._path = self._folder / "state.json"
        self._lock_path = self._folder / "state.lock"

    def _read(self) -> bytes | None:
        try:
            return self._path.read_bytes()
        except FileNotFoundError:
            return None

    @staticmethod
    def _etag(content: bytes) -> str:
        return '"' + hashlib.sha256(content).hexdigest() + '"'

    def load(self) -> tuple[CommittedState | None, str | None]:
        # os.replace swaps the file atomically, so a read without the lock sees one whole version.
        content = self._read()
        if content is None:
            return None, None
        document = json.loads(content)
        return CommittedState.from_json(document["state"]), self._etag(content)

    def save(self, state: CommittedState, *, etag: str | None) -> str:
        # writeId makes every commit's bytes (and so its ETag) unique, even when the state repeats.
        content = (canonical_json({"writeId": uuid.uuid4().hex, "state": state.to_json()}) + "\n").encode("utf-8")
        self._folder.mkdir(parents=True, exist_ok=True)
        with _flock(self._lock_path):
            current = self._read()
            if current is None and etag is not None:
                raise StateConflict(f"no committed state exists any more (expected ETag {etag})")
            if current is not None and (etag is None or self._etag(current) != etag):
                raise StateConflict("the committed state changed since it was read")
            _replace_atomically(self._path, content)
        return self._etag(content)


class LocalAuditLog:
    """The audit chain as JSON-lines files `audit-YYYY-MM-DD.jsonl` (UTC day) in a folder, appended under a lock."""

    def __init__(self, folder: str | os.PathLike[str], *, clock: Clock = _utcnow) -> None:
        self._folder = Path(folder)
        self._lock_path = self._folder / "audit.lock"
        self._clock = clock

    def _files(self) -> list[Path]:
        if not self._folder.is_dir():
            return []
        return sorted(p for p in self._folder.iterdir() if _AUDIT_FILE_RE.fullmatch(p.name) and p.is_file())

    def append(self, record: JsonDict) -> JsonDict:
        canonical_json(record)  # fail on unserialisable input before taking the lock
        self._folder.mkdir(parents=True, exist_ok=True)
        with _flock(self._lock_path):
            now = _as_utc(self._clock())
            files = self._files()
            previous_text: str | None = None
            for path in reversed(files):
                with open(path, "rb") as handle:

                    def read_range(start: int, end: int, handle: Any = handle) -> bytes:
                        handle.seek(start)
                        data: bytes = handle.read(end - start)
                        return data

                    previous_text = _last_line(read_range, os.fstat(handle.fileno()).st_size)
                if previous_text is not None:
                    break
            target = self._folder / audit_file_name(now.date())
            # A clock behind the newest file (skew, or an injected clock) still appends to the newest file,
            # so the files stay in chain order.
            if files and files[-1].name > target.name:
                target = files[-1]
            stored, text = _next_line(previous_text, record, now, files[-1].name if files else "the log")
            fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, text.encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
        return stored

    def lines(self) -> Iterator[AuditLine]:
        for path in self._files():
            yield from _split_lines(path.name, path.read_bytes())

    def records(self) -> Iterator[JsonDict]:
        return _parse_lines(self.lines())


class LocalRecheckQueue:
    """Re-check requests in `recheck.jsonl` with a not-before time; `take_due` hands out (and removes) due ones."""

    def __init__(self, folder: str | os.PathLike[str], *, clock: Clock = _utcnow) -> None:
        self._folder = Path(folder)
        self._path = self._folder / "recheck.jsonl"
        self._lock_path = self._folder / "recheck.lock"
        self._clock = clock

    def schedule(self, message: JsonDict, *, delay_seconds: int) -> None:
        _check_delay(delay_seconds)
        not_before = _as_utc(self._clock()) + timedelta(seconds=delay_seconds)
        entry = {"id": uuid.uuid4().hex, "notBefore": not_before.isoformat(), "message": message}
        text = canonical_json(entry) + "\n"
        self._folder.mkdir(parents=True, exist_ok=True)
        with _flock(self._lock_path), open(self._path, "a", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())

    def take_due(self, *, now: datetime | None = None) -> list[JsonDict]:
        """Remove and return the messages whose delay has passed, oldest due first."""
        moment = _as_utc(now if now is not None else self._clock())
        if not self._folder.is_dir():
            return []
        with _flock(self._lock_path):
            try:
                content = self._path.read_text(encoding="utf-8")
            except FileNotFoundError:
                return []
            entries = [json.loads(line) for line in content.splitlines() if line.strip()]
            due = [e for e in entries if datetime.fromisoformat(e["notBefore"]) <= moment]
            if not due:
                return []
            rest = [e for e in entries if datetime.fromisoformat(e["notBefore"]) > moment]
            _replace_atomically(self._path, "".join(canonical_json(e) + "\n" for e in rest).encode("utf-8"))
        due.sort(key=lambda e: datetime.fromisoformat(e["notBefore"]))
        return [dict(e["message"]) for e in due]


def _check_delay(delay_seconds: int) -> None:
    if not 0 <= delay_seconds <= MAX_RECHECK_DELAY_SECONDS:
        raise ValueError(f"delay_seconds must be between 0 and {MAX_RECHECK_DELAY_SECONDS}")


# --------------------------------------------------------------------------------------------------------------
# Azure Storage implementations
# --------------------------------------------------------------------------------------------------------------


def _create_if_missing(create: Callable[[], Any], what: str) -> None:
    """Create a container or queue; one that exists, or an identity not allowed to create (infra made it), is fine."""
    from azure.core.exceptions import HttpResponseError, ResourceExistsError

    try:
        create()
    except ResourceExistsError:
        pass
    except HttpResponseError as exc:
        if exc.status_code != 403:
            raise
        logger.info("not allowed to create %s; assuming it exists", what)


@dataclass(frozen=True, slots=True)
class _StorageAccount:
    """Where a Storage client connects: an account URL with a credential, or a connection string (Azurite)."""

    account_url: str | None
    credential: TokenCredential | str | None
    connection_string: str | None

    def __post_init__(self) -> None:
        if (self.account_url is None) == (self.connection_string is None):
            raise ValueError("pass exactly one of account_url or connection_string")


class _LazyContainer:
    """A ContainerClient built on first use (never at import or construction), the container created if missing."""

    def __init__(
        self,
        *,
        account_url: str | None,
        credential: TokenCredential | str | None,
        connection_string: str | None,
        container: str,
    ) -> None:
        self._account = _StorageAccount(account_url, credential, connection_string)
        self.name = container
        self._client: ContainerClient | None = None
        self._lock = threading.Lock()

    def get(self) -> ContainerClient:
        with self._lock:
            if self._client is None:
                from azure.storage.blob import BlobServiceClient

                account = self._account
                if account.connection_string is not None:
                    service = BlobServiceClient.from_connection_string(account.connection_string)
                else:
                    service = BlobServiceClient(account.account_url or "", credential=account.credential)
                client = service.get_container_client(self.name)
                _create_if_missing(client.create_container, f"container {self.name}")
                self._client = client
            return self._client


class BlobStateStore:
    """The committed state as one gzip-compressed JSON blob, written with an ETag condition."""

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

    def _blob(self) -> BlobClient:
        return self._container.get().get_blob_client(self._blob_name)

    def load(self) -> tuple[CommittedState | None, str | None]:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            downloader = self._blob().download_blob()
        except ResourceNotFoundError:
            return None, None
        content = downloader.readall()
        etag = downloader.properties.etag
        return CommittedState.from_json(json.loads(gzip.decompress(content))), str(etag)

    def save(self, state: CommittedState, *, etag: str | None) -> str:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
        from azure.storage.blob import ContentSettings

        # mtime=0 keeps the gzip bytes a function of the content alone.
        content = gzip.compress(canonical_json(state.to_json()).encode("utf-8"), compresslevel=6, mtime=0)
        settings = ContentSettings(content_type="application/gzip")
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
        logger.debug("state saved: %s bytes compressed", len(content))
        return str(result["etag"])


@dataclass(frozen=True, slots=True)
class _DayBlob:
    name: str
    size: int
    sealed: bool


class AppendBlobAuditLog:
    """The audit chain as append blobs `audit-YYYY-MM-DD.jsonl` (UTC day), one JSON line per append block.

    Concurrent appenders never fork the chain: each append is conditioned on the blob length it read the
    last record at (append-position condition); the loser re-reads and retries. A day's blob is sealed before
    the next day's blob is created, so a writer with a lagging clock cannot append behind the rollover.
    Only create and append operations are used, as allowed under an immutability policy with protected appends.
    """

    def __init__(
        self,
        *,
        account_url: str | None = None,
        credential: TokenCredential | str | None = None,
        connection_string: str | None = None,
        container: str = DEFAULT_AUDIT_CONTAINER,
        clock: Clock = _utcnow,
        max_attempts: int = 200,
    ) -> None:
        self._container = _LazyContainer(
            account_url=account_url, credential=credential, connection_string=connection_string, container=container
        )
        self._clock = clock
        self._max_attempts = max_attempts

    def _day_blobs(self) -> list[_DayBlob]:
        blobs = [
            _DayBlob(b.name, int(b.size or 0), bool(b.get("is_append_blob_sealed")))
            for b in self._container.get().list_blobs(name_starts_with="audit-")
            if _AUDIT_FILE_RE.fullmatch(b.name)
        ]
        return sorted(blobs, key=lambda b: b.name)

    def _last_line_of(self, name: str, size: int) -> str | None:
        blob = self._container.get().get_blob_client(name)

        def read_range(start: int, end: int) -> bytes:
            data: bytes = blob.download_blob(offset=start, length=end - start).readall()
            return data

        return _last_line(read_range, size)

    def _previous_text(self, blobs: list[_DayBlob]) -> str | None:
        for blob in reversed(blobs):
            text = self._last_line_of(blob.name, blob.size) if blob.size else None
            if text is not None:
                return text
        return None

    def _seal(self, blob: _DayBlob) -> _DayBlob:
        """Seal the newest day blob before rolling over; returns it with its final size."""
        from azure.core.exceptions import HttpResponseError

        client = self._container.get().get_blob_client(blob.name)
        if not blob.sealed:
            try:
                client.seal_append_blob()
            except HttpResponseError as exc:
                # Sealing may be refused (e.g. by a storage policy); the rollover still works, only the
                # guard against a writer whose clock lags across midnight is lost.
                logger.warning("could not seal audit blob %s (%s); rolling over unsealed", blob.name, exc.status_code)
        props = client.get_blob_properties()
        return _DayBlob(blob.name, int(props.size or 0), bool(props.get("is_append_blob_sealed")))

    def append(self, record: JsonDict) -> JsonDict:
        from azure.core.exceptions import HttpResponseError, ResourceExistsError

        canonical_json(record)  # fail on unserialisable input before any I/O
        container = self._container.get()
        for attempt in range(self._max_attempts):
            now = _as_utc(self._clock())
            today = audit_file_name(now.date())
            blobs = self._day_blobs()
            latest = blobs[-1] if blobs else None
            if latest is not None and latest.name >= today and not latest.sealed:
                target, position, earlier = latest.name, latest.size, blobs
                create = False
            else:
                if latest is None:
                    target, earlier = today, []
                else:
                    sealed = self._seal(latest)
                    earlier = [*blobs[:-1], sealed]
                    target = today if today > latest.name else _next_day_name(latest.name)
                position, create = 0, True
            previous_text = self._previous_text(earlier)
            stored, text = _next_line(previous_text, record, now, earlier[-1].name if earlier else "the log")
            data = text.encode("utf-8")
            client = container.get_blob_client(target)
            try:
                if create:
                    client.create_append_blob(if_none_match="*")
                client.append_block(data, appendpos_condition=position)
                return stored
            except ResourceExistsError as exc:
                code = getattr(exc, "error_code", None)  # a str, or a str-valued StorageErrorCode
                if code == "BlockCountExceedsLimit":
                    # 50,000 appends in one day blob: close it; the chain goes on in the next file name.
                    logger.warning("audit blob %s is full; sealing it and rolling over", target)
                    self._seal(_DayBlob(target, 0, False))
                elif code not in ("BlobAlreadyExists", "BlobIsSealed"):
                    raise
                # BlobAlreadyExists: another writer rolled over first; BlobIsSealed: the day was closed.
                logger.debug("audit append attempt %s lost: %s", attempt + 1, code)
            except HttpResponseError as exc:
                if exc.status_code != 412:
                    raise
                if self._written_by_us(target, data):
                    return stored
                logger.debug("audit append attempt %s lost the append position", attempt + 1)
            time.sleep(random.uniform(0, min(0.2, 0.005 * 2 ** min(attempt, 6))))
        raise TimeoutError(f"audit append did not succeed after {self._max_attempts} attempts")

    def _written_by_us(self, name: str, data: bytes) -> bool:
        """After a lost position: was it our own earlier try (an SDK retry of an append that had succeeded)?"""
        size = int(self._container.get().get_blob_client(name).get_blob_properties().size or 0)
        if size < len(data):
            return False
        return self._last_line_of(name, size) == data.decode("utf-8").rstrip("\n")

    def lines(self) -> Iterator[AuditLine]:
        container = self._container.get()
        for blob in self._day_blobs():
            content = container.get_blob_client(blob.name).download_blob().readall()
            yield from _split_lines(blob.name, content)

    def records(self) -> Iterator[JsonDict]:
        return _parse_lines(self.lines())


def _next_day_name(name: str) -> str:
    match = _AUDIT_FILE_RE.fullmatch(name)
    if match is None:
        raise ValueError(f"not an audit file name: {name}")
    return audit_file_name(date.fromisoformat(match.group(1)) + timedelta(days=1))


class StorageQueueRecheck:
    """Re-check requests as Storage queue messages (base64, as the Functions queue trigger expects), kept
    invisible for the delay."""

    def __init__(
        self,
        *,
        account_url: str | None = None,
        credential: TokenCredential | str | None = None,
        connection_string: str | None = None,
        queue: str = DEFAULT_RECHECK_QUEUE,
    ) -> None:
        self._account = _StorageAccount(account_url, credential, connection_string)
        self._queue_name = queue
        self._client: QueueClient | None = None
        self._lock = threading.Lock()

    def _queue(self) -> QueueClient:
        with self._lock:
            if self._client is None:
                from azure.storage.queue import QueueClient, TextBase64EncodePolicy

                account = self._account
                if account.connection_string is not None:
                    client = QueueClient.from_connection_string(
                        account.connection_string, self._queue_name, message_encode_policy=TextBase64EncodePolicy()
                    )
                else:
                    client = QueueClient(
                        account.account_url or "",
                        self._queue_name,
                        credential=account.credential,
                        message_encode_policy=TextBase64EncodePolicy(),
                    )
                _create_if_missing(client.create_queue, f"queue {self._queue_name}")
                self._client = client
            return self._client

    def schedule(self, message: JsonDict, *, delay_seconds: int) -> None:
        _check_delay(delay_seconds)
        self._queue().send_message(canonical_json(message), visibility_timeout=delay_seconds)


# --------------------------------------------------------------------------------------------------------------
# Wiring and the CLI entry
# --------------------------------------------------------------------------------------------------------------


def store_from_settings(settings: Mapping[str, str]) -> tuple[StateStore, AuditLog, RecheckQueue]:
    """The three adapters for these app settings; nothing is contacted until first use.

    `AuditorStorage` (a connection string) or `AuditorStorage__blobServiceUri` (+ optional `__queueServiceUri`,
    `__clientId`) select Azure Storage; otherwise a local folder `STORE_DIR` (default ./.er-transit-store).
    """
    state_container = settings.get("STATE_CONTAINER") or DEFAULT_STATE_CONTAINER
    audit_container = settings.get("AUDIT_CONTAINER") or DEFAULT_AUDIT_CONTAINER
    queue_name = settings.get("RECHECK_QUEUE") or DEFAULT_RECHECK_QUEUE
    connection_string = settings.get("AuditorStorage") or None
    blob_uri = settings.get("AuditorStorage__blobServiceUri") or None
    if connection_string is not None:
        logger.info("store: Azure Storage via connection string")
        return (
            BlobStateStore(connection_string=connection_string, container=state_container),
            AppendBlobAuditLog(connection_string=connection_string, container=audit_container),
            StorageQueueRecheck(connection_string=connection_string, queue=queue_name),
        )
    if blob_uri is not None:
        from azure.identity import DefaultAzureCredential

        client_id = settings.get("AuditorStorage__clientId") or settings.get("AZURE_CLIENT_ID") or None
        credential = DefaultAzureCredential(managed_identity_client_id=client_id)
        queue_uri = settings.get("AuditorStorage__queueServiceUri") or blob_uri.replace(".blob.", ".queue.", 1)
        logger.info("store: Azure Storage %s (identity)", blob_uri)
        return (
            BlobStateStore(account_url=blob_uri, credential=credential, container=state_container),
            AppendBlobAuditLog(account_url=blob_uri, credential=credential, container=audit_container),
            StorageQueueRecheck(account_url=queue_uri, credential=credential, queue=queue_name),
        )
    folder = settings.get("STORE_DIR") or DEFAULT_STORE_DIR
    logger.info("store: local folder %s", folder)
    return LocalStateStore(folder), LocalAuditLog(folder), LocalRecheckQueue(folder)


def audit_verify_main(store_dir: str | None, *, settings: Mapping[str, str] | None = None) -> int:
    """`audit verify`: walk the chain of a local store folder, or of the store the app settings select.

    Prints one line; returns 0 when the chain is intact, else 1.
    """
    state_store: StateStore
    if settings is not None:
        state_store, log, _ = store_from_settings(settings)
        lines = list(log.lines())  # type: ignore[attr-defined]  # both audit logs expose their raw lines
    else:
        assert store_dir is not None
        if not Path(store_dir).is_dir():
            print(f"audit chain broken: no store folder {store_dir}")
            return 1
        state_store, lines = LocalStateStore(store_dir), list(LocalAuditLog(store_dir).lines())
    result = verify_audit(lines)
    if not result.ok:
        print(f"audit chain broken at {result.problem}")
        return 1
    missing = missing_tail(state_store.load()[0], _parse_lines(lines))
    if missing:
        print(f"audit chain broken: {missing}")
        return 1
    print(f"audit chain intact: {result.count} records")
    return 0


def missing_tail(state: CommittedState | None, records: Iterable[Mapping[str, Any]]) -> str | None:
    """Cross-check with the committed state: the last committed run must be in the log (or still in the outbox).

    The hash chain cannot show records cut from its end; the state's sequence can.
    """
    if state is None or state.sequence == 0:
        return None
    recorded = max((int(r.get("stateSequence") or 0) for r in records), default=0)
    queued = {int(i["payload"].get("stateSequence") or 0) for i in state.outbox if i.get("kind") == "audit"}
    if recorded >= state.sequence or state.sequence in queued:
        return None
    return (f"the committed state is at run {state.sequence} but the last audited run is {recorded}: records "
            "at the end of the log are missing")
