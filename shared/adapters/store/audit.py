"""The audit chain's storage: JSON-lines files in a local folder, or append blobs in Azure Storage."""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from shared.adapters.store._azure import _LazyContainer
from shared.adapters.store._local import _flock
from shared.adapters.store.anchor import AuditAnchor, LocalAuditAnchor, write_anchor
from shared.app.ports import JsonDict
from shared.core.chain import (
    _AUDIT_FILE_RE,
    AuditLine,
    AuditLogCorrupt,
    ChainTail,
    Clock,
    EncodedRecord,
    _as_utc,
    _last_line,
    _next_day_name,
    _parse_lines,
    _previous_of,
    _split_lines,
    _utcnow,
    audit_file_name,
    chain_line,
    damage_record,
    segment_file_name,
)

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

logger = logging.getLogger(__name__)

DEFAULT_AUDIT_CONTAINER = "er-transit-audit"


class LocalAuditLog:
    """The audit chain as JSON-lines files `audit-YYYY-MM-DD.jsonl` (UTC day) in a folder, appended under a lock."""

    def __init__(self, folder: str | os.PathLike[str], *, clock: Clock = _utcnow,
                 anchor: AuditAnchor | None = None) -> None:
        self._folder = Path(folder)
        self._lock_path = self._folder / "audit.lock"
        self._clock = clock
        self._tail: ChainTail | None = None
        self._tail_lock = threading.Lock()
        # Where the chain ends, kept outside the log (`audit-anchor.json`): `audit verify` sees a cut end.
        self.anchor: AuditAnchor = anchor or LocalAuditAnchor(self._folder)

    def _files(self) -> list[Path]:
        if not self._folder.is_dir():
            return []
        return sorted(p for p in self._folder.iterdir() if _AUDIT_FILE_RE.fullmatch(p.name) and p.is_file())

    @property
    def tail(self) -> ChainTail | None:
        """Where this log last saw the chain end (None until it appended or was told)."""
        return self._tail

    def seed_tail(self, tail: ChainTail | None) -> None:
        """Tell the log where the chain ended (e.g. from the committed state): trusted only while the file still
        has exactly that size."""
        with self._tail_lock:
            if tail is not None and (self._tail is None or tail.seq > self._tail.seq):
                self._tail = tail

    def append(self, record: JsonDict | EncodedRecord) -> JsonDict:
        encoded = EncodedRecord.of(record)  # serialised once; fails on bad input before taking the lock
        self._folder.mkdir(parents=True, exist_ok=True)
        with _flock(self._lock_path):
            now = _as_utc(self._clock())
            files = self._files()
            previous = self._known_end(files)
            damage: JsonDict | None = None
            segment: Path | None = None
            if previous is None and files:
                previous_text: str | None = None
                source = files[-1]
                for path in reversed(files):
                    previous_text = _file_last_line(path)
                    if previous_text is not None:
                        source = path
                        break
                if previous_text is not None:
                    try:
                        previous = _previous_of(previous_text, source.name)
                    except AuditLogCorrupt:
                        # A junk line that WORM will not let us remove: start a new chain segment that records
                        # the damage, instead of failing every run from now on.
                        lines = list(_split_lines(source.name, source.read_bytes()))
                        previous, damage = damage_record(lines, None)
                        segment = self._folder / segment_file_name(source.name, [f.name for f in files])
                        logger.error("audit log %s is damaged at line %s; continuing in %s", source.name,
                                     damage["damage"].get("line"), segment.name)
            target = self._folder / audit_file_name(now.date())
            # A clock behind the newest file (skew, or an injected clock) still appends to the newest file,
            # so the files stay in chain order.
            if files and files[-1].name > target.name:
                target = files[-1]
            prefix = b""
            if damage is not None and segment is not None:
                target = segment
                opened, prefix, opened_hash = chain_line(previous, EncodedRecord.of(damage), recorded_at=now)
                previous = (opened["seq"], opened_hash)
            stored, line, line_hash = chain_line(previous, encoded, recorded_at=now)
            fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, prefix + line if prefix else line)
                os.fsync(fd)
                size = os.fstat(fd).st_size
            finally:
                os.close(fd)
            with self._tail_lock:
                self._tail = ChainTail(target.name, size, stored["seq"], line_hash)
            write_anchor(self.anchor, self._tail)  # under the lock: the anchor only ever moves forward
        return stored

    def last_record(self) -> JsonDict | None:
        """The chain's last record, reading only the end of the newest file (None: no record, or not one)."""
        for path in reversed(self._files()):
            text = _file_last_line(path)
            if text is not None:
                return _record_or_none(text)
        return None

    def _known_end(self, files: list[Path]) -> tuple[int, str] | None:
        """The chain's end from the remembered tail, if the newest file is still exactly as it left it."""
        tail = self._tail
        if tail is None or not files or files[-1].name != tail.file:
            return None
        try:
            if files[-1].stat().st_size != tail.size:
                return None
        except FileNotFoundError:
            return None
        return tail.seq, tail.line_hash

    def lines(self) -> Iterator[AuditLine]:
        for name in self.day_names():
            yield from self.day_lines(name)

    def day_names(self, prefixes: Sequence[str] = ("audit-",)) -> list[str]:
        """The day files whose names start with one of `prefixes`, oldest first (reads no record)."""
        return [p.name for p in self._files() if p.name.startswith(tuple(prefixes))]

    def day_lines(self, name: str) -> Iterator[AuditLine]:
        """The non-empty lines of one day file, in order."""
        yield from _split_lines(name, (self._folder / name).read_bytes())

    def records(self) -> Iterator[JsonDict]:
        return _parse_lines(self.lines())


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
        anchor: AuditAnchor | None = None,
    ) -> None:
        self._container = _LazyContainer(
            account_url=account_url, credential=credential, connection_string=connection_string, container=container
        )
        self._clock = clock
        self._max_attempts = max_attempts
        self._tail: ChainTail | None = None
        self._tail_lock = threading.Lock()
        # Where the chain ends, kept outside the log (a blob in the state container; see anchor.py).
        self.anchor = anchor
        self._anchored = 0

    @property
    def tail(self) -> ChainTail | None:
        """Where this log last saw the chain end (None until it appended or was told)."""
        return self._tail

    def seed_tail(self, tail: ChainTail | None) -> None:
        """Tell the log where the chain ended (e.g. from the committed state): trusted only while the blob still
        has exactly that length (and the append-position condition guards the write itself)."""
        with self._tail_lock:
            if tail is not None and (self._tail is None or tail.seq > self._tail.seq):
                self._tail = tail

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

    def append(self, record: JsonDict | EncodedRecord) -> JsonDict:
        from azure.core.exceptions import HttpResponseError, ResourceExistsError

        encoded = EncodedRecord.of(record)  # serialised once; fails on bad input before any I/O
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
            tail = self._tail
            prefix = b""  # the record that opens a new segment after a damaged tail, written with ours
            previous: tuple[int, str] | None
            if tail is not None and earlier and earlier[-1].name == tail.file and earlier[-1].size == tail.size:
                previous = (tail.seq, tail.line_hash)  # the chain ends where we (or the state) last saw it
            else:
                previous_text = self._previous_text(earlier)
                try:
                    previous = None if previous_text is None else _previous_of(previous_text, earlier[-1].name)
                except AuditLogCorrupt:
                    # A junk line WORM will not let us remove: a new segment records the damage (see LocalAuditLog).
                    damaged = next(b for b in reversed(earlier) if b.size)
                    before = self._previous_text(earlier[: earlier.index(damaged)])
                    previous, damage = damage_record(self.day_lines(damaged.name),
                                                     None if before is None else _previous_of(before, "earlier"))
                    target = segment_file_name(damaged.name, [b.name for b in blobs])
                    position, create = 0, True
                    logger.error("audit blob %s is damaged at line %s; continuing in %s", damaged.name,
                                 damage["damage"].get("line"), target)
                    opened, prefix, opened_hash = chain_line(previous, EncodedRecord.of(damage), recorded_at=now)
                    previous = (opened["seq"], opened_hash)
            stored, line, line_hash = chain_line(previous, encoded, recorded_at=now)
            data = prefix + line if prefix else line
            client = container.get_blob_client(target)
            try:
                if create:
                    client.create_append_blob(if_none_match="*")
                client.append_block(data, appendpos_condition=position)
                tail = ChainTail(target, position + len(data), stored["seq"], line_hash)
                self._remember(tail)
                self._move_anchor(tail)
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
                if self._written_by_us(target, line):
                    self._remember(None)
                    return stored
                logger.debug("audit append attempt %s lost the append position", attempt + 1)
            time.sleep(random.uniform(0, min(0.2, 0.005 * 2 ** min(attempt, 6))))
        raise TimeoutError(f"audit append did not succeed after {self._max_attempts} attempts")

    def _remember(self, tail: ChainTail | None) -> None:
        with self._tail_lock:
            self._tail = tail

    def _move_anchor(self, tail: ChainTail) -> None:
        with self._tail_lock:
            if tail.seq <= self._anchored:
                return  # a later record of this process is anchored already
            self._anchored = tail.seq
        write_anchor(self.anchor, tail)

    def last_record(self) -> JsonDict | None:
        """The chain's last record: one listing of the day blobs and a ranged read of the newest one's end."""
        text = self._previous_text(self._day_blobs())
        return None if text is None else _record_or_none(text)

    def _written_by_us(self, name: str, data: bytes) -> bool:
        """After a lost position: was it our own earlier try (an SDK retry of an append that had succeeded)?"""
        size = int(self._container.get().get_blob_client(name).get_blob_properties().size or 0)
        if size < len(data):
            return False
        return self._last_line_of(name, size) == data.decode("utf-8").rstrip("\n")

    def lines(self) -> Iterator[AuditLine]:
        for name in self.day_names():
            yield from self.day_lines(name)

    def day_names(self, prefixes: Sequence[str] = ("audit-",)) -> list[str]:
        """The day blobs whose names start with one of `prefixes`, oldest first: one listing per prefix, so a
        question about a few days lists those days' names (a listing returns names, never content)."""
        container = self._container.get()
        names = {b.name for prefix in dict.fromkeys(prefixes) for b in container.list_blobs(name_starts_with=prefix)
                 if _AUDIT_FILE_RE.fullmatch(b.name)}
        return sorted(names)

    def day_lines(self, name: str) -> Iterator[AuditLine]:
        """The non-empty lines of one day blob, in order (one download of that blob)."""
        content = self._container.get().get_blob_client(name).download_blob().readall()
        yield from _split_lines(name, content)

    def records(self) -> Iterator[JsonDict]:
        return _parse_lines(self.lines())


def _file_last_line(path: Path) -> str | None:
    with open(path, "rb") as handle:

        def read_range(start: int, end: int) -> bytes:
            handle.seek(start)
            data: bytes = handle.read(end - start)
            return data

        return _last_line(read_range, os.fstat(handle.fileno()).st_size)


def _record_or_none(text: str) -> JsonDict | None:
    try:
        loaded = json.loads(text)
    except ValueError:
        return None
    return loaded if isinstance(loaded, dict) else None
