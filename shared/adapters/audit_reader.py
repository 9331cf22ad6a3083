"""Reading the audit log for questions: only the day files a time window needs (listed by name prefix), each line
checked, records written in parts joined back; `find_record` for `audit show`, with the chain verified up to it."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence, Set
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol, runtime_checkable

from shared.adapters.store import (
    AuditLine,
    AuditLogCorrupt,
    AuditVerification,
    parse_audit_line,
    record_hash,
    verify_audit,
)
from shared.app.ports import JsonDict
from shared.core.audit_query import AuditQueryError, LoggedRecord, PartJoiner, Window, file_day, parse_recorded_at


@runtime_checkable
class AuditDayFiles(Protocol):
    """What the questions need from an audit log: its day files by name prefix, and one file's lines."""

    def day_names(self, prefixes: Sequence[str] = ("audit-",)) -> list[str]:
        """Names of the day files starting with one of `prefixes`, oldest first (listing reads no record)."""
        ...

    def day_lines(self, name: str) -> Iterator[AuditLine]:
        """The non-empty lines of one day file, in order."""
        ...


def parse_record(line: AuditLine, *, check_hash: bool = False) -> tuple[JsonDict, datetime]:
    """One line as a record: a JSON object with an integer seq and a recordedAt time (and, when asked, a hash that
    matches its content); anything else is a damaged record, named by file and line."""
    where = f"{line.file} line {line.line}"
    record = _loads(line)
    seq = record.get("seq")
    recorded_at = parse_recorded_at(record.get("recordedAt"))
    if not isinstance(seq, int) or isinstance(seq, bool) or recorded_at is None:
        raise AuditQueryError(f"{where} is not an audit record (no seq or recordedAt); run `audit verify`")
    if check_hash:
        try:
            intact = record_hash(record) == record.get("hash")
        except ValueError:
            intact = False
        if not intact:
            raise AuditQueryError(f"{where}: record {seq} was modified (hash mismatch); run `audit verify`")
    return record, recorded_at


@dataclass
class _Sequence:
    """Consecutive records must have consecutive seq numbers: a gap or a step back is a damaged log."""

    seq: int | None = None
    where: str = ""

    def check(self, record: JsonDict, line: AuditLine) -> None:
        self._step(int(record["seq"]), line)

    def skip(self, line: AuditLine) -> None:
        """A line confirmed by the next line's prevHash: its seq, read without parsing it, must follow too."""
        seq = _top_level(line.text, "seq")
        if seq is None or not seq.isdigit():
            raise AuditQueryError(f"{line.file} line {line.line} has no seq; run `audit verify`")
        self._step(int(seq), line)

    def _step(self, seq: int, line: AuditLine) -> None:
        if self.seq is not None and seq != self.seq + 1:
            if seq == self.seq + 2:
                what = f"record {seq - 1} is missing"
            elif seq > self.seq:
                what = f"records {self.seq + 1}-{seq - 1} are missing"
            else:
                what = f"record {seq} follows record {self.seq} (reordered or duplicated)"
            raise AuditQueryError(f"{line.file} line {line.line}: {what} (after {self.where}); run `audit verify`")
        self.seq, self.where = seq, f"{line.file} line {line.line}"


def read_records(log: AuditDayFiles, window: Window, *, today: date, needles: Sequence[str] = (),
                 wanted: Set[str] | None = None) -> Iterator[LoggedRecord]:
    """The records of the files `window` needs, oldest first, parts joined (the caller keeps those inside it).

    After the window's days it reads on into the next file only as far as records recorded inside the window (a
    lagging clock, a full day blob) or the last parts of a record go. Every line read must be a record, with
    seq numbers without gaps (else AuditQueryError naming the line); hashes are `audit verify`'s and `show`'s job.

    `needles` (lower case): the caller only wants records whose line holds all of them. A line without them is
    then passed over unparsed, but only when the next line's prevHash is that line's own SHA-256: it is then
    exactly the record the log chained, unaltered and whole (else it is parsed, and checked, as any other).
    Records in parts are always parsed; delivery records are parsed when they name one of the ids in `wanted`
    (the caller adds the alert and run ids of the records it keeps as it reads them), or always when it is None.
    """
    inside, after = window.split_files(log.day_names(window.name_prefixes(today=today)))
    joiner = PartJoiner(skip_leading_orphans=window.since is not None)
    sequence = _Sequence()

    def read(line: AuditLine) -> LoggedRecord | None:
        record, recorded_at = parse_record(line)
        sequence.check(record, line)
        return joiner.feed(record, file=line.file, line=line.line, recorded_at=recorded_at)

    held: AuditLine | None = None  # a line passed over until the next line confirms it
    for line in (line for name in inside for line in log.day_lines(name)):
        if held is not None:
            if _chained_after(held, line):
                sequence.skip(held)
            else:
                logged = read(held)
                if logged is not None:
                    yield logged
            held = None
        if needles and _passable(line.text, needles, wanted):
            held = line
            continue
        logged = read(line)
        if logged is not None:
            yield logged
    if held is not None:
        logged = read(held)
        if logged is not None:
            yield logged
    for name in after:
        for line in log.day_lines(name):
            record, recorded_at = parse_record(line)
            if window.until is not None and recorded_at > window.until and not joiner.incomplete():
                break
            sequence.check(record, line)
            logged = joiner.feed(record, file=line.file, line=line.line, recorded_at=recorded_at)
            if logged is not None:
                yield logged
        else:
            continue
        break
    error = joiner.missing_parts_error()
    if error is not None:
        raise error


# A delivery record's items: "ALERT_ID:NOTIFIER" strings (ids are hex, notifier names have no quote).
_ITEM_RE = re.compile(r'"([0-9a-f]+):[^"]*"')


def _passable(text: str, needles: Sequence[str], wanted: Set[str] | None) -> bool:
    """True when the line cannot be one the caller wants: not a part, and not a delivery of a wanted alert, nor a
    record holding every needle."""
    if '"parts":' in text:
        return False
    if '"outcome":"delivery"' in text:
        if wanted is None:
            return False
        ids = {m.group(1) for m in _ITEM_RE.finditer(text)}
        ids.add(_top_level(text, "runId") or "")
        return wanted.isdisjoint(ids)
    lowered = text.lower()
    return not all(n in lowered for n in needles)


def _top_level(text: str, key: str) -> str | None:
    """The value text of a top-level key of a canonical record line: keys are sorted, and no nested object after
    `prevHash` or `seq` (only `trigger`, with fixed keys) can hold that key, so its last occurrence is the one."""
    at = text.rfind(f'"{key}":')
    if at < 0:
        return None
    value = _SCALAR_RE.match(text, at + len(key) + 3)
    return value.group(1) if value else None


_SCALAR_RE = re.compile(r'"?([^",}]*)')


def _chained_after(held: AuditLine, line: AuditLine) -> bool:
    return _top_level(line.text, "prevHash") == hashlib.sha256(held.text.encode("utf-8")).hexdigest()


_ID_RE = re.compile(r"[0-9a-f]{8,64}")


@dataclass(frozen=True, slots=True)
class Found:
    """`audit show`: the record, the records that name it (its deliveries), and the chain walked to its end."""

    record: LoggedRecord
    related: list[LoggedRecord]
    chain: AuditVerification
    files: int


def find_record(log: AuditDayFiles, ident: str) -> Found:
    """The record of a run id or alert id (a unique prefix of at least 8 hex digits will do), and its deliveries.

    Verifies the chain from the log's first record to the record's last part (nothing shorter can show it was not
    altered), then scans the rest of the log for its deliveries (and, for a prefix, other ids it starts).
    """
    key = ident.strip().lower()
    if not _ID_RE.fullmatch(key):
        raise AuditQueryError(f"{ident!r} is not a run id or alert id (8 to 64 hex digits)")
    names = [n for n in log.day_names() if file_day(n) is not None]
    lines = (line for name in names for line in log.day_lines(name))
    keys = {key}  # grows by the run id and alert id of the record once found, to catch its later deliveries
    matched: list[tuple[AuditLine, JsonDict, datetime]] = []

    def take(line: AuditLine) -> JsonDict | None:
        """The line's record when it names one of the keys (kept), else None."""
        if not any(k in line.text for k in keys):
            return None
        record, recorded_at = parse_record(line)
        named = _names(record, keys)
        if not named:
            return None
        matched.append((line, record, recorded_at))
        if record.get("outcome") != "delivery" and key in named:
            keys.update(i for i in (record.get("runId"), record.get("alertId")) if isinstance(i, str))
        return record

    def up_to_the_record() -> Iterator[JsonDict]:
        for line in lines:
            record = take(line)
            yield record if record is not None else _loads(line)
            if record is not None and key in _names(record, {key}) and record.get("outcome") != "delivery" \
                    and record.get("part", 1) == record.get("parts", 1):
                return  # its last part: the chain up to it is what `show` verifies

    chain = verify_audit(up_to_the_record())
    for line in lines:  # the rest: later deliveries (and ids a prefix also starts); read, not verified
        take(line)
    primary, related = _primary(matched, key, len(names))
    if primary is None:
        # Records written before alert ids were recorded with the run: the run that first delivered the alert
        # raised it; read once more for that run.
        run = find_record(log, str(related[0].record.get("runId")))
        return Found(run.record, _unique([*run.related, *related]), run.chain, run.files)
    return Found(primary, related, chain, len(names))


def _unique(records: list[LoggedRecord]) -> list[LoggedRecord]:
    seen: dict[tuple[str, int], LoggedRecord] = {}
    for r in records:
        seen.setdefault((r.file, r.line), r)
    return sorted(seen.values(), key=lambda r: r.seq)


def _names(record: JsonDict, keys: set[str]) -> set[str]:
    """The keys this record is about: as its run id or alert id, or (a delivery) as an alert it delivered."""
    ids = {str(record.get(k) or "") for k in ("runId", "alertId")}
    if record.get("outcome") == "delivery":
        ids |= {str(i).partition(":")[0] for k in ("delivered", "undelivered") for i in record.get(k) or []}
    return {k for k in keys if any(i.startswith(k) for i in ids if i)}


def _loads(line: AuditLine) -> JsonDict:
    try:
        return parse_audit_line(line)
    except AuditLogCorrupt as exc:
        raise AuditQueryError(f"{exc} (a damaged record); run `audit verify`") from None


def _primary(matched: list[tuple[AuditLine, JsonDict, datetime]], key: str,
             files: int) -> tuple[LoggedRecord | None, list[LoggedRecord]]:
    joiner = PartJoiner()
    records: list[LoggedRecord] = []
    for line, record, recorded_at in matched:
        logged = joiner.feed(record, file=line.file, line=line.line, recorded_at=recorded_at)
        if logged is not None:
            records.append(logged)
    error = joiner.missing_parts_error()
    if error is not None:
        raise error
    primaries = [r for r in records if r.record.get("outcome") != "delivery" and key in _names(r.record, {key})]
    distinct = sorted({str(r.record.get(k)) for r in primaries for k in ("runId", "alertId")
                       if str(r.record.get(k) or "").startswith(key)})
    if len(distinct) > 1:
        raise AuditQueryError(f"{key!r} is the start of {len(distinct)} ids ({', '.join(distinct[:5])}): "
                              "give more of it")
    if primaries:
        return primaries[0], [r for r in records if r is not primaries[0]]
    deliveries = [r for r in records if r.record.get("outcome") == "delivery"]
    if deliveries and len(key) == 32:
        return None, deliveries
    raise AuditQueryError(f"no run id or alert id {key!r} in the audit log ({files} day files searched)")
