"""Questions to the audit log, pure: time windows, records written in parts joined back, alerts linked to their
deliveries, filters, and the texts of `audit list`, `audit show` and `audit history` (no I/O here)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

JsonDict = dict[str, Any]


class AuditQueryError(ValueError):
    """A question the log cannot answer as asked (bad filter, unknown id, damaged record); one line, names where."""


# ----------------------------------------------------------------------------------------------------------------
# Time
# ----------------------------------------------------------------------------------------------------------------

_AGE_RE = re.compile(r"(\d{1,6})([mhdw])")
_AGE_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_FILE_RE = re.compile(r"audit-(\d{4}-\d{2}-\d{2})\.jsonl")


def parse_when(text: str, *, now: datetime, what: str) -> datetime:
    """An ISO time or date (UTC when it has no offset) or an age before `now` (`30m`, `12h`, `7d`, `2w`)."""
    value = text.strip()
    age = _AGE_RE.fullmatch(value.lower())
    if age:
        return now - timedelta(**{_AGE_UNITS[age.group(2)]: int(age.group(1))})
    try:
        moment = datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise AuditQueryError(f"{what} {text!r} is not a time: give an ISO time (2026-11-20, 2026-11-20T09:00Z) "
                              "or an age (30m, 12h, 7d, 2w)") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_recorded_at(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def file_day(name: str) -> date | None:
    """The UTC day of an audit file name (`audit-YYYY-MM-DD.jsonl`), or None for any other name."""
    match = _FILE_RE.fullmatch(name)
    if match is None:
        return None
    try:
        return date.fromisoformat(match.group(1))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Window:
    """Records appended from `since` to `until` (inclusive; None: open). Times are the log's `recordedAt`.

    A record is in the file of its UTC day or, when a writer's clock lagged or a day blob was full, in a later
    one (never an earlier one): the files of the window's days hold all of it except such late records, which
    are in the first file after the window (read up to the first record past `until`).
    """

    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        if self.since is not None and self.until is not None and self.since > self.until:
            raise AuditQueryError(f"--since {_iso(self.since)} is after --until {_iso(self.until)}")

    def contains(self, moment: datetime) -> bool:
        return (self.since is None or moment >= self.since) and (self.until is None or moment <= self.until)

    def first_day(self) -> date | None:
        return self.since.date() if self.since else None

    def last_day(self) -> date | None:
        return self.until.date() if self.until else None

    def split_files(self, names: Iterable[str]) -> tuple[list[str], list[str]]:
        """The audit files of the window's days, and those after it (oldest first); other names are dropped."""
        first, last = self.first_day(), self.last_day()
        inside: list[tuple[date, str]] = []
        after: list[tuple[date, str]] = []
        for name in names:
            day = file_day(name)
            if day is None or (first is not None and day < first):
                continue
            (after if last is not None and day > last else inside).append((day, name))
        return [n for _, n in sorted(inside)], [n for _, n in sorted(after)]

    def name_prefixes(self, *, today: date) -> list[str]:
        """Blob name prefixes that list every file this window may read, and the day after it (for late records).

        Small windows list day by day, larger ones month by month, very large ones year by year; an open start
        lists the whole log's names (names only: listing downloads no record).
        """
        if self.since is None:
            return ["audit-"]
        first = self.since.date()
        last = (self.until.date() if self.until else max(today, first)) + timedelta(days=1)
        if (last - first).days <= 3:
            return [f"audit-{(first + timedelta(days=n)).isoformat()}" for n in range((last - first).days + 1)]
        months = sorted({(d.year, d.month) for d in (first, last)}
                        | {(y, m) for y in range(first.year, last.year + 1) for m in range(1, 13)
                           if (first.year, first.month) <= (y, m) <= (last.year, last.month)})
        if len(months) > 24:
            return [f"audit-{y:04d}-" for y in range(first.year, last.year + 1)]
        return [f"audit-{y:04d}-{m:02d}-" for y, m in months]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def short_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


# ----------------------------------------------------------------------------------------------------------------
# Records as read, and records written in parts joined back
# ----------------------------------------------------------------------------------------------------------------

PAIR_LISTS = ("opened", "closed", "pending")
_PART_KEYS = ("part", "parts", "continued")


@dataclass(frozen=True, slots=True)
class LoggedRecord:
    """One record of the log (its parts joined), where it starts, and when it was appended (its first part)."""

    record: JsonDict
    file: str
    line: int
    recorded_at: datetime
    parts: int = 1
    last_file: str = ""
    last_line: int = 0

    @property
    def where(self) -> str:
        return f"{self.file} line {self.line}"

    @property
    def seq(self) -> int:
        return int(self.record.get("seq") or 0)

    @property
    def last_seq(self) -> int:
        return int(self.record.get("lastSeq") or self.seq)


@dataclass
class _Group:
    first: LoggedRecord
    parts: int
    pieces: list[JsonDict]
    last_file: str
    last_line: int


@dataclass
class PartJoiner:
    """Feed records in log order; get back whole records, a record written in parts once its last part is read.

    A record appended twice (the outbox re-appends after a crash) is yielded once. `skip_leading_orphans`: the
    read starts inside the log (a time window), so continuation parts in its first file whose first part lies
    before it are dropped (that record is outside the window); anywhere else a part out of order is an error.
    """

    skip_leading_orphans: bool = False
    _open: dict[tuple[str, str], _Group] = field(default_factory=dict)
    _seen: set[tuple[str, str, str, int]] = field(default_factory=set)
    _first_file: str | None = None

    def feed(self, record: JsonDict, *, file: str, line: int, recorded_at: datetime) -> LoggedRecord | None:
        if self._first_file is None:
            self._first_file = file
        run_id, time_ = str(record.get("runId")), str(record.get("time"))
        part = record.get("part")
        key = (run_id, str(record.get("outcome")), time_, part if isinstance(part, int) else 0)
        if key in self._seen:
            return None  # the same record (or part) appended again
        self._seen.add(key)
        if part is None:
            return LoggedRecord(record, file, line, recorded_at, 1, file, line)
        parts = record.get("parts")
        if not isinstance(part, int) or not isinstance(parts, int) or not 1 <= part <= parts:
            raise AuditQueryError(f"{file} line {line}: record {record.get('seq')} has a bad part number "
                                  f"({part!r} of {parts!r}); run `audit verify`")
        group_key = (run_id, time_)
        group = self._open.get(group_key)
        if part == 1:
            if group is not None:
                raise AuditQueryError(f"{group.first.where}: run {run_id} has parts 1-{len(group.pieces)} of "
                                      f"{group.parts} and starts again at {file} line {line}; run `audit verify`")
            first = LoggedRecord(record, file, line, recorded_at, parts, file, line)
            group = _Group(first, parts, [record], file, line)
            self._open[group_key] = group
        elif group is None:
            if self.skip_leading_orphans and file == self._first_file:
                return None
            raise AuditQueryError(f"{file} line {line}: part {part} of {parts} of run {run_id} without its "
                                  "earlier parts; run `audit verify`")
        elif part != len(group.pieces) + 1 or parts != group.parts:
            raise AuditQueryError(f"{file} line {line}: part {part} of {parts} of run {run_id} follows part "
                                  f"{len(group.pieces)} of {group.parts} ({group.first.where}); run `audit verify`")
        else:
            group.pieces.append(record)
            group.last_file, group.last_line = file, line
        if len(group.pieces) < group.parts:
            return None
        del self._open[group_key]
        return LoggedRecord(join_parts(group.pieces), group.first.file, group.first.line, group.first.recorded_at,
                            group.parts, group.last_file, group.last_line)

    def incomplete(self) -> list[LoggedRecord]:
        """Records whose last parts have not been read (yet)."""
        return [g.first for g in self._open.values()]

    def missing_parts_error(self) -> AuditQueryError | None:
        for group in self._open.values():
            have = len(group.pieces)
            missing = f"part {have + 1}" if have + 1 == group.parts else f"parts {have + 1}-{group.parts}"
            return AuditQueryError(f"{group.first.where}: run {group.first.record.get('runId')} is recorded in "
                                   f"{group.parts} parts but {missing} of it are not in the log; run `audit verify`")
        return None


def join_parts(pieces: Sequence[Mapping[str, Any]]) -> JsonDict:
    """One record from its parts (in order): the first part's fields, every part's pairs, and `lastSeq`."""
    joined: JsonDict = {k: v for k, v in pieces[0].items() if k not in _PART_KEYS}
    for key in PAIR_LISTS:
        joined[key] = [item for piece in pieces for item in (piece.get(key) or [])]
    if len(pieces) > 1:
        joined["lastSeq"] = pieces[-1].get("seq")
        joined["partSeqs"] = [p.get("seq") for p in pieces]
    return joined


# ----------------------------------------------------------------------------------------------------------------
# Alerts and their deliveries
# ----------------------------------------------------------------------------------------------------------------

DELIVERY = "delivery"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One delivery attempt of an alert to one channel, as a `delivery` record noted it."""

    time: datetime
    notifier: str
    delivered: bool
    run_id: str
    where: str


def delivery_attempts(records: Iterable[LoggedRecord]) -> dict[str, list[Attempt]]:
    """Alert id -> its attempts, oldest first, from the `delivery` records (items are `ALERT_ID:NOTIFIER`)."""
    attempts: dict[str, list[Attempt]] = {}
    for logged in records:
        doc = logged.record
        if doc.get("outcome") != DELIVERY:
            continue
        for key, ok in (("delivered", True), ("undelivered", False)):
            for item in doc.get(key) or []:
                alert_id, _, notifier = str(item).partition(":")
                attempts.setdefault(alert_id, []).append(
                    Attempt(logged.recorded_at, notifier or "?", ok, str(doc.get("runId")), logged.where))
    return attempts


def alert_id_of(logged: LoggedRecord, attempts: Mapping[str, Sequence[Attempt]]) -> str | None:
    """The id of the alert a run raised: recorded with it, or (older records) the one alert its own run delivered."""
    doc = logged.record
    if isinstance(doc.get("alertId"), str):
        return str(doc["alertId"])
    run_id = doc.get("runId")
    own = {a for a, tries in attempts.items() if any(t.run_id == run_id for t in tries)}
    return own.pop() if len(own) == 1 else None


def delivery_summary(alert_id: str | None, attempts: Mapping[str, Sequence[Attempt]],
                     notifiers: Sequence[str] = ()) -> list[str]:
    """Per channel: `teams` when delivered, `slack: not delivered (2 attempts)`, `slack: not attempted yet`."""
    if alert_id is None:
        return []
    tries = attempts.get(alert_id, [])
    channels = list(dict.fromkeys([*notifiers, *(t.notifier for t in tries)]))
    out = []
    for channel in channels:
        mine = [t for t in tries if t.notifier == channel]
        if any(t.delivered for t in mine):
            out.append(channel)
        elif mine:
            out.append(f"{channel}: not delivered ({len(mine)} attempt{'s' if len(mine) > 1 else ''})")
        else:
            out.append(f"{channel}: not attempted yet")
    return out


# ----------------------------------------------------------------------------------------------------------------
# Filters
# ----------------------------------------------------------------------------------------------------------------

OUTCOMES = {"committed": "committed", "no-change": "no change", "duplicate": "duplicate",
            "incomplete": "incomplete read", "lost-race": "lost race", "delivery": DELIVERY}


def parse_outcomes(values: Sequence[str] | None) -> frozenset[str] | None:
    """The stored outcomes asked for (default: committed changes); None: every outcome (`all`)."""
    if not values:
        return frozenset({"committed"})
    chosen: set[str] = set()
    by_stored = {v: v for v in OUTCOMES.values()}
    for value in values:
        for word in value.split(","):
            key = word.strip().lower()
            if key == "all":
                return None
            stored = OUTCOMES.get(key) or by_stored.get(key)
            if stored is None:
                raise AuditQueryError(f"--outcome {word.strip()!r} is not an outcome: one of "
                                      f"{', '.join([*OUTCOMES, 'all'])}")
            chosen.add(stored)
    return frozenset(chosen)


def _vnet_matches(query: str, vnet_id: str) -> bool:
    q = query.strip().rstrip("/").lower()
    v = vnet_id.rstrip("/").lower()
    if "/" in q:
        return v == q
    return v.rsplit("/", 1)[-1] == q


def pairs_of(record: Mapping[str, Any], *lists: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for key in lists or PAIR_LISTS:
        for pair in record.get(key) or []:
            if isinstance(pair, Mapping):
                yield key, pair


def pair_matches(pair: Mapping[str, Any], vnets: Sequence[str]) -> bool:
    ids = [str(v) for v in pair.get("vnets") or []]
    if len(ids) != 2:
        return False
    if len(vnets) == 1:
        return any(_vnet_matches(vnets[0], v) for v in ids)
    a, b = vnets
    return ((_vnet_matches(a, ids[0]) and _vnet_matches(b, ids[1]))
            or (_vnet_matches(a, ids[1]) and _vnet_matches(b, ids[0])))


def who_of(record: Mapping[str, Any]) -> str:
    """Who changed it: the caller, or for a change confirmed by a later run whoever started it."""
    if record.get("caller"):
        return str(record["caller"])
    first = sorted({str(p["firstCaller"]) for _, p in pairs_of(record) if p.get("firstCaller")})
    return ", ".join(first)


def vnet_name(vnet_id: Any) -> str:
    return str(vnet_id).rstrip("/").rsplit("/", 1)[-1]


def cause_texts(record: Mapping[str, Any], *lists: str) -> list[str]:
    texts: dict[str, None] = {}
    for _, pair in pairs_of(record, *lists):
        for cause in pair.get("cause") or []:
            if isinstance(cause, Mapping) and cause.get("text"):
                texts[str(cause["text"])] = None
    return list(texts)


@dataclass(frozen=True, slots=True)
class AuditFilter:
    window: Window = field(default_factory=Window)
    vnets: tuple[str, ...] = ()
    caller: str | None = None
    outcomes: frozenset[str] | None = frozenset({"committed"})

    def __post_init__(self) -> None:
        if len(self.vnets) > 2:
            raise AuditQueryError(f"--vnet given {len(self.vnets)} times: give one VNet, or two for a pair")
        if any(not v.strip() for v in self.vnets):
            raise AuditQueryError("--vnet needs a VNet name or resource id")
        if self.caller is not None and not self.caller.strip():
            raise AuditQueryError("--caller needs a name (part of the caller, any case)")

    def matches(self, logged: LoggedRecord) -> bool:
        doc = logged.record
        if not self.window.contains(logged.recorded_at):
            return False
        if self.outcomes is not None and doc.get("outcome") not in self.outcomes:
            return False
        if self.caller is not None and self.caller.strip().lower() not in who_of(doc).lower():
            return False
        return not self.vnets or any(pair_matches(p, self.vnets) for _, p in pairs_of(doc))

    def needles(self) -> tuple[str, ...]:
        """Lower-case texts that the stored line of every record this filter selects contains (none: no hint).

        Lines are canonical JSON (not ASCII-escaped), so a name appears as itself unless it holds a character
        JSON escapes; then no hint is given.
        """
        needles = [v.strip().rstrip("/").lower() for v in self.vnets]
        if self.caller is not None:
            needles.append(self.caller.strip().lower())
        if any(_JSON_ESCAPED_RE.search(n) for n in needles):
            return ()
        if self.outcomes is not None and len(self.outcomes) == 1:
            needles.append(f'"outcome":"{next(iter(self.outcomes))}"')
        return tuple(needles)


_JSON_ESCAPED_RE = re.compile(r'["\\\x00-\x1f]')


# ----------------------------------------------------------------------------------------------------------------
# Answers
# ----------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Change:
    """A record as `audit list` shows it."""

    logged: LoggedRecord
    alert_id: str | None
    deliveries: tuple[str, ...]
    attempts: tuple[Attempt, ...] = ()

    def to_json(self) -> JsonDict:
        return {**self.logged.record, "query": {
            "file": self.logged.file, "line": self.logged.line, "parts": self.logged.parts,
            "alertId": self.alert_id, "deliveries": list(self.deliveries),
            "attempts": [{"time": _iso(a.time), "notifier": a.notifier, "delivered": a.delivered, "runId": a.run_id}
                         for a in self.attempts]}}


def change_of(logged: LoggedRecord, attempts: Mapping[str, Sequence[Attempt]]) -> Change:
    """A record with the alert it raised and that alert's attempts (of those in `attempts`)."""
    if logged.record.get("outcome") == DELIVERY:
        return Change(logged, None, ())
    alert_id = alert_id_of(logged, attempts)
    if alert_id is None:
        return Change(logged, None, ())
    notifiers = [str(n) for n in logged.record.get("notifiers") or []]
    return Change(logged, alert_id, tuple(delivery_summary(alert_id, attempts, notifiers)),
                  tuple(attempts.get(alert_id, ())))


def changes(records: Iterable[LoggedRecord], audit_filter: AuditFilter,
            wanted: set[str] | None = None) -> list[Change]:
    """The records the filter selects, newest first, each with its alert and where the alert was delivered.

    Reads `records` once; every `delivery` record among them counts, in the window or not. `wanted` receives the
    alert and run ids of each record selected, as it is read (so a reader can leave other deliveries unread).
    """
    attempts: dict[str, list[Attempt]] = {}
    selected: list[LoggedRecord] = []
    for logged in records:
        if logged.record.get("outcome") == DELIVERY:
            for alert_id, tries in delivery_attempts([logged]).items():
                attempts.setdefault(alert_id, []).extend(tries)
        if audit_filter.matches(logged):
            selected.append(logged)
            if wanted is not None:
                wanted.update(str(logged.record[k]) for k in ("alertId", "runId") if logged.record.get(k))
    out = [change_of(logged, attempts) for logged in selected]
    out.sort(key=lambda c: (c.logged.recorded_at, c.logged.seq), reverse=True)
    return out


@dataclass(frozen=True, slots=True)
class PairEvent:
    """One time a pair opened, closed, or started settling."""

    logged: LoggedRecord
    direction: str  # opened | closed | pending open | pending close
    pair: Mapping[str, Any]


def pair_history(records: Iterable[LoggedRecord], vnet_a: str, vnet_b: str) -> list[PairEvent]:
    """Every committed record that opened, closed or began settling the pair of `vnet_a` and `vnet_b`, oldest first.

    A name that stands for VNets with different ids in the log is ambiguous (give the id instead).
    """
    events: list[PairEvent] = []
    ids: dict[str, set[str]] = {}
    for logged in records:
        doc = logged.record
        if doc.get("outcome") != "committed":
            continue
        for key, pair in pairs_of(doc):
            if not pair_matches(pair, (vnet_a, vnet_b)):
                continue
            for query in (vnet_a, vnet_b):
                ids.setdefault(query, set()).update(
                    str(v).lower() for v in pair["vnets"] if _vnet_matches(query, str(v)))
            direction = key
            if key == "pending":
                direction = "pending open" if pair.get("direction") == "opened" else "pending close"
            events.append(PairEvent(logged, direction, pair))
    for query, found in ids.items():
        if len(found) > 1:
            raise AuditQueryError(f"VNet {query!r} names {len(found)} VNets in the log ({', '.join(sorted(found))}): "
                                  "give its resource id")
    events.sort(key=lambda e: (e.logged.recorded_at, e.logged.seq))
    return events
