"""The audit chain itself, pure: canonical JSON, record hashes, linking (`chain_next`) and `verify_audit`.

Also the line helpers both audit logs share (parse, split, find the last line) and the clock helpers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

JsonDict = dict[str, Any]

Clock = Callable[[], datetime]

GENESIS_HASH = "0" * 64
RESERVED_AUDIT_KEYS = frozenset({"seq", "prevHash", "hash", "recordedAt"})
# One audit record is one append block; an append block is at most 4 MiB.
MAX_AUDIT_RECORD_BYTES = 4 * 1024 * 1024

# `audit-DAY.jsonl`, or `audit-DAY.sNNN.jsonl`: a new chain segment started after a damaged tail (it sorts after
# the day's first file and before the next day's).
_AUDIT_FILE_RE = re.compile(r"audit-(\d{4}-\d{2}-\d{2})(?:\.s(\d{3}))?\.jsonl")
# The first record of a segment: where the damage is and the last good record the chain goes on from.
DAMAGE_OUTCOME = "audit damaged"
_TAIL_CHUNK = 64 * 1024


class AuditLogCorrupt(Exception):
    """The audit log cannot be extended or read: its last line (or another line) is not a valid record."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def canonical_json(value: Any) -> str:
    """The one JSON spelling that hashes are computed over: the standard library's
    `json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)`.

    orjson writes the same text for strings, integers, booleans, null, lists and objects several times faster
    (a change opening 67,000 pairs serialises each for its audit record). It spells floats its own way and writes
    NaN as null, so any text with a number that is not an integer (or what merely looks like one inside a string),
    and whatever orjson refuses (integers past 64 bits, lone surrogates, keys that are not strings, dates), is
    written by the standard library itself, which also refuses NaN as before.
    tests/unit/test_canonical_json.py checks the two agree.
    """
    try:
        data = orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME
                            | orjson.OPT_PASSTHROUGH_DATACLASS)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        data = None
    if (data is None or data[:1] in b"-0123456789" or _not_an_integer(data)
            or (b"null" in data and holds_float(value))):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return data.decode("utf-8")


# A JSON number with a fraction or an exponent, right after `:`, `,` or `[` in compact JSON (a text that is a bare
# number is checked apart: an alternation with `^` made the scan three times slower). One pattern per opening
# character: a pattern that starts with a literal is searched for that character at memchr speed, four times faster
# than one pattern starting with the class `[:,\[]` (0.2 s instead of 0.8 s over a large change's 109 MB of pairs).
_NOT_AN_INTEGER = tuple(re.compile(opening + rb"-?[0-9]+[.eE]") for opening in (rb":", rb",", rb"\["))


def _not_an_integer(data: bytes) -> bool:
    return any(pattern.search(data) for pattern in _NOT_AN_INTEGER)


def holds_float(value: Any) -> bool:
    """Whether `value` holds a float anywhere (orjson spells floats its own way and writes NaN and infinities as
    null, which the standard library refuses)."""
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(holds_float(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(holds_float(v) for v in value)
    return False


def canonical_array(values: Sequence[Any]) -> str:
    """`canonical_json(list(values))` for documents built from the parsed model, written by one orjson call.

    A large change's audit part holds thousands of pair documents: one call and one scan of its text replace a
    call and a scan per document (1.8 s for a change of 97,000 pairs). A number that is not an integer sends the
    array to `canonical_json`, value by value, as does whatever orjson refuses, so every finite value is spelt as
    the standard library spells it. The one difference: NaN and the infinities, which `canonical_json` refuses,
    come out as null here (orjson's spelling; finding them would mean walking every value, a third of a second for
    that change, and the model never holds a float). The chain stays verifiable: the line holds null, which reads
    back as null and hashes the same.
    """
    data = _orjson_array(values)
    if data is None:
        return "[" + ",".join(canonical_json(v) for v in values) + "]"
    return data.decode("utf-8")


def canonical_array_bytes(values: Sequence[Any], *, floats: bool = True) -> bytes:
    """canonical_array as UTF-8, which the audit log hashes and writes: 109 MB of pairs are neither decoded nor
    encoded again. Raises UnicodeEncodeError on what has no UTF-8 form (a lone surrogate).

    `floats=False`: the caller vouches that `values` hold no float (as documents built from the parsed model
    never do: see auditor.Decision.float_free), so the text is not scanned for one (a fifth of a second for a
    large change's 109 MB).
    """
    data = _orjson_array(values, scan=floats)
    if data is None:
        return ("[" + ",".join(canonical_json(v) for v in values) + "]").encode("utf-8")
    return data


def _orjson_array(values: Sequence[Any], *, scan: bool = True) -> bytes | None:
    """orjson's canonical text of the array, or None when only the standard library spells it right."""
    try:
        data: bytes = orjson.dumps(values if isinstance(values, list) else list(values),
                                   option=orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME
                                   | orjson.OPT_PASSTHROUGH_DATACLASS)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return None
    return None if scan and _not_an_integer(data) else data


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
    segments: tuple[str, ...] = ()  # one line per chain segment when a damaged tail started a new one


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
    damage: AuditVerification | None = None  # the first damage a later segment picked the chain up after
    segments: list[str] = []
    segment_start = 1

    def broken(seq: int, file: str, reason: str) -> AuditVerification:
        return AuditVerification(False, count, f"record {seq} ({file}): {reason}", seq, file)

    def resumes(item: Mapping[str, Any] | AuditLine) -> bool:
        """A segment record that links to the last good record (what a damaged tail's next append writes)."""
        try:
            record = json.loads(item.text) if isinstance(item, AuditLine) else item
        except ValueError:
            return False
        return (isinstance(record, dict) and record.get("outcome") == DAMAGE_OUTCOME
                and record.get("seq") == count + 1 and isinstance(record.get("hash"), str)
                and record.get("prevHash") == (GENESIS_HASH if previous is None else line_hash(previous))
                and record_hash(record) == record["hash"])

    def check(item: Mapping[str, Any] | AuditLine) -> AuditVerification | None:
        nonlocal previous, count
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
        return None

    for item in records:
        if damage is not None and not segments:
            # Skipping damage: lines up to the record that started the next segment are not part of the chain.
            if not resumes(item):
                continue
            segments.append(f"segment 1: records {segment_start}-{count} intact, then damage at "
                            f"{damage.problem}")
            segment_start = count + 1
        problem = check(item)
        if problem is not None:
            if damage is not None:
                return problem
            damage = problem
    if damage is not None:
        if not segments:
            return damage
        last = f"segment 2: records {segment_start}-{count} intact, opened by a '{DAMAGE_OUTCOME}' record that " \
               "links to the last good record"
        return AuditVerification(False, count, f"{damage.problem}; the chain goes on in a new segment",
                                 damage.seq, damage.file, (*segments, last))
    return AuditVerification(True, count)


def parse_audit_line(line: AuditLine) -> JsonDict:
    """One raw line as a JSON object; AuditLogCorrupt naming the file and line otherwise."""
    try:
        parsed = json.loads(line.text)
    except ValueError as exc:
        raise AuditLogCorrupt(f"{line.file} line {line.line} is not valid JSON") from exc
    if not isinstance(parsed, dict):
        raise AuditLogCorrupt(f"{line.file} line {line.line} is not a JSON object")
    return parsed


def _parse_lines(lines: Iterable[AuditLine]) -> Iterator[JsonDict]:
    for line in lines:
        yield parse_audit_line(line)


@dataclass(frozen=True, slots=True)
class ChainTail:
    """Where the chain ends: the last record's seq and line hash, and the file (blob) and its size after it.

    An appender that finds its file still at `size` knows the last record without reading (or parsing) it.
    """

    file: str
    size: int
    seq: int
    line_hash: str


class EncodedRecord:
    """An audit record whose top-level values are serialised once, to canonical JSON (kept as UTF-8 bytes).

    The same bytes then give the stored line and its hash (`chain_line`): the chain's own fields are added as
    text, never by serialising the record again. `EncodedRecord.of(record)` checks the reserved keys and that the
    record is serialisable (before any lock or I/O).
    """

    __slots__ = ("record", "_pieces")

    def __init__(self, record: Mapping[str, Any], pieces: Mapping[str, bytes]) -> None:
        self.record = record
        self._pieces = pieces

    @property
    def pieces(self) -> Mapping[str, bytes]:
        return self._pieces

    @classmethod
    def of(cls, record: Mapping[str, Any] | EncodedRecord) -> EncodedRecord:
        if isinstance(record, EncodedRecord):
            return record
        reserved = RESERVED_AUDIT_KEYS.intersection(record)
        if reserved:
            raise ValueError(f"audit record must not set {sorted(reserved)}: the log sets them")
        return cls(record, {str(k): canonical_json(v).encode("utf-8") for k, v in record.items()})

    def chunks(self, extra: Mapping[str, bytes] | None = None, *, end: bytes = b"}") -> list[bytes]:
        """The record's canonical JSON (plus `extra`: key -> value as JSON bytes) as the pieces it is joined from,
        in order: `{`, each member's `"key":` and value, `,` between members, then `end`. Its bytes are their
        concatenation; sizes and hashes are taken piece by piece, without joining (the large lists of a change
        are megabytes, and each transient copy of them stays in the process's memory as fragmentation)."""
        pieces = {**self._pieces, **(extra or {})}
        out: list[bytes] = [b"{"]
        for key in sorted(pieces):
            if len(out) > 1:
                out.append(b",")
            out += (canonical_json(key).encode("utf-8") + b":", pieces[key])
        out.append(end)
        return out

    def data(self, extra: Mapping[str, bytes] | None = None) -> bytes:
        """Canonical JSON of the record plus `extra` (key -> value already as JSON bytes), as UTF-8."""
        return b"".join(self.chunks(extra))

    def text(self, extra: Mapping[str, bytes] | None = None) -> str:
        """data(), as text."""
        return self.data(extra).decode("utf-8")

    def digest(self, extra: Mapping[str, bytes] | None = None) -> str:
        """SHA-256 of data(extra), fed piece by piece."""
        hasher = hashlib.sha256()
        for chunk in self.chunks(extra):
            hasher.update(chunk)
        return hasher.hexdigest()


def _timestamp(moment: datetime) -> str:
    return _as_utc(moment).isoformat().replace("+00:00", "Z")


def chain_line(previous: tuple[int, str] | None, encoded: EncodedRecord, *, recorded_at: datetime
               ) -> tuple[JsonDict, bytes, str]:
    """The stored record, its line (UTF-8, with its newline) and the line's hash (the next record's prevHash),
    after `previous` = (seq, line hash); None: the first.

    Same result as `chain_next` + `canonical_json`, from bytes serialised once: the record's hash is fed piece by
    piece, the line is joined once and hashed once (a large change appends 109 MB of pairs). Raises ValueError
    when the line is larger than an append block.
    """
    seq = 1 if previous is None else previous[0] + 1
    prev_hash = GENESIS_HASH if previous is None else previous[1]
    recorded = _timestamp(recorded_at)
    chain = {"seq": str(seq).encode(), "prevHash": canonical_json(prev_hash).encode("utf-8"),
             "recordedAt": canonical_json(recorded).encode("utf-8")}
    digest = encoded.digest(chain)
    line = b"".join(encoded.chunks({**chain, "hash": canonical_json(digest).encode("utf-8")}, end=b"}\n"))
    if len(line) > MAX_AUDIT_RECORD_BYTES:
        raise ValueError(f"audit record is larger than {MAX_AUDIT_RECORD_BYTES} bytes")
    stored: JsonDict = {**encoded.record, "seq": seq, "prevHash": prev_hash, "recordedAt": recorded, "hash": digest}
    return stored, line, hashlib.sha256(memoryview(line)[:-1]).hexdigest()


def chain_text(previous: tuple[int, str] | None, encoded: EncodedRecord, *, recorded_at: datetime
               ) -> tuple[JsonDict, str]:
    """chain_line's record and line, as text without its newline."""
    stored, line, _ = chain_line(previous, encoded, recorded_at=recorded_at)
    return stored, line[:-1].decode("utf-8")


def _previous_of(previous_text: str, where: str) -> tuple[int, str]:
    """(seq, line hash) of a stored line read back from the log (the fallback when the tail is not known)."""
    try:
        loaded = json.loads(previous_text)
    except ValueError as exc:
        raise AuditLogCorrupt(f"the last line of {where} is not valid JSON; run `audit verify`") from exc
    if not isinstance(loaded, dict) or not isinstance(loaded.get("seq"), int):
        raise AuditLogCorrupt(f"the last line of {where} is not an audit record; run `audit verify`")
    return int(loaded["seq"]), line_hash(loaded)


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


def segment_file_name(name: str, existing: Iterable[str]) -> str:
    """The file a new chain segment starts in after `name` (a day file or segment) was found damaged."""
    match = _AUDIT_FILE_RE.fullmatch(name)
    if match is None:
        raise ValueError(f"not an audit file name: {name}")
    day = match.group(1)
    taken = [int(m.group(2)) for m in (_AUDIT_FILE_RE.fullmatch(e) for e in existing)
             if m is not None and m.group(1) == day and m.group(2)]
    return f"audit-{day}.s{max(taken, default=1) + 1:03d}.jsonl"


def damage_record(lines: Iterable[AuditLine],
                  before: tuple[int, str] | None) -> tuple[tuple[int, str] | None, JsonDict]:
    """For a file whose tail is not a valid record: (the chain end to go on from, the record that opens the new
    segment and says where the damage is). The chain goes on from the last intact record before the first bad
    line (or `before`, the end of the earlier files, when the file has none)."""
    last_good, first_bad = before, None
    for line in lines:
        try:
            record: Any = json.loads(line.text)
        except ValueError:
            record = None
        intact = (isinstance(record, dict) and isinstance(record.get("seq"), int)
                  and isinstance(record.get("hash"), str) and record_hash(record) == record["hash"])
        if intact and first_bad is None:
            last_good = (int(record["seq"]), line_hash(record))
        elif not intact and first_bad is None:
            first_bad = line
    where = {"file": first_bad.file, "line": first_bad.line} if first_bad is not None else {}
    damage: JsonDict = {
        "outcome": DAMAGE_OUTCOME,
        "damage": {**where, "lastGoodSeq": last_good[0] if last_good else 0,
                   "lastGoodHash": last_good[1] if last_good else GENESIS_HASH},
        "detail": "the audit log's last line is not a valid record (appended by someone else, or cut); WORM keeps "
                  "it, so the chain goes on in this new segment from the last good record",
    }
    return last_good, damage


def _next_day_name(name: str) -> str:
    match = _AUDIT_FILE_RE.fullmatch(name)
    if match is None:
        raise ValueError(f"not an audit file name: {name}")
    return audit_file_name(date.fromisoformat(match.group(1)) + timedelta(days=1))
