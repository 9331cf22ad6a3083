"""The use case: read topology -> compute pairs -> diff against committed state -> commit -> notify -> record.

Alerts and audit records are committed with the state (an outbox) and removed only once done, so a crash or a
chat outage between commit and delivery loses nothing: the next run delivers what is left.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence, Set
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from shared.app.background import LazyPool
from shared.app.ports import (
    AuditLog,
    CommittedState,
    DeliveryError,
    IncompleteReadError,
    JsonDict,
    Notifier,
    RecheckQueue,
    ReportPublisher,
    ScopeRead,
    StateConflict,
    StateCorrupt,
    StateStore,
    TopologyReader,
    bounded_ids,
)
from shared.core.chain import ChainTail, EncodedRecord, canonical_array_bytes, canonical_json, holds_float
from shared.core.collector import collector_paused
from shared.core.coverage import Scope, baseline_held, cover, merge_unread
from shared.core.diff import PairChange, diff_pairs, settling_in
from shared.core.explain import explain_index, explain_pair
from shared.core.focus import FocusedRead, by_id, id_key, patch_copy, project, splice_canonical
from shared.core.health import (
    DEFAULT_LIMIT,
    LOG_MARKER_CLEARED,
    LOG_MARKER_RAISED,
    LOG_MARKER_RECONCILED,
    RAISED,
    Observation,
    Transition,
    assess,
    channel_of_condition,
    health_alert,
)
from shared.core.model import PairIndex, PairSet, ResourceId, Topology, TransitPair
from shared.core.policy import Policy
from shared.core.region import RegionIndex, closes, connection_reach, flags_only
from shared.core.report import build_report
from shared.core.snapshot import SnapshotError, parse_resources
from shared.core.transit import Endpoint, Gateways, changed_pairs, compute_pairs, endpoints_of, gateways_of
from shared.core.views import ChangeDocs, change_json

logger = logging.getLogger(__name__)

COMMITTED, NO_CHANGE, DUPLICATE, INCOMPLETE, LOST_RACE = (
    "committed", "no change", "duplicate", "incomplete read", "lost race")

DEAD_LETTER = "dead letter"
# An outbox item is tried at most this often; with the backoff below that is about a day of failing (a chat
# outage of hours loses nothing), then it goes to a dead-letter audit record and leaves the outbox.
MAX_DELIVERY_ATTEMPTS = 100
BACKOFF_CAP_SECONDS = 900.0  # an item waits at most one reconcile period between attempts
MAX_RETRY_AFTER_SECONDS = 3600.0  # a Retry-After beyond an hour is taken as an hour
# A delivery starts only while our claim outlasts its longest call by this much, else the claims are renewed
# first. Small: the lease itself keeps 5 s beyond one call (entrypoints.health_options), so the first delivery
# right after a commit needs no extra state write.
CLAIM_MARGIN_SECONDS = 1.0


# Severity of a pair change: (pair json, opened?) -> "critical" | "warning" | "info" (a policy decides).
Classifier = Callable[[JsonDict, bool], tuple[str, str | None]]


def default_classifier(pair: JsonDict, opened: bool) -> tuple[str, str | None]:
    return "warning", None


@dataclass(frozen=True, slots=True)
class RunTrigger:
    """Why a run happens: an Event Grid event, the timer reconcile, or a re-check of a settling change."""

    kind: str  # event | reconcile | recheck
    event_id: str | None = None
    operation: str | None = None
    resource_id: str | None = None
    caller: str | None = None
    correlation_id: str | None = None
    event_time: str | None = None

    def to_json(self) -> JsonDict:
        return {"kind": self.kind, "eventId": self.event_id, "operation": self.operation,
                "resourceId": self.resource_id}


@dataclass(frozen=True, slots=True)
class RunResult:
    outcome: str
    opened: list[JsonDict] = field(default_factory=list)  # confirmed openings (as alerted)
    closed: list[JsonDict] = field(default_factory=list)
    pending: list[JsonDict] = field(default_factory=list)
    delivered: list[str] = field(default_factory=list)
    undelivered: list[str] = field(default_factory=list)
    detail: str | None = None


def alert_parts(notifier: Notifier, alert: JsonDict, complete: JsonDict | None = None) -> list[tuple[str, JsonDict]]:
    """(outbox item id, payload) per post: one for a chat; a notifier that posts a large alert in several
    requests (the Event Grid publisher's batches) splits it up front, so each accepted post is settled on its own
    and a retry never repeats one. A splitting notifier gets `complete` (every pair, even of a summarised alert)."""
    split = getattr(notifier, "split", None)
    parts: list[JsonDict] = split(complete or alert) if callable(split) else [alert]
    if len(parts) <= 1:
        return [(f"{alert['id']}:{notifier.name}", parts[0] if parts else alert)]
    return [(f"{alert['id']}:{notifier.name}:{n}/{len(parts)}", part) for n, part in enumerate(parts, 1)]


def canonical_digest(resources: Sequence[Mapping[str, Any]]) -> str:
    """SHA-256 of the resources' canonical JSON (sorted by id, keys sorted, compact, UTF-8).

    orjson writes the same bytes as `json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)` for
    what a projection holds (strings, booleans, integers, lists, objects) about ten times faster: a 20k-VNet copy
    is 28 MB, digested on every event that changes it. What orjson refuses (integers past 64 bits, lone
    surrogates) goes through the standard library, which spells it as before.
    """
    return canonical_digest_and_bytes(resources)[0]


def canonical_digest_and_bytes(resources: Sequence[Mapping[str, Any]]) -> tuple[str, bytes | None]:
    """canonical_digest, and the bytes it hashed when they are also what the store writes for `resources` (the
    list already in id order, as every committed copy is): the store then writes them instead of writing the
    copy again."""
    ordered = by_id(resources)
    try:
        data = orjson.dumps(ordered, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        data = json.dumps(ordered, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8",
                                                                                                    "surrogatepass")
    in_order = len(ordered) == len(resources) and all(a is b for a, b in zip(ordered, resources, strict=True))
    return hashlib.sha256(data).hexdigest(), data if in_order else None


def _check_rows(resources: Sequence[Any], *, source: str) -> None:
    for i, raw in enumerate(resources):
        if not isinstance(raw, Mapping) or not isinstance(raw.get("id"), str) or not isinstance(raw.get("type"), str):
            raise SnapshotError(f"{source}: resource at [{i}] is not an object with an 'id' and a 'type'")


class _Computed:
    """Parsed topologies and their pairs by topology digest, for the last few digests this process saw.

    A digest names its projection's content, so an entry is never stale; a warm process then neither re-parses
    the committed working copy nor recomputes its pairs for every event.
    """

    def __init__(self, keep: int = 8, keep_pairs: int = 2) -> None:
        # Several digests: in a burst, runs that lost a commit race start again from the copy the winner just
        # committed, and each patched copy's parse shares all but a few objects with its predecessor (cheap to
        # keep). Whole pair sets are large (half a million pairs at 20k VNets): only the newest `keep_pairs`
        # entries keep theirs.
        self._keep = keep
        self._keep_pairs = keep_pairs
        self._entries: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def _entry(self, digest: str) -> dict[str, Any]:
        with self._lock:
            entry = self._entries.setdefault(digest, {})
            self._entries.move_to_end(digest)
            while len(self._entries) > self._keep:
                self._entries.popitem(last=False)
            for older in list(self._entries.values())[:-self._keep_pairs]:
                older.pop("pairs", None)  # its count stays
            return entry

    def _made(self, digest: str, what: str, make: Callable[[], Any]) -> Any:
        """The entry's `what`, made once (callers run inside Auditor.run, which pauses the collector)."""
        entry = self._entry(digest)
        if what not in entry:
            entry[what] = make()
        return entry[what]

    def _earlier(self, like: str | None) -> dict[str, Any]:
        return self._entries.get(like or "", {})

    def topology(self, digest: str, resources: Sequence[JsonDict], *, like: str | None = None) -> Topology:
        """The parsed copy; `like`: the digest of a copy this one was patched from (its parse is reused for every
        resource object the two share)."""
        topology: Topology = self._made(digest, "topology", lambda: parse_resources(
            resources, source="live read", previous=self._earlier(like).get("topology"), reusable=True))
        return topology

    def gateways(self, digest: str, resources: Sequence[JsonDict], *, like: str | None = None) -> Gateways:
        def make() -> Gateways:
            earlier = self._earlier(like)
            previous = ((earlier["topology"], earlier["gateways"])
                        if "topology" in earlier and "gateways" in earlier else None)
            return gateways_of(self.topology(digest, resources), previous=previous)
        gateways: Gateways = self._made(digest, "gateways", make)
        return gateways

    def pairs(self, digest: str, resources: Sequence[JsonDict], *, like: str | None = None) -> PairSet:
        pairs: PairSet = self._made(digest, "pairs", lambda: compute_pairs(
            self.topology(digest, resources), gateways=self.gateways(digest, resources, like=like)))
        self.counted(digest, len(pairs.pairs))
        return pairs

    def ids(self, digest: str, resources: Sequence[JsonDict]) -> frozenset[str]:
        """The copy's resource ids, lowercase: what an event's read asks the copy holds (once per copy, not per
        event: 25,000 ids at 20k VNets)."""
        ids: frozenset[str] = self._made(digest, "ids", lambda: frozenset(id_key(r) for r in resources))
        return ids

    def count(self, digest: str, known: int | None) -> int | None:
        """How many pairs the topology yields: as counted here, as the state says (`known`), else None."""
        entry = self._entry(digest)
        if "count" not in entry and known is not None:
            entry["count"] = known
        count: int | None = entry.get("count")
        return count

    def counted(self, digest: str, count: int) -> None:
        self._entry(digest)["count"] = count

    def region_index(self, digest: str, resources: Sequence[JsonDict]) -> RegionIndex | None:
        """The copy's RegionIndex (None: a copy shared.core.region does not follow), made once per copy."""
        index: RegionIndex | None = self._made(digest, "region", lambda: RegionIndex.of(resources))
        return index

    def carry(self, digest: str, what: str, value: Any) -> None:
        """Keep `value` as the copy `digest`'s `what` (made for another copy that it serves as well)."""
        self._entry(digest).setdefault(what, value)

    def holds(self, digest: str) -> bool:
        """Whether this process holds the parse and gateways of the copy `digest` (a warm process)."""
        with self._lock:
            entry = self._entries.get(digest)
            return entry is not None and "topology" in entry and "gateways" in entry


# Two threads: an abandoned read (its run found a duplicate, or a newer head) may still be finishing.
_EARLY_READERS = LazyPool(2, "event-read")
# A large change's audit record is stashed in parts (40 of 3 MB for 97,000 pairs): written (or uploaded) one after
# another, each waits for the one before; side by side, the writes and their flushes overlap.
_STASHERS = LazyPool(4, "audit-stash")


def _stash_all(stash: Callable[[str, bytes], None], named: Sequence[tuple[str, EncodedRecord]]) -> None:
    """Stash each (name, part), side by side when there are several; returns once every one is stored, and
    raises the first failure (after the others finished: none is left writing behind the run)."""
    if len(named) <= 1:
        for name, part in named:
            stash(name, part.data())
        return
    def store(name: str, part: EncodedRecord) -> None:
        stash(name, part.data())  # made in the worker: at most one part per worker is held twice in memory

    pool = _STASHERS.get()
    futures = [pool.submit(store, name, part) for name, part in named]
    failures = [exc for exc in (future.exception() for future in futures) if exc is not None]
    if failures:
        raise failures[0]


class _EarlyRead:
    """An event's ARM read, started on a thread as soon as the state's head is read, while the store reads the
    working copy that head names (28 MB at 20k VNets: a blob download in Azure, the largest wait of a new
    process's first event). The read itself waits on the network, so the two overlap.

    Safe because the read starts after the head was read: whatever read fed that head's commit is older than
    ours, so our patch never reverts a newer commit. A run that ends up loading another head (the store read
    again after a concurrent commit) discards this read and reads as usual; a later commit than the head we
    loaded is refused at save (its ETag), and the retry reads again. `known` (which references are new to the
    working copy) waits for the copy's ids, given by `take` once the copy is loaded.
    """

    def __init__(self, read_one: Callable[..., FocusedRead | None], trigger: RunTrigger) -> None:
        self._read_one, self._trigger = read_one, trigger
        self._ids: frozenset[str] | None = None
        self._ready = threading.Event()
        self._etag: str | None = None
        self._future: Future[FocusedRead | None] | None = None

    def start(self, etag: str | None, head: Mapping[str, Any]) -> None:
        """StateStore.load's `on_head`: start the read (once; a later head is caught by `take`), unless the head
        already shows the event decided (a duplicate costs no ARM call)."""
        if self._future is not None or etag is None:
            return
        seen = head.get("processedEventIds")
        if isinstance(seen, list) and self._trigger.event_id in seen:
            return
        self._etag = etag
        self._future = _EARLY_READERS.get().submit(self._read_one, self._trigger.resource_id, known=self._known)

    def _known(self, resource_id: str) -> bool:
        self._ready.wait()
        return self._ids is None or resource_id in self._ids  # abandoned: nothing more is read

    def take(self, etag: str | None, ids: frozenset[str]) -> Future[FocusedRead | None] | None:
        """The read, if it was started for the head at `etag` (what the run loaded); None: read now instead."""
        if self._future is None or etag != self._etag:
            self.abandon()
            return None
        self._ids = ids
        self._ready.set()
        return self._future

    def abandon(self) -> None:
        """The run goes on without this read (its result and any error are dropped with the future)."""
        self._ready.set()


class _RegionRefused(Exception):
    """The region cannot decide this change as the whole copy would (the whole copy decides)."""


@dataclass(frozen=True)
class _Region:
    """The resources of the committed copy a flag flip can reach (before), and the same with the flip (after)."""

    before: list[JsonDict]
    after: list[JsonDict]
    index: RegionIndex | None  # the committed copy's, when it serves the changed copy too (a flag flip)


class _Section:
    """A lock held from construction until the first `release` (later calls do nothing)."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        lock.acquire()
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._lock.release()


def _pair_key(pair: Mapping[str, Any]) -> tuple[str, str]:
    a, b = pair["vnets"]
    return (a.lower(), b.lower())


# The head keeps the committed copy's parse warnings only while they are short: it is read on every run.
KEPT_WARNINGS_CHARS = 32_000


def _kept_warnings(warnings: Sequence[str] | None) -> list[str] | None:
    if warnings is None or sum(len(w) for w in warnings) > KEPT_WARNINGS_CHARS:
        return None
    return list(warnings)


def _sharing(resources: list[JsonDict], committed: Sequence[JsonDict]) -> list[JsonDict]:
    """`resources` with each one equal to its committed copy replaced by that copy (the same object)."""
    committed_by_id = {id_key(r): r for r in committed}
    out = []
    for resource in resources:
        same = committed_by_id.get(id_key(resource))
        out.append(same if same is not None and same == resource else resource)
    return out


def _pair_ids(pair: Mapping[str, Any]) -> tuple[ResourceId, ResourceId]:
    a, b = pair["vnets"]
    return ResourceId.parse(a), ResourceId.parse(b)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Auditor:
    """One instance per process; every `run` is independent and safe to run concurrently with others."""

    reader: TopologyReader
    state: StateStore
    audit: AuditLog
    notifiers: Sequence[Notifier]
    recheck: RecheckQueue | None = None
    classify: Classifier = default_classifier
    notify_info: bool = False  # accepted paths (severity info) are audited but not sent to chat by default
    recheck_delay_seconds: int = 120
    # An outbox item claimed by a run that died is taken over once its claim lapses; every settle renews the
    # claims a live run still holds, so a short lease is safe as long as one delivery call stays under it.
    lease_seconds: int = 60
    health_limit: timedelta = DEFAULT_LIMIT
    max_wait_seconds: float = 20.0  # how long one run may wait for a webhook's "not before" time
    max_delivery_attempts: int = MAX_DELIVERY_ATTEMPTS
    max_commit_attempts: int = 40  # a commit also stashes its audit record (one more request inside the race)
    backoff_cap_seconds: float = 1.0
    clock: Callable[[], datetime] = _utcnow
    sleep: Callable[[float], None] = time.sleep
    report: ReportPublisher | None = None  # the report page, written after each committed change
    report_policy: Policy | None = None  # marks forbidden and unexpected paths on the report page
    # A new process's first event that flips a gateway's flags decides from the region of the copy it reaches
    # (shared.core.region) instead of parsing the whole copy; False: always the whole copy (tests compare the two).
    region_path: bool = True
    # Retry-After learned by this process, per notifier name (also committed with the outbox as `webhooks`).
    _holds: dict[str, JsonDict] = field(default_factory=dict, init=False, repr=False)
    _computed: _Computed = field(default_factory=lambda: _Computed(), init=False, repr=False)
    _serial: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False)

    def __post_init__(self) -> None:
        # The state's loads check it against the audit chain's end: a state older than a run the chain shows was
        # committed (rolled back to an older copy) is refused like a tampered one.
        watch, last = getattr(self.state, "watch_chain", None), getattr(self.audit, "last_record", None)
        if callable(watch) and callable(last):
            watch(last)

    # ---- the run -------------------------------------------------------------------------------------------------
    def run(self, trigger: RunTrigger) -> RunResult:
        run_id = uuid.uuid4().hex
        conflicts = 0
        for _ in range(self.max_commit_attempts):
            try:
                # The collector waits for the whole attempt, not only around parsing: the working copy (millions
                # of containers, all alive) makes each full collection walk it again, and one landed in whatever
                # allocated next (measured: half a second building an event's audit record). What a run makes is
                # acyclic or freed by reference counting; what it leaves alive is promoted to the oldest generation
                # (not walked once more, 0.23 s after a large change), and a full collection frees any cycle later.
                with collector_paused(promote=True):
                    result = self._attempt(trigger, run_id, conflicts)
            except StateConflict:
                conflicts += 1
                logger.info("run %s lost a commit race (%d); re-reading and recomputing", run_id, conflicts)
                # Jittered backoff spreads a burst of concurrent runs out instead of letting them collide again.
                self.sleep(random.uniform(0, min(self.backoff_cap_seconds, 0.02 * 2**conflicts)))
                continue
            return result
        self._append_direct(trigger, run_id, LOST_RACE, conflicts=conflicts,
                            detail=f"gave up after {conflicts} commit conflicts; the next run will decide")
        return RunResult(outcome=LOST_RACE, detail="too many concurrent commits")

    def warm(self) -> bool:
        """Load the committed working copy and work out what an event builds on (its parse and its gateways), so
        that a new instance's first event runs as a warm one (0.5 s instead of 1.4 s at 20k VNets): called by the
        Functions warmup trigger when the platform adds an instance. True when a copy is now held.

        Runs serialised with the runs (an event arriving meanwhile waits for it and then uses what it made). The
        reader's own first-call costs are paid too, when it has a `warm()` (ResourceGraphTopologyReader.warm). It
        never raises and never writes: a state it cannot load is left to the next run, which refuses and reports
        it through the usual paths (health alert, audit record).
        """
        held = False
        try:
            with collector_paused(), self._serial:
                state, _ = self.state.load()
                if state is not None and state.working_copy_ok and state.resources:
                    self._computed.gateways(state.topology_digest, state.resources)
                    self._computed.ids(state.topology_digest, state.resources)
                    held = True
        except Exception as exc:  # a warm-up is an optimisation: the next run meets the same error and reports it
            logger.warning("warm-up skipped: %s", _short(exc))
        warm_reader = getattr(self.reader, "warm", None)
        if callable(warm_reader):
            try:
                warm_reader()  # the reader's first-call costs (SDK transport, a token): see the reader's warm()
            except Exception as exc:  # the event's own read meets the same error and reports it
                logger.warning("warm-up of the reader skipped: %s", _short(exc))
        return held

    def _attempt(self, trigger: RunTrigger, run_id: str, conflicts: int) -> RunResult:
        """One attempt, its deciding part (load to commit) serialised within this process.

        A process runs its invocations on threads, and deciding is CPU work the interpreter runs one thread at a
        time anyway: run side by side, every commit made the other runs' work void (a burst of 16 events at 20k
        VNets made 66 lost commit races, 53 s of CPU). Held in turn, runs in one process never lose a race to each
        other; other instances still meet at the state's ETag. Delivery happens after the section is left.
        """
        section = _Section(self._serial)
        try:
            return self._attempt_in(trigger, run_id, conflicts, section)
        finally:
            section.release()

    def _attempt_in(self, trigger: RunTrigger, run_id: str, conflicts: int, section: _Section) -> RunResult:
        early = self._early_read(trigger)
        try:
            return self._attempt_early(trigger, run_id, conflicts, section, early)
        finally:
            if early is not None:
                early.abandon()  # a read not taken (or taken and done) no longer waits

    def _early_read(self, trigger: RunTrigger) -> _EarlyRead | None:
        read_one = getattr(self.reader, "read_focused", None)
        if read_one is None or trigger.kind != "event" or not trigger.resource_id:
            return None
        return _EarlyRead(read_one, trigger)

    def _attempt_early(self, trigger: RunTrigger, run_id: str, conflicts: int, section: _Section,
                       early: _EarlyRead | None) -> RunResult:
        refused, floor = "", 0
        try:
            state, etag = (self.state.load(on_head=early.start) if early is not None else self.state.load())
        except StateCorrupt as exc:
            # Refused loudly (health alert, audit record) and rebuilt from a full read as a new baseline, which
            # announces nothing: what changed since the last good commit cannot be proven. Its sequence goes on
            # after the last run the audit chain shows.
            logger.error("run %s: %s; rebuilding it from a full read as a new baseline", run_id, exc)
            state, etag, refused, floor = None, exc.etag, str(exc), exc.sequence or 0
        self._seed_audit_tail(state)
        if trigger.event_id and state is not None and trigger.event_id in state.processed_event_ids:
            self._append_direct(trigger, run_id, DUPLICATE, conflicts=conflicts)
            section.release()
            delivered, undelivered = self._flush(run_id)
            return RunResult(outcome=DUPLICATE, delivered=delivered, undelivered=undelivered)
        read_warnings: list[str] = []
        scope: ScopeRead | None = None  # a whole-scope read (None: the event path)
        region: _Region | None = None  # the event path in a new process, for a flag flip (shared.core.region)
        canonical: bytes | None = None  # the new copy's canonical JSON, when patched from the committed one's
        known: list[str] | None = None  # the topology's warnings as the head kept them, when they still hold
        try:
            focused = self._read_focused(trigger, state, early, etag)
            like = None  # the digest of the copy this one was patched from
            if focused is not None and state is not None:
                read_warnings = list(focused.warnings)
                patched = patch_copy(state.resources, focused)
                relevant = state.resources if patched is None else patched
                digest, canonical = ((state.topology_digest, None) if patched is None
                                     else self._patched_digest(state, patched))
                if patched is not None:
                    like = state.topology_digest
                    region = self._region_or_none(state, patched, run_id)
                    if region is not None:
                        known = state.topology_warnings  # a flag flip moves no warning (shared.core.region)
                    else:
                        # Parse the committed copy first (if not held yet): the patched one reuses all they share.
                        self._computed.topology(like, state.resources)
            else:
                scope = self._read_scope(trigger)
                resources, read_warnings = scope.resources, list(scope.warnings)
                _check_rows(resources, source="live read")
                relevant = by_id(project(resources))  # only what can move a pair is committed
                if scope.missed and state is not None and state.working_copy_ok:  # their last read stands in
                    relevant = by_id(merge_unread(relevant, state.resources, set(scope.missed)))
                if state is not None and state.working_copy_ok and relevant == state.resources:
                    relevant, digest = state.resources, state.topology_digest  # equal: no need to digest again
                else:
                    digest, canonical = canonical_digest_and_bytes(relevant)
                    if state is not None and state.working_copy_ok and state.resources:
                        # Each resource equal to its committed copy is that very object, so the parse (and the
                        # gateways) of the committed copy are reused for it: a reconcile costs what changed.
                        relevant = _sharing(relevant, state.resources)
                        like = state.topology_digest
                        self._computed.topology(like, state.resources)
            if region is None:
                # A read equal to the committed copy needs no parse when the head kept what parsing it warned about.
                known = (state.topology_warnings if state is not None and state.working_copy_ok
                         and digest == state.topology_digest else None)
            after_topology = (None if known is not None or region is not None
                              else self._computed.topology(digest, relevant, like=like))
        except (IncompleteReadError, SnapshotError) as exc:
            detail = str(exc)
            logger.warning("run %s: topology read incomplete, nothing committed: %s", run_id, detail)
            self._append_direct(trigger, run_id, INCOMPLETE, conflicts=conflicts, detail=detail)
            if trigger.kind != "recheck" and self.recheck is not None:
                self._schedule_recheck(trigger, reason="incomplete read")
            unreadable = exc.unreadable if isinstance(exc, IncompleteReadError) else {}
            self._observe(run_id, Observation(read_complete=False, read_error=detail, unreadable=unreadable,
                                              channel_failures=self._misconfigured()))
            section.release()
            delivered, undelivered = self._flush(run_id)
            return RunResult(outcome=INCOMPLETE, detail=detail, delivered=delivered, undelivered=undelivered)

        prewrite = getattr(self.state, "prewrite", None)
        if callable(prewrite) and (state is None or not state.working_copy_ok or digest != state.topology_digest):
            # The new working copy is known: the store writes it while this run decides (save waits for it).
            prewrite(digest, relevant, canonical)
        base = state if state is not None and state.working_copy_ok else None
        if state is not None and base is None:
            refused = refused or "the committed working copy failed its check (damaged or edited)"
            read_warnings.append(f"the committed working copy could not be loaded intact; re-baselined from a full "
                                 f"read at run {state.sequence + 1}: changes since run {state.sequence} are not "
                                 "announced")
        # A subscription read again releases what was held for it, even when the topology's digest is unchanged.
        released = scope is not None and base is not None and bool(set(base.unread) - set(scope.missed))
        unchanged = base is not None and digest == base.topology_digest and not released
        if base is not None and unchanged:
            # Nothing that can move a pair changed since the commit: the committed decision still holds.
            decision = Decision(pairs=base.pairs, opened=[], closed=[], pending=base.pending,
                                warnings=[*(known or () if after_topology is None else after_topology.warnings),
                                          *read_warnings], basis=f"seq={base.sequence}",
                                pair_warnings=base.pair_warnings)
        else:
            in_region = None
            if region is not None and base is not None:
                try:
                    in_region = self._decide_in_region(base, relevant, digest, region, trigger)
                except _RegionRefused as exc:
                    logger.info("run %s: %s; parsing the whole copy", run_id, exc)
                    region, known = None, None
                except Exception as exc:  # an optimisation: the whole copy decides instead (nothing is lost)
                    logger.warning("run %s: deciding from the region failed (%s); parsing the whole copy", run_id,
                                   _short(exc))
                    region, known = None, None
            if in_region is not None:
                decision = in_region
            else:
                after_topology = after_topology or self._computed.topology(digest, relevant, like=like)
                decision = self._decide(base, relevant, digest, after_topology, trigger,
                                        event_path=focused is not None)
            if read_warnings:
                decision = replace(decision, warnings=[*decision.warnings, *read_warnings])
        decision, unread, held = self._cover(decision, base, scope, relevant, digest)
        failed = scope.failed if scope is not None else {}
        seen = Observation(read_complete=not failed, reconciled=trigger.kind == "reconcile" and not failed,
                           read_error="; ".join(f"subscription {s}: {why}" for s, why in failed.items()),
                           unreadable={s: str(v.get("why")) for s, v in unread.items() if v.get("access")},
                           state_refused=refused, state_trusted=base is not None,
                           channel_failures=self._misconfigured())
        if unchanged and not trigger.event_id and base is not None and _same_unread(unread, base.unread):
            # A reconcile that found nothing new: record it, but do not rewrite the state (unless its health moved).
            self._append_direct(trigger, run_id, NO_CHANGE, conflicts=conflicts, warnings=decision.warnings)
            self._observe(run_id, seen)
            self._log_reconciled(trigger)
            section.release()
            delivered, undelivered = self._flush(run_id)
            return RunResult(outcome=NO_CHANGE, delivered=delivered, undelivered=undelivered)

        changed = decision.opened or decision.closed or base is None or decision.pending != base.pending
        outcome = COMMITTED if changed else NO_CHANGE
        now = self.clock()
        sequence = (state.sequence if state else floor) + 1
        sendable = (self._sendable(decision.opened), self._sendable(decision.closed))  # once: 97,000 pairs
        alert = self._alert(decision, trigger, run_id, now, sendable)
        if alert is not None and self.report is not None:
            alert["report"] = dict(zip(("latest", "copy"), self.report.names(sequence=sequence, when=now),
                                       strict=True), location=self.report.location)
        # The record names its alert and the channels it goes to, so `audit show`/`list` can find its deliveries.
        alert_ref = {"alertId": alert["id"], "notifiers": [n.name for n in self.notifiers]} if alert else {}
        record = self._record(trigger, run_id, outcome, conflicts=conflicts, opened=decision.opened,
                              closed=decision.closed, pending=decision.pending, warnings=decision.warnings,
                              extra={"baseline": base is None, "topologyDigest": digest,
                                     **({"stateRebuilt": True, "refused": refused} if refused else {}),
                                     "stateSequence": sequence,
                                     **({"unread": {s: v["why"] for s, v in unread.items()}, "held": held}
                                        if unread else {}),
                                     **({"pairs": decision.committed_count}
                                        if decision.committed_count is not None else {}), **alert_ref})
        # Each pair serialised once: the stash and the audit line share the text.
        parts = encode_parts(record, floats=not decision.float_free)
        encoded: dict[str, EncodedRecord] = {}
        items: list[JsonDict] = []
        stash = getattr(self.state, "stash", None)
        stashed: list[tuple[str, EncodedRecord]] = []
        for part in parts:
            item_id = f"{run_id}:audit:{part.record.get('part', 1)}"
            encoded[item_id] = part
            if stash is not None:
                # The record waits in its own file/blob, never inside the state: the head stays small.
                name = f"{run_id}-{part.record.get('part', 1)}"
                stashed.append((name, part))
                item = self._item("audit", item_id, None, run_id, now)
                item.update({"stash": name, "stateSequence": sequence, "time": record["time"]})
            else:
                item = self._item("audit", item_id, dict(part.record), run_id, now)
            items.append(item)
        if stash is not None:
            _stash_all(stash, stashed)  # every part is stored before the head that names it is saved
        if alert is not None:
            complete = self._complete_alert(alert, sendable)
            items += [self._item("alert", item_id, part, run_id, now, notifier=n.name)
                      for n in self.notifiers for item_id, part in alert_parts(n, alert, complete)]
        previous = state or CommittedState()
        health, transitions = assess(previous.health, seen, now=now, limit=self.health_limit)
        items += self._health_items(transitions, run_id, now)
        outbox = [self._claim(i, run_id, now) for i in previous.outbox] + items
        new_state = CommittedState(
            pairs=decision.pairs, resources=relevant, topology_digest=digest,
            processed_event_ids=(bounded_ids(previous.processed_event_ids, trigger.event_id)
                                 if trigger.event_id else previous.processed_event_ids),
            outbox=outbox, pending=decision.pending, sequence=sequence, audit_tail=previous.audit_tail,
            health=health, webhooks=previous.webhooks, unread=unread,
            topology_pairs=self._computed.count(digest, base.topology_pairs if unchanged and base else None),
            topology_warnings=_kept_warnings(after_topology.warnings if after_topology is not None else known),
            pair_warnings=_kept_warnings(decision.pair_warnings),
        )
        # StateConflict -> the caller re-reads and recomputes; its next attempt overwrites the same stash names
        # (run id + part), so the stash is not removed here (one request less inside the commit race).
        self.state.save(new_state, etag=etag)
        section.release()
        _log_transitions(transitions)
        self._log_reconciled(trigger)
        if decision.pending and self.recheck is not None:
            self._schedule_recheck(trigger, reason="settling")
        delivered, undelivered = self._process_outbox(
            run_id, [i for i in outbox if i.get("claimedBy") == run_id], encoded, new_state.webhooks)
        if outcome == COMMITTED and self.report is not None:
            self._publish_report(after_topology or self._computed.topology(digest, relevant),
                                 self._computed.pairs(digest, relevant), digest, sequence, now)
        return RunResult(outcome=outcome, opened=decision.opened, closed=decision.closed, pending=decision.pending,
                         delivered=delivered, undelivered=undelivered)

    def _patched_digest(self, state: CommittedState, patched: list[JsonDict]) -> tuple[str, bytes | None]:
        """The patched copy's digest, and its canonical JSON when made by patching the committed copy's, which
        the store holds when it read or wrote them in this process (a 20k-VNet copy is 28 MB: written whole, it
        takes longer than the rest of an event's digest and write together)."""
        held = getattr(self.state, "canonical_bytes", None)
        data = held(state.topology_digest) if callable(held) else None
        spliced = splice_canonical(data, state.resources, patched) if isinstance(data, bytes) else None
        if spliced is None:
            return canonical_digest_and_bytes(patched)
        return hashlib.sha256(spliced).hexdigest(), spliced

    def _region_or_none(self, state: CommittedState, patched: list[JsonDict], run_id: str) -> _Region | None:
        """_region, or None when it fails: the region is an optimisation, and the whole copy decides instead."""
        try:
            return self._region(state, patched)
        except Exception as exc:
            logger.warning("run %s: the region of the copy could not be worked out (%s); parsing the whole copy",
                           run_id, _short(exc))
            return None

    def _region(self, state: CommittedState, patched: list[JsonDict]) -> _Region | None:
        """The region of the committed copy an event's patch can reach, when this process does not hold the copy's
        parse and the patch only flips one VNet gateway's traffic flags, or creates, deletes or changes one
        connection (shared.core.region); else None.

        The head must hold what the region cannot see: the whole copy's pair count and warnings (a flag flip
        moves neither the topology's nor the gateways' warnings, and RegionIndex.region refuses a gateway on a
        circuit with Global Reach, whose warnings the flags do move).
        A state with held subscriptions takes the whole copy."""
        if (not self.region_path or self._computed.holds(state.topology_digest) or state.topology_pairs is None
                or state.topology_warnings is None or state.pair_warnings is None or state.unread):
            return None
        # The patch keeps every other resource object: what it removed and added are found by identity.
        kept_old, kept_new = {id(r) for r in patched}, {id(r) for r in state.resources}
        removed = [r for r in state.resources if id(r) not in kept_old]
        added = [r for r in patched if id(r) not in kept_new]
        changed = removed + added
        if not changed or len(removed) > 1 or len(added) > 1 or len({id_key(r) for r in changed}) != 1:
            return None
        flip = bool(removed) and bool(added) and flags_only(removed[0], added[0])
        circuits: list[str] = []
        if flip:
            gateway, closing = str(removed[0]["id"]), closes(removed[0], added[0])
        else:
            gateway_and_circuits = connection_reach(changed)
            if gateway_and_circuits is None:
                return None
            (gateway, circuits), closing = gateway_and_circuits, True
        # The index is kept per copy, and serves a flipped copy too (a flag flip moves nothing it holds): a
        # process's later flips cost the region, not the index (a pass over the copy and a parse of its gateways).
        index: RegionIndex | None = self._computed.region_index(state.topology_digest, state.resources)
        # The committed pairs still settling are read too (decide pairs them again, and may close them).
        settling = [*state.pairs, *state.pending]
        before = index.region(state.resources, gateway, closing=closing or bool(settling), circuits=circuits,
                              vnets=[str(v) for d in settling for v in d.get("vnets", ())],
                              named=_named(state.pending)) if index else None
        if index is None or before is None:
            return None
        gone = {id(r) for r in removed}
        after = by_id([*(r for r in before if id(r) not in gone), *added])
        return _Region(before=before, after=after, index=index if flip else None)

    def _decide_in_region(self, base: CommittedState, resources: list[JsonDict], digest: str, region: _Region,
                          trigger: RunTrigger) -> Decision:
        """decide() on the region's two sides: the pairs that moved, with their causes, as the whole copy gives
        them (tests/unit/test_region.py); the whole copy's count and warnings follow from the head."""
        before = parse_resources(region.before, source="live read", reusable=True)
        after = parse_resources(region.after, source="live read", previous=before)
        if before.warnings != after.warnings:
            # The change draws a warning of its own (a connection without a type, a gateway or a circuit): the
            # head's warnings no longer hold, so the whole copy decides.
            raise _RegionRefused("the change moves the topology's warnings")
        before_gws = gateways_of(before)
        sides = changed_pairs(before, before_gws, after, gateways_of(after, previous=(before, before_gws)),
                              also=[_pair_ids(d) for d in base.pairs])
        assert base.topology_pairs is not None and base.pair_warnings is not None  # checked by _region
        after_count = base.topology_pairs + len(sides[1].pairs) - len(sides[0].pairs)
        self._computed.counted(digest, after_count)
        if region.index is not None:
            self._computed.carry(digest, "region", region.index)
        after_side = PairSet(pairs=sides[1].pairs, warnings=tuple(base.pair_warnings), endpoints=sides[1].endpoints)
        return decide(base, resources, after, trigger, self.classify, now=self.clock(), after_pairs=after_side,
                      before_computed=(before, sides[0]), after_count=after_count)

    def _decide(self, base: CommittedState | None, resources: list[JsonDict], digest: str, after: Topology,
                trigger: RunTrigger, *, event_path: bool) -> Decision:
        if base is None:
            return decide(None, resources, after, trigger, self.classify, now=self.clock(),
                          after_pairs=self._computed.pairs(digest, resources))
        before = self._computed.topology(base.topology_digest, base.resources)
        count = self._computed.count(base.topology_digest, base.topology_pairs)
        if event_path and count is not None:
            # An event moved a few resources: only the circuits they can have moved are paired (changed_pairs), not
            # the whole estate (half a million pairs at 20k VNets); the number of pairs follows from the two sides.
            sides = changed_pairs(before, self._computed.gateways(base.topology_digest, base.resources), after,
                                  self._computed.gateways(digest, resources, like=base.topology_digest),
                                  also=[_pair_ids(d) for d in base.pairs])
            after_count = count + len(sides[1].pairs) - len(sides[0].pairs)
            self._computed.counted(digest, after_count)
            return decide(base, resources, after, trigger, self.classify, now=self.clock(), after_pairs=sides[1],
                          before_computed=(before, sides[0]), after_count=after_count)
        before_pairs = self._computed.pairs(base.topology_digest, base.resources)
        return decide(base, resources, after, trigger, self.classify, now=self.clock(),
                      after_pairs=self._computed.pairs(digest, resources, like=base.topology_digest),
                      before_computed=(before, before_pairs))

    def _publish_report(self, topology: Topology, pairs: PairSet, digest: str, sequence: int, now: datetime) -> None:
        """The report page of what was just committed. Never fails the run: the state and alerts are what count,
        and the next committed change writes the page again."""
        assert self.report is not None
        try:
            page = build_report(topology, pairs, endpoints_of(topology), generated_at=now, policy=self.report_policy,
                                source=f"live read, committed run {sequence} (topology sha256 {digest[:16]}…)")
            self.report.publish(page, sequence=sequence, when=now)
        except Exception:
            logger.exception("run %d: could not write the report page to %s; the next change writes it again",
                             sequence, self.report.location)

    def _misconfigured(self) -> dict[str, str]:
        """Channels whose setting exists but cannot be used (notify.UnusableWebhookNotifier.unusable says why): a
        health failure at every run, raised at once, even while there is nothing to post."""
        return {n.name: str(reason) for n in self.notifiers if (reason := getattr(n, "unusable", None))}

    def _read_scope(self, trigger: RunTrigger) -> ScopeRead:
        """The whole scope; a reader that can tell which subscriptions it missed lets the run decide the rest."""
        read_scope = getattr(self.reader, "read_scope", None)
        if callable(read_scope):
            scope: ScopeRead = read_scope(focus_resource_id=trigger.resource_id)
            return scope
        resources = self.reader.read(focus_resource_id=trigger.resource_id)
        return ScopeRead(resources=resources, warnings=list(getattr(self.reader, "last_read_warnings", None) or []))

    def _cover(self, decision: Decision, base: CommittedState | None, scope: ScopeRead | None,
               relevant: Sequence[JsonDict], digest: str) -> tuple[Decision, JsonDict, list[JsonDict]]:
        """Keep every pair that touches a subscription not read at its committed status (shared.core.coverage).

        A whole-scope read says which subscriptions it missed; an event run keeps holding what the last whole-scope
        read missed. Returns the decision, the `unread` map to commit, and the changes held.
        """
        now = self.clock().isoformat()
        prior: JsonDict = base.unread if base is not None else {}
        if scope is None:
            unread = prior
            missed = {s: str(v.get("why", "")) for s, v in prior.items()}
            first_reads: dict[str, str] = {}
        else:
            missed = scope.missed
            access = {s.lower() for s in scope.unreadable}
            unread = {s: {"why": why, "since": (prior.get(s) or {}).get("since") or now, "access": s in access,
                          "baseline": base is None or bool((prior.get(s) or {}).get("baseline"))}
                      for s, why in sorted(missed.items())}
            first_reads = {s: "read for the first time since the baseline" for s, v in prior.items()
                           if v.get("baseline") and s not in missed}
        if not missed and not first_reads and not any(d.get("held") for d in (base.pairs if base else [])):
            return decision, unread, []
        hold = Scope.of(missed, relevant)
        baselined = 0
        if base is None:
            pairs, held = baseline_held(self._computed.pairs(digest, relevant), decision.pairs, hold, now)
        else:
            done = cover(decision.opened, decision.closed, decision.pending, decision.pairs, committed=base.pairs,
                         hold=hold, baseline=Scope.of(first_reads, relevant), now=now)
            decision = replace(decision, opened=done.opened, closed=done.closed, pending=done.pending)
            pairs, held, baselined = done.deviations, done.held, done.baselined
        if pairs != decision.pairs:
            signs = [d.get("delta") for d in pairs]
            # The count an event path kept (changed_pairs) spares pairing the whole estate again.
            count = self._computed.count(digest, None)
            total = count if count is not None else len(self._computed.pairs(digest, relevant).pairs)
            decision = replace(decision, pairs=pairs, committed_count=total - signs.count("-") + signs.count("+"))
        notes = [f"subscription {s} was not read ({why}): the pairs that touch it keep their committed status"
                 for s, why in missed.items()]
        if held:
            notes.append(f"{len(held)} pair change(s) touching a subscription that was not read are held, neither "
                         "opened nor closed, until it is read again")
        if baselined:
            notes.append(f"{baselined} pair change(s) through subscription(s) {', '.join(sorted(first_reads))}, read "
                         "for the first time since the baseline, are recorded as the baseline, not announced")
        return replace(decision, warnings=[*decision.warnings, *notes]), unread, held

    def _read_focused(self, trigger: RunTrigger, state: CommittedState | None, early: _EarlyRead | None = None,
                      etag: str | None = None) -> FocusedRead | None:
        """The event path: only the event's resource is read (ARM), then applied to the committed working copy.

        Anything else (baseline, reconcile, re-check, a missing or damaged working copy, a reader that can only
        read the whole scope) reads the whole scope. `early`: the read, if the load started it (_EarlyRead).
        """
        read_one = getattr(self.reader, "read_focused", None)
        if (read_one is None or trigger.kind != "event" or not trigger.resource_id or state is None
                or not state.working_copy_ok):
            return None
        ids = self._computed.ids(state.topology_digest, state.resources)
        started = early.take(etag, ids) if early is not None else None
        result: FocusedRead | None = (started.result() if started is not None
                                      else read_one(trigger.resource_id, known=ids.__contains__))
        return result

    def _seed_audit_tail(self, state: CommittedState | None) -> None:
        seed = getattr(self.audit, "seed_tail", None)
        tail = state.audit_tail if state is not None else None
        if seed is None or not tail:
            return
        try:
            seed(ChainTail(str(tail["file"]), int(tail["size"]), int(tail["seq"]), str(tail["lineHash"])))
        except (KeyError, TypeError, ValueError):
            logger.info("the committed audit tail is unreadable; the log reads its last line instead")

    def _audit_tail(self) -> JsonDict | None:
        tail = getattr(self.audit, "tail", None)
        if not isinstance(tail, ChainTail):
            return None
        return {"file": tail.file, "size": tail.size, "seq": tail.seq, "lineHash": tail.line_hash}

    def _drop_stashes(self, items: Sequence[JsonDict]) -> None:
        drop = getattr(self.state, "drop", None)
        if drop is None:
            return
        for item in items:
            if item.get("stash"):
                try:
                    drop(item["stash"])
                except Exception:  # housekeeping: an orphan stash is never read (no outbox item names it)
                    logger.info("could not remove stashed audit record %s", item["stash"])

    # ---- outbox ----------------------------------------------------------------------------------------------------
    def _item(self, kind: str, item_id: str, payload: JsonDict | None, run_id: str, now: datetime,
              notifier: str | None = None) -> JsonDict:
        item: JsonDict = {"id": item_id, "kind": kind, "notifier": notifier, "attempts": 0,
                          "createdAt": now.timestamp(), "claimedBy": run_id,
                          "claimedUntil": now.timestamp() + self.lease_seconds}
        if payload is not None:
            item["payload"] = payload
        return item

    def _claim(self, item: JsonDict, run_id: str, now: datetime) -> JsonDict:
        """Take over an outbox item left by an earlier run (crashed or failed), unless another run holds it or it
        waits for its next attempt (`notBefore`, the item's own backoff after a failure)."""
        moment = now.timestamp()
        if _number(item.get("claimedUntil")) > moment or _number(item.get("notBefore")) > moment:
            return item
        return {**item, "claimedBy": run_id, "claimedUntil": moment + self.lease_seconds}

    def _load(self) -> tuple[CommittedState | None, str | None]:
        """The committed state, or (None, None) when it is unreadable (the next run refuses and rebuilds it).

        A re-read within a run (to settle the outbox): the run's first load verified the state already."""
        try:
            return self.state.load(verify=False)
        except StateCorrupt:
            return None, None

    def _flush(self, run_id: str) -> tuple[list[str], list[str]]:
        """Claim and process what earlier runs left in the outbox (no state change of our own)."""
        for _ in range(self.max_commit_attempts):
            # read, change, write: in turn with this process's other runs (see _attempt)
            with self._serial:
                state, etag = self._load()
                if state is None:
                    return [], []
                now = self.clock()
                claimed = [self._claim(i, run_id, now) for i in state.outbox]
                mine = [i for i in claimed if i.get("claimedBy") == run_id]  # with what this run committed itself
                if not mine:
                    return [], []
                if any(i is not old for i, old in zip(claimed, state.outbox, strict=True)):
                    try:
                        self.state.save(replace(state, outbox=claimed), etag=etag)
                    except StateConflict:
                        continue
            return self._process_outbox(run_id, mine, holds=state.webhooks)
        return [], []

    def _process_outbox(self, run_id: str, items: list[JsonDict],
                        encoded: Mapping[str, EncodedRecord] | None = None, holds: Mapping[str, Any] | None = None,
                        *, depth: int = 0) -> tuple[list[str], list[str]]:
        """Append claimed audit records (oldest first), then deliver claimed alerts, settling them in the state.

        Audit records are settled together (appending one twice after a crash is visible by its runId); an
        alert is settled the moment its service accepted it, so it is never posted twice. `encoded`: this run's
        own records, already serialised (others are read back from their stash). An item that cannot succeed
        (refused for good, or failing for `max_delivery_attempts`) goes to a dead-letter audit record and leaves
        the outbox, so it never blocks the items behind it. What the deliveries show about the channels feeds
        the health alerts, which are delivered in the same run.
        """
        by_name = {n.name: n for n in self.notifiers}
        holds = holds or {}

        def when(item: JsonDict) -> str:
            payload = item.get("payload")
            return str(item.get("time") or (payload.get("time") if isinstance(payload, dict) else "") or "")

        ordered = sorted(items, key=lambda i: (i["kind"] != "audit", when(i)))
        audit_done: dict[str, Failure | None] = {}
        held = False
        for item in (i for i in ordered if i["kind"] == "audit"):
            if item.get("dead"):
                audit_done[item["id"]] = Failure(str(item.get("lastError") or "dead"), DEAD)
                continue
            if held:  # keep the records in order: the rest wait with the one that failed
                audit_done[item["id"]] = Failure("an earlier audit record is not appended yet", DEFER)
                continue
            try:
                record = self._audit_payload(item, encoded or {})
                if record is None:
                    audit_done[item["id"]] = Failure("its stashed record is gone", DEAD)
                    continue
                self.audit.append(self._stamped(record))
            except (ValueError, TypeError, UnicodeError) as exc:
                # The record itself is unwritable (too large, not serialisable): retrying cannot help.
                logger.error("audit record %s cannot be appended, dead-lettered: %s", item["id"], _short(exc))
                audit_done[item["id"]] = Failure(f"cannot be appended: {_short(exc)}", DEAD)
                continue
            except Exception as exc:  # the audit log never holds the alerts back: they are delivered below
                logger.error("audit record %s not appended (kept in the outbox; alerts are still delivered): %s",
                             item["id"], _short(exc))
                audit_done[item["id"]] = Failure(f"audit append failed: {_short(exc)}", RETRY)
                held = True
                continue
            audit_done[item["id"]] = None
        held_until = min((_number(i.get("claimedUntil")) for i in ordered if i["kind"] == "alert"), default=0.0)
        if audit_done:
            renewed_at = self.clock().timestamp()
            self._settle(run_id, audit_done, items)  # also renews our other claims
            held_until = renewed_at + self.lease_seconds
            finished = {k for k, v in audit_done.items() if v is None or v.verdict == DEAD}
            self._drop_stashes([i for i in ordered if i["kind"] == "audit" and i["id"] in finished])
        delivered: list[str] = []
        failures: dict[str, Failure] = {}
        broken: dict[str, str] = {}  # notifier name -> why (raises the delivery health alert)
        working: set[str] = set()
        waited = 0.0
        down: dict[str, str] = {}  # notifier name -> why it failed (retryably) earlier in this run
        for item in (i for i in ordered if i["kind"] == "alert"):
            name = str(item.get("notifier"))
            notifier = by_name.get(name)
            if item.get("dead") or notifier is None:
                why = str(item.get("lastError") or f"notifier {name} is not configured")
                logger.warning("alert %s cannot be delivered: %s", item["id"], why)
                failures[item["id"]] = Failure(why, DEAD)
                continue
            if name in down:
                # The channel failed a moment ago: its other items wait for a later run (not an attempt) rather
                # than each spending its own retry budget, so one channel's outage holds up the others (the
                # Event Grid topic, another chat) by one delivery's budget at most.
                failures[item["id"]] = Failure(f"{name} failed earlier in this run: {down[name]}", DEFER,
                                               self.clock().timestamp())
                continue
            wait = self._not_before(name, holds) - self.clock().timestamp()
            if wait > 0:
                if waited + wait > self.max_wait_seconds:
                    # The service asked us to hold off longer than this run may wait: a later run posts it.
                    failures[item["id"]] = Failure(f"{name} asked to wait {wait:.0f} s (Retry-After)", DEFER,
                                                   self._not_before(name, holds))
                    continue
                self.sleep(wait)
                waited += wait
            need = _number(getattr(notifier, "max_call_seconds", 0.0))
            if self.clock().timestamp() + need + CLAIM_MARGIN_SECONDS > held_until:
                # This call could outlast our claims: renew them first, or another run could take the alert over
                # mid-call and post it again. An alert another run took meanwhile is that run's to post.
                still_ours, held_until = self._renew_claims(run_id)
                if item["id"] not in still_ours:
                    continue
            try:
                notifier.deliver(item["payload"], alert_id=item["payload"]["id"])
            except DeliveryError as exc:
                logger.warning("alert %s not delivered by %s: %s", item["id"], name, exc)
                if exc.retry_after is not None:
                    self._hold_off(name, exc.retry_after, holds)
                if exc.retryable:
                    down[name] = str(exc)[:300]
                dead = not exc.retryable or int(_number(item.get("attempts"))) + 1 >= self.max_delivery_attempts
                failures[item["id"]] = Failure(str(exc), DEAD if dead else RETRY)
                age = self.clock().timestamp() - _number(item.get("createdAt"), self.clock().timestamp())
                if exc.alarm or dead or age >= self.health_limit.total_seconds():
                    broken[name] = str(exc)
                continue
            working.add(name)
            renewed_at = self.clock().timestamp()
            self._settle(run_id, {item["id"]: None}, items)
            held_until = renewed_at + self.lease_seconds
            delivered.append(item["id"])
        if failures:
            self._settle(run_id, failures, items)
        if delivered or failures:
            self._append_delivery(run_id, delivered, list(failures))
        if depth == 0 and (broken or working):
            mine = self._observe(run_id, Observation(channel_failures=broken, channels_ok=frozenset(working)))
            if mine:
                more_delivered, more_failed = self._process_outbox(run_id, mine, holds=holds, depth=1)
                delivered += more_delivered
                failures.update(dict.fromkeys(more_failed, Failure("", RETRY)))
        return delivered, list(failures)

    def _renew_claims(self, run_id: str) -> tuple[set[str], float]:
        """Extend every outbox claim this run still holds by a lease: (the ids it holds, until when)."""
        for _ in range(self.max_commit_attempts):
            # read, change, write: in turn with this process's other runs (see _attempt)
            with self._serial:
                state, etag = self._load()
                if state is None:
                    return set(), 0.0
                now = self.clock().timestamp()
                outbox = [{**i, "claimedUntil": now + self.lease_seconds} if i.get("claimedBy") == run_id else i
                          for i in state.outbox]
                try:
                    self.state.save(replace(state, outbox=outbox), etag=etag)
                except StateConflict:
                    continue
            return {str(i["id"]) for i in outbox if i.get("claimedBy") == run_id}, now + self.lease_seconds
        return set(), 0.0

    def _audit_payload(self, item: JsonDict, encoded: Mapping[str, EncodedRecord]) -> JsonDict | EncodedRecord | None:
        if item["id"] in encoded:
            return encoded[item["id"]]
        if isinstance(item.get("payload"), dict):
            return dict(item["payload"])  # written by an earlier version, inside the outbox
        unstash = getattr(self.state, "unstash", None)
        text = unstash(str(item.get("stash"))) if unstash is not None and item.get("stash") else None
        if text is None:
            logger.error("audit record %s waited in the outbox but its stash %s is gone; it cannot be appended",
                         item["id"], item.get("stash"))
            return None
        loaded: JsonDict = json.loads(text)
        return loaded

    def _settle(self, run_id: str, outcomes: Mapping[str, Failure | None], claimed: Sequence[JsonDict] = ()) -> None:
        """Remove finished items (None) from the outbox, or release failed ones ((error, dead)), with the ETag.

        A dead item leaves the outbox after its dead-letter record is appended. Our other claims are renewed.
        """
        dead = {k: v.error for k, v in outcomes.items() if v is not None and v.verdict == DEAD}
        if dead:
            outcomes = dict(outcomes)
            for item in claimed:
                if item["id"] in dead and not self._dead_letter(run_id, item, dead[item["id"]]):
                    outcomes[item["id"]] = Failure(dead[item["id"]], RETRY)  # kept until its record is written
        while True:
            # read, change, write: in turn with this process's other runs (see _attempt)
            with self._serial:
                state, etag = self._load()
                if state is None:
                    return
                now = self.clock().timestamp()
                outbox: list[JsonDict] = []
                for item in state.outbox:
                    if item.get("claimedBy") != run_id:
                        outbox.append(item)
                        continue
                    if item["id"] not in outcomes:
                        outbox.append({**item, "claimedUntil": now + self.lease_seconds})
                        continue
                    failure = outcomes[item["id"]]
                    if failure is None or failure.verdict == DEAD:
                        continue
                    if failure.verdict == DEFER:  # not an attempt: the service asked us to wait
                        outbox.append({**item, "claimedBy": None, "claimedUntil": 0,
                                       "notBefore": failure.not_before})
                        continue
                    attempts = int(_number(item.get("attempts"))) + 1
                    outbox.append({**item, "claimedBy": None, "claimedUntil": 0, "attempts": attempts,
                                   "lastError": failure.error[:500], "notBefore": now + _backoff(attempts)})
                webhooks = _merged_holds(state.webhooks, self._holds, now)
                tail = self._audit_tail() or state.audit_tail
                try:
                    self.state.save(replace(state, outbox=outbox, webhooks=webhooks, audit_tail=tail), etag=etag)
                    return
                except StateConflict:
                    continue

    def _dead_letter(self, run_id: str, item: JsonDict, error: str) -> bool:
        """The dead-letter record of an item that leaves the outbox undone: what it was and why, never its secret."""
        payload = item.get("payload") if isinstance(item.get("payload"), dict) else {}
        assert isinstance(payload, dict)
        record: JsonDict = {
            "runId": run_id, "time": self.clock().isoformat(), "outcome": DEAD_LETTER,
            "item": {"id": _bounded(item.get("id")), "kind": item.get("kind"), "notifier": item.get("notifier"),
                     "attempts": int(_number(item.get("attempts"))) + 1, "error": _bounded(error)},
            # Where the full content is: the audit record of the run that produced it.
            "ofRun": _bounded(payload.get("runId") or str(item.get("id", "")).split(":")[0]),
            "outcomeOfRun": _bounded(payload.get("outcome")),
        }
        if item.get("kind") == "alert":
            record["alertId"] = _bounded(payload.get("id"))
            record["counts"] = {d: len(payload.get(d) or []) for d in ("opened", "closed")}
            if payload.get("kind"):
                record["alertKind"] = _bounded(payload.get("kind"))
        logger.error("outbox item %s dead-lettered after %s attempt(s): %s", record["item"]["id"],
                     record["item"]["attempts"], _bounded(error))
        try:
            self.audit.append(self._stamped(record))
        except Exception as exc:  # the item stays in the outbox: never dropped without its record
            logger.error("dead-letter record of %s not appended: %s", record["item"]["id"], _short(exc))
            return False
        return True

    # ---- webhook "not before" times (Retry-After kept across alerts and runs) -----------------------------------
    def _hold_off(self, name: str, seconds: float, stored: Mapping[str, Any]) -> None:
        until = self.clock().timestamp() + min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)
        self._holds[name] = {"notBefore": max(until, self._not_before(name, stored))}

    def _not_before(self, name: str, stored: Mapping[str, Any]) -> float:
        """The later of what this process learned and what the committed outbox says (another process or run)."""
        def when(holds: Mapping[str, Any]) -> float:
            hold = holds.get(name)
            return _number(hold.get("notBefore")) if isinstance(hold, dict) else 0.0

        return max(when(self._holds), when(stored))

    # ---- health ----------------------------------------------------------------------------------------------------
    def _health_items(self, transitions: Sequence[Transition], run_id: str, now: datetime) -> list[JsonDict]:
        """Outbox items for health transitions: an audit record each, and the alert to every channel it concerns
        (an alarm about a channel is not sent to that channel; its all-clear is)."""
        items: list[JsonDict] = []
        for t in transitions:
            alert = health_alert(t, now=now)
            alert["runId"] = run_id
            record = {"runId": run_id, "time": now.isoformat(), "outcome": f"health {t.status}",
                      "condition": t.condition, "title": t.title, "detail": t.detail, "since": t.since,
                      "alertId": alert["id"]}
            items.append(self._item("audit", f"{alert['id']}:audit", record, run_id, now))
            about = channel_of_condition(t.condition)
            items += [self._item("alert", f"{alert['id']}:{n.name}", alert, run_id, now, notifier=n.name)
                      for n in self.notifiers if not (t.status == RAISED and n.name == about)]
        return items

    def _observe(self, run_id: str, seen: Observation) -> list[JsonDict]:
        """Fold what this run saw into the committed health; commit the health items it raises (claimed by us).

        Writes the state only when the health moved. Without any committed state (no baseline yet) the
        transitions are only logged (Azure Monitor still sees them) and tried again by every run.
        """
        while True:
            # read, change, write: in turn with this process's other runs (see _attempt)
            with self._serial:
                state, etag = self._load()
                now = self.clock()
                health, transitions = assess(state.health if state else {}, seen, now=now, limit=self.health_limit)
                if state is None:
                    _log_transitions(transitions)
                    return []
                if health == state.health and not transitions:
                    return []
                items = self._health_items(transitions, run_id, now)
                try:
                    self.state.save(replace(state, health=health, outbox=[*state.outbox, *items]), etag=etag)
                except StateConflict:
                    continue
            _log_transitions(transitions)
            return items

    def _log_reconciled(self, trigger: RunTrigger) -> None:
        if trigger.kind == "reconcile":
            logger.info("%s", LOG_MARKER_RECONCILED)

    def _append_delivery(self, run_id: str, delivered: list[str], undelivered: list[str]) -> None:
        try:
            self.audit.append(self._stamped({"runId": run_id, "time": self.clock().isoformat(),
                                             "outcome": "delivery", "delivered": delivered,
                                             "undelivered": undelivered}))
        except Exception as exc:  # what was delivered is settled in the state already; never undo that here
            logger.error("run %s: delivery record not appended to the audit log: %s", run_id, exc)

    # ---- records and alerts ------------------------------------------------------------------------------------------
    def _record(self, trigger: RunTrigger, run_id: str, outcome: str, *, conflicts: int = 0,
                opened: Sequence[JsonDict] = (), closed: Sequence[JsonDict] = (), pending: Sequence[JsonDict] = (),
                warnings: Sequence[str] = (), detail: str | None = None,
                extra: Mapping[str, Any] | None = None) -> JsonDict:
        lists = {"opened": list(opened), "closed": list(closed), "pending": list(pending)}
        record: JsonDict = {
            "runId": run_id, "time": self.clock().isoformat(), "trigger": trigger.to_json(),
            "caller": trigger.caller, "correlationId": trigger.correlation_id, "eventTime": trigger.event_time,
            "outcome": outcome, **lists, "warnings": list(warnings), "commitConflicts": conflicts,
        }
        if sum(len(v) for v in lists.values()) > AUDIT_FULL_DETAIL_PAIRS:
            # A very large change: each pair without its endpoint details (names are in the ids; prefixes and
            # tags are in the committed topology), which halves the record.
            record.update({k: [_without_endpoints(p) for p in v] for k, v in lists.items()})
            record["pairDetail"] = "compact"
        if detail:
            record["detail"] = detail
        record.update(extra or {})
        return record

    def _append_direct(self, trigger: RunTrigger, run_id: str, outcome: str, **kwargs: Any) -> None:
        self.audit.append(self._stamped(self._record(trigger, run_id, outcome, **kwargs)))

    def _stamped(self, record: JsonDict | EncodedRecord) -> JsonDict | EncodedRecord:
        """The record with `stateSeen`, the committed run the state store last saw: the chain's end then shows a
        run that was committed, so a state rolled back behind it is refused on load. A commit's own record
        (already serialised) carries its `stateSequence` instead."""
        seen = getattr(self.state, "sequence_seen", None)
        if isinstance(record, EncodedRecord) or not isinstance(seen, int) or "stateSequence" in record:
            return record
        return {**record, "stateSeen": seen}

    def _sendable(self, pairs: list[JsonDict]) -> list[JsonDict]:
        if self.notify_info:
            return list(pairs)
        return [p for p in pairs if p.get("severity") != "info"]

    def _complete_alert(self, alert: JsonDict, sendable: tuple[list[JsonDict], list[JsonDict]]) -> JsonDict:
        """The alert with every sendable pair (opened, closed), for a notifier that splits it (one event per pair):
        a summarised alert (more than MAX_ALERT_PAIRS) lists only the most severe pairs."""
        if not alert.get("omitted"):
            return alert
        return {**{k: v for k, v in alert.items() if k not in ("omitted", "groups")},
                "opened": sendable[0], "closed": sendable[1]}

    def _alert(self, decision: Decision, trigger: RunTrigger, run_id: str, now: datetime,
               sendable: tuple[list[JsonDict], list[JsonDict]]) -> JsonDict | None:
        opened, closed = sendable
        if not opened and not closed:
            return None
        omitted: JsonDict = {}
        if len(opened) + len(closed) > MAX_ALERT_PAIRS:
            # A huge change (a gateway serving hundreds of spokes flips) is summarised: the most severe pairs,
            # and the counts of the rest, which the audit record holds in full.
            kept = _most_severe([("opened", p) for p in opened] + [("closed", p) for p in closed], MAX_ALERT_PAIRS)
            omitted = {"opened": len(opened) - sum(1 for d, _ in kept if d == "opened"),
                       "closed": len(closed) - sum(1 for d, _ in kept if d == "closed")}
            opened = [p for d, p in kept if d == "opened"]
            closed = [p for d, p in kept if d == "closed"]
        keys = sorted(["+" + "|".join(_pair_key(p)) for p in opened] + ["-" + "|".join(_pair_key(p)) for p in closed])
        alert_id = hashlib.sha256(f"{decision.basis}\n{chr(10).join(keys)}".encode()).hexdigest()[:32]
        # "Changed by" names a caller only for a change they made: the event's own resource is among the causes.
        # Otherwise the alert says what detected it, and who started it when an earlier event touched a cause
        # (a change confirmed by a later run, recorded while it settled).
        pairs = opened + closed
        own = attributed_caller(trigger, pairs)
        callers = [own] if own else sorted({str(p["firstCaller"]) for p in pairs if p.get("firstCaller")})
        return {
            "id": alert_id, "runId": run_id, "caller": ", ".join(callers) or None,
            **({} if own else {"detectedBy": detected_by(trigger)}), "time": now.isoformat(),
            "eventTime": trigger.event_time, "correlationId": trigger.correlation_id, "trigger": trigger.to_json(),
            "opened": opened, "closed": closed, "groups": _groups(opened, closed), "warnings": decision.warnings,
            **({"omitted": omitted} if omitted else {}),
        }

    def _schedule_recheck(self, trigger: RunTrigger, *, reason: str) -> None:
        assert self.recheck is not None
        try:
            self.recheck.schedule({"reason": reason, "after": trigger.to_json()},
                                  delay_seconds=self.recheck_delay_seconds)
        except Exception:  # the timer reconcile still catches it; never lose the run for this
            logger.exception("could not schedule a re-check; the next reconcile will pick the change up")


RETRY, DEFER, DEAD = "retry", "defer", "dead"


@dataclass(frozen=True, slots=True)
class Failure:
    """Why an outbox item was not done, and what happens to it: tried again later, deferred
    (not an attempt: a webhook asked us to wait) or dead-lettered."""

    error: str
    verdict: str  # RETRY | DEFER | DEAD
    not_before: float = 0.0  # DEFER: when it may be tried again


def _merged_holds(stored: Mapping[str, Any], learned: Mapping[str, JsonDict], now: float) -> JsonDict:
    """The webhooks' not-before times to commit: the later of each, those already past dropped."""
    out: JsonDict = {}
    for name in {*stored, *learned}:
        times = [_number(h.get("notBefore")) for h in (stored.get(name), learned.get(name)) if isinstance(h, dict)]
        if times and max(times) > now:
            out[name] = {"notBefore": max(times)}
    return out


def _same_unread(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """The same subscriptions unread, for the same kind of reason (a changed message alone is no reason to write)."""
    def kinds(m: Mapping[str, Any]) -> dict[str, tuple[bool, bool]]:
        return {s: (bool(v.get("access")), bool(v.get("baseline"))) for s, v in m.items() if isinstance(v, Mapping)}
    return kinds(a) == kinds(b)


def _backoff(attempts: int) -> float:
    """Wait before the next attempt of an item that failed `attempts` times: the next run, then 30 s doubling."""
    return min(30.0 * 2 ** min(attempts - 2, 10), BACKOFF_CAP_SECONDS) if attempts > 1 else 0.0


def _number(value: Any, default: float = 0.0) -> float:
    """A stored number, or `default` for anything else (a state written by an older version, or damaged)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:  # NaN
        return default
    return float(value)


def _bounded(value: Any, limit: int = 300) -> str | None:
    return None if value is None else str(value)[:limit]


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def _log_transitions(transitions: Sequence[Transition]) -> None:
    """One line per transition with a fixed marker: Azure Monitor alerts on it even when every chat is down."""
    for t in transitions:
        if t.status == RAISED:
            logger.error("%s: %s: %s (since %s)", LOG_MARKER_RAISED, t.condition, t.detail, t.since)
        else:
            logger.warning("%s: %s: %s", LOG_MARKER_CLEARED, t.condition, t.title)


# An alert carries at most this many pairs (the chat services show far fewer); the audit record has them all.
MAX_ALERT_PAIRS = 500
SEVERITY_RANK = {"info": 1, "warning": 2, "critical": 3}

# Over this many pairs, the audit record leaves out each pair's endpoint details.
AUDIT_FULL_DETAIL_PAIRS = 1000

# An audit record is one append block (at most 4 MiB); a large change is recorded in several parts.
AUDIT_PART_BUDGET = 3 * 1024 * 1024


# Every byte but `,` and `:`: deleting them leaves the separators, counted in one pass instead of two counts.
_NOT_SEPARATORS = bytes(b for b in range(256) if b not in b",:")


def _measure(*chunks: bytes) -> int:
    """A record's size for the budget (given as the bytes it is made of): its UTF-8 bytes, plus one per `,` and
    `:` (so the record also fits when spelled with the default separators, as a reader might re-serialise it)."""
    return sum(len(chunk) + len(chunk.translate(None, _NOT_SEPARATORS)) for chunk in chunks)


_LISTS = ("opened", "closed", "pending")


def encode_parts(record: JsonDict, *, budget: int = AUDIT_PART_BUDGET, floats: bool = True) -> list[EncodedRecord]:
    """The record itself, or parts of it (`part` i of `parts`) each under `budget`, each pair serialised once.

    The pieces are canonical JSON, so the audit log hashes and writes the very same text (`EncodedRecord`). A
    part's share of each list is written by one call (`canonical_array_bytes`): a change of 97,000 pairs was 1.8 s
    as one call per pair. How many parts a record needs is estimated from a sample of its pairs; a part that
    still comes out over the budget is halved (a single pair over it stays a part of its own). `floats=False`:
    the pair lists hold no float (Decision.float_free), so their text is not scanned for one.
    """
    lists = [k for k in _LISTS if k in record]
    head = {k: v for k, v in record.items() if k not in _LISTS}
    spans: list[tuple[str, int]] = []  # (list, where it starts in the flat order of all pairs)
    total = 0
    for key in lists:
        spans.append((key, total))
        total += len(record[key])

    def encoded(base: JsonDict, start: int, stop: int) -> EncodedRecord:
        values = {key: record[key][max(start - at, 0):max(stop - at, 0)] for key, at in spans}
        pieces = {**EncodedRecord.of(base).pieces,
                  **{k: canonical_array_bytes(v, floats=floats) for k, v in values.items()}}
        return EncodedRecord({**base, **values}, pieces)

    def fits(part: EncodedRecord) -> bool:
        return _measure(*part.chunks()) <= budget

    stride = max(1, total // 256)
    sample = [record[key][i - at] for i in range(0, total, stride) for key, at in spans
              if at <= i < at + len(record[key])]
    estimate = (_measure(canonical_array_bytes(sample, floats=floats)) - 1) * total // max(len(sample), 1)
    head_size = _measure(*EncodedRecord.of(head).chunks())
    if total <= 1 or head_size + estimate <= budget:
        whole = encoded(head, 0, total)
        if total <= 1 or fits(whole):
            return [whole]
    follow = {"runId": record["runId"], "time": record["time"], "trigger": record["trigger"],
              "outcome": record["outcome"], "continued": True}
    # Numbered for the size check with more digits than any real count has; renumbered once the count is known.
    mark = {"part": 10**6, "parts": 10**6}
    count = max(2, -(-(head_size + estimate) * 10 // (budget * 9)))  # aim at 90% full, so few parts are halved
    chunk = -(-total // count)
    made: list[EncodedRecord] = []
    todo = [(start, min(start + chunk, total)) for start in range(0, total, chunk)][::-1]
    while todo:
        start, stop = todo.pop()
        part = encoded({**(head if start == 0 else follow), **mark}, start, stop)
        if stop - start > 1 and not fits(part):
            middle = (start + stop) // 2
            todo += [(middle, stop), (start, middle)]
            continue
        made.append(part)
    numbers = [{"part": n, "parts": len(made)} for n in range(1, len(made) + 1)]
    return [EncodedRecord({**part.record, **number}, {**part.pieces, **{k: canonical_json(v).encode("utf-8")
                                                                         for k, v in number.items()}})
            for part, number in zip(made, numbers, strict=True)]


def split_record(record: JsonDict, *, budget: int = AUDIT_PART_BUDGET) -> list[JsonDict]:
    """The record itself, or parts of it (`part` i of `parts`) each under `budget` bytes of JSON."""
    return [dict(part.record) for part in encode_parts(record, budget=budget)]


def _most_severe(items: list[tuple[str, JsonDict]], count: int) -> list[tuple[str, JsonDict]]:
    """The first `count` of `items` by severity, most severe first, in their order within a severity (what a
    stable sort on the severity's rank gives, without sorting 97,000 pairs to keep a few)."""
    by_rank: dict[int, list[tuple[str, JsonDict]]] = {}
    for item in items:
        by_rank.setdefault(SEVERITY_RANK.get(str(item[1].get("severity")), 0), []).append(item)
    out: list[tuple[str, JsonDict]] = []
    for rank in sorted(by_rank, reverse=True):
        out += by_rank[rank][:count - len(out)]
        if len(out) >= count:
            break
    return out


def _groups(opened: Sequence[JsonDict], closed: Sequence[JsonDict]) -> list[JsonDict]:
    grouped: dict[tuple[str, ...], JsonDict] = {}
    for verb, pairs in (("opened", opened), ("closed", closed)):
        for p in pairs:
            key = tuple(c["text"] for c in p.get("cause", []))
            group = grouped.setdefault(key, {"cause": p.get("cause", []), "opened": [], "closed": []})
            group[verb].append(list(p["vnets"]))
    return [grouped[k] for k in sorted(grouped)]


@dataclass(frozen=True, slots=True)
class Decision:
    pairs: list[JsonDict]  # the pair set to commit
    opened: list[JsonDict]  # confirmed, to announce
    closed: list[JsonDict]
    pending: list[JsonDict]  # still settling: not announced, re-checked later
    warnings: list[str]
    basis: str  # what the alert id is derived from (the committed sequence it builds on)
    committed_count: int | None = None  # how many pairs the committed set holds after this decision
    pair_warnings: list[str] | None = None  # the whole after topology's pair warnings (kept in the head)
    # Whether opened, closed and pending hold no float, as decide made them: their audit text is then not scanned
    # for one (chain.canonical_array_bytes). False (scan) unless decide established it.
    float_free: bool = False


class _Without(Mapping[tuple[str, str], TransitPair]):
    """A pair mapping less some keys, without materialising the (possibly huge) rest."""

    def __init__(self, base: Mapping[tuple[str, str], TransitPair], excluded: Set[tuple[str, str]]) -> None:
        self._base, self._excluded = base, excluded

    def __getitem__(self, key: tuple[str, str]) -> TransitPair:
        if key in self._excluded:
            raise KeyError(key)
        return self._base[key]

    def __contains__(self, key: object) -> bool:
        return key not in self._excluded and key in self._base

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return (k for k in self._base if k not in self._excluded)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _without_endpoints(pair: JsonDict) -> JsonDict:
    out = pair.copy()  # a C-level copy and one delete: twice as fast as a filtering comprehension
    out.pop("endpoints", None)
    return out


def _deviation(a: str, b: str, delta: str) -> JsonDict:
    return {"vnets": [a, b], "delta": delta}


def committed_pair_ids(state: CommittedState) -> list[tuple[str, str]]:
    """The committed pairs as VNet id pairs: the committed topology's settled pairs, adjusted by the deviations."""
    pairs = compute_pairs(parse_resources(state.resources, source="committed state")).pairs
    minus = {_pair_key(d) for d in state.pairs if d.get("delta") == "-"}
    out = {k: (p.a.value, p.b.value) for k, p in pairs.items() if k not in minus}
    out.update({_pair_key(d): (d["vnets"][0], d["vnets"][1]) for d in state.pairs if d.get("delta") == "+"})
    return [out[k] for k in sorted(out)]


def decide(state: CommittedState | None, resources: Sequence[JsonDict], after_topology: Topology,
           trigger: RunTrigger, classify: Classifier, *, now: datetime, after_pairs: PairSet | None = None,
           before_computed: tuple[Topology, PairSet] | None = None, after_count: int | None = None) -> Decision:
    """Compare the live pairs with the committed ones; only confirmed changes are announced (pure).

    The committed pair set is stored as its deviation from the pairs of the committed topology: pairs that are
    still settling into existence ("-": not committed yet) and pairs whose removal is still settling ("+": still
    committed). Both lists are short; the full set of an enterprise topology is not stored twice.

    `before_computed` / `after_pairs` may hold only the pairs whose presence differs (and the deviations), as
    transit.changed_pairs gives them; `after_count` is then how many pairs the whole after topology yields.
    """
    after = after_pairs if after_pairs is not None else compute_pairs(after_topology)
    warnings = list(after.warnings)
    if state is None:  # first run: the baseline is recorded, not announced
        unsettled = [_deviation(p.a.value, p.b.value, "-") for p in after.pairs.values() if p.pending]
        return Decision(pairs=unsettled, opened=[], closed=[], pending=[], warnings=warnings, basis="baseline",
                        committed_count=len(after.pairs) - len(unsettled), pair_warnings=list(after.warnings))
    if before_computed is not None:
        before_topology, before_all = before_computed
    else:
        before_topology = parse_resources(state.resources, source="committed state")
        before_all = compute_pairs(before_topology)
    minus_old = {_pair_key(d) for d in state.pairs if d.get("delta") == "-"}
    plus_old = {_pair_key(d): d for d in state.pairs if d.get("delta") == "+"}
    before_pairs = before_all.pairs
    if minus_old:
        # PairIndex.without keeps the diff on integer codes; a generic view would make it walk every key.
        before_pairs = (before_pairs.without(minus_old) if isinstance(before_pairs, PairIndex)
                        else _Without(before_pairs, minus_old))
    before = PairSet(pairs=before_pairs)
    # compute_pairs keeps the endpoints it used: computing them again costs a pass over the whole estate each.
    endpoints = {id(after_topology): after.endpoints or endpoints_of(after_topology),
                 id(before_topology): before_all.endpoints or endpoints_of(before_topology)}
    diff = diff_pairs(before, after, before_topology=before_topology, after_topology=after_topology,
                      before_endpoints=endpoints[id(before_topology)], after_endpoints=endpoints[id(after_topology)])
    earlier_pending = {(p["direction"], *_pair_key(p)): p for p in state.pending}

    docs = ChangeDocs()  # endpoint and cause documents made once for all pairs (read-only from here on)
    named_by_strings = True  # whether the classifier named every severity and policy with a string

    def classified(doc: JsonDict, opened_now: bool) -> tuple[str, str | None]:
        nonlocal named_by_strings
        given: Any = classify(doc, opened_now)  # a policy's classifier: typed, but what it returns is checked
        severity, reason = given
        if not (isinstance(severity, str) and (reason is None or isinstance(reason, str))):
            named_by_strings = False
        return severity, reason

    def annotated(change: PairChange, opened_now: bool) -> JsonDict:
        earlier = (earlier_pending.get(("opened" if opened_now else "closed", *change.pair.key))
                   if earlier_pending else None)  # usually none: no key to build for each of 97,000 pairs
        return _annotated(change, earlier, trigger, now, classified, opened_now, endpoints[id(change.topology)],
                          docs)

    opened: list[JsonDict] = []
    closed: list[JsonDict] = []
    pending: list[JsonDict] = []
    deviations: dict[tuple[str, str], JsonDict] = {}
    for change in diff.opened:
        if change.pair.key in plus_old:
            continue  # it never stopped being committed: its removal was still settling and did not happen
        doc = annotated(change, True)
        if change.pending:
            pending.append(doc)
            deviations[change.pair.key] = _deviation(change.pair.a.value, change.pair.b.value, "-")
        else:
            opened.append(doc)
    for change in diff.closed:
        doc = annotated(change, False)
        if change.pending:
            pending.append(doc)
            deviations[change.pair.key] = _deviation(change.pair.a.value, change.pair.b.value, "+")
        else:
            closed.append(doc)
    # Pairs kept while their removal was settling, and that the live topology still does not yield.
    for key, kept in plus_old.items():
        if key in after.pairs:
            continue
        earlier = earlier_pending.get(("closed", *key))
        if earlier is not None and _still_settling(after_topology, earlier):
            pending.append(earlier)
            deviations[key] = kept
            continue
        doc = {**(earlier or kept), "cause": earlier["cause"] if earlier else [_unexplained()], "status": "confirmed"}
        for transient in ("direction", "since", "caller", "delta"):
            doc.pop(transient, None)
        doc.update(_severity(classify, doc, False))
        closed.append(doc)
    _explain_closings(closed, after_topology, after, endpoints[id(after_topology)])
    plus = sum(1 for d in deviations.values() if d["delta"] == "+")
    # The documents hold no float when what they are made of holds none: the parsed model (ChangeDocs checks each
    # shared part as it makes it), the classifier's strings, the trigger's caller, and what the state kept.
    float_free = (docs.float_free and named_by_strings and not holds_float(trigger.caller)
                  and not holds_float(state.pending) and not holds_float(state.pairs))
    return Decision(pairs=[deviations[k] for k in sorted(deviations)], opened=opened, closed=closed,
                    pending=pending, warnings=warnings, basis=f"seq={state.sequence}",
                    committed_count=(len(after.pairs) if after_count is None else after_count)
                    - (len(deviations) - plus) + plus, pair_warnings=list(after.warnings), float_free=float_free)


def _named(docs: Sequence[JsonDict]) -> list[str]:
    """The resources pending pair documents name: what _still_settling reads of them."""
    return [str(i) for doc in docs for i in (*doc.get("gateways", []), *doc.get("circuits", []),
                                             *(c["resource"] for c in doc.get("cause", []) if c.get("resource")))]


def _still_settling(topology: Topology, doc: JsonDict) -> bool:
    return settling_in(topology, (ResourceId.parse(i) for i in _named([doc])))


# Explaining a closed pair costs a little per pair; a change closing thousands keeps the causes, which say it all.
EXPLAINED_CLOSINGS = 20


def _explain_closings(closed: list[JsonDict], topology: Topology, pairs: PairSet,
                      endpoints: Mapping[ResourceId, Endpoint]) -> None:
    """Add to each closed pair what is now missing (the same text as `explain`), for the alert and the audit."""
    index = explain_index(topology) if closed else None
    for doc in closed[:EXPLAINED_CLOSINGS]:
        a, b = (ResourceId.parse(v) for v in doc["vnets"])
        doc["explanation"] = list(explain_pair(topology, a, b, pairs=pairs, endpoints=endpoints,
                                               index=index).missing)


def attributed_caller(trigger: RunTrigger, pairs: Sequence[Mapping[str, Any]]) -> str | None:
    """The event's caller when the event's own resource is among the causes of `pairs`; else None (an event on
    hub-03 does not make its caller the author of a change to ergw-01 it merely revealed)."""
    if trigger.kind != "event" or not trigger.caller or not trigger.resource_id:
        return None
    own = ResourceId.parse(trigger.resource_id)
    for pair in pairs:
        for cause in pair.get("cause") or []:
            resource = cause.get("resource") if isinstance(cause, Mapping) else None
            if isinstance(resource, str) and ResourceId.parse(resource) == own:
                return trigger.caller
    return None


def detected_by(trigger: RunTrigger) -> str:
    """How a change nobody is named for was found: `reconcile`, `re-check`, or the event that revealed it."""
    if trigger.kind != "event":
        return {"recheck": "re-check"}.get(trigger.kind, trigger.kind)
    what = trigger.operation or "event"
    where = f" on {ResourceId.parse(trigger.resource_id).name}" if trigger.resource_id else ""
    return f"event {what}{where} from {trigger.caller or 'unknown'} (not among the causes)"


def _unexplained() -> JsonDict:
    return {"resource": None, "name": None, "kind": "unknown", "change": "modified", "property": None, "old": None,
            "new": None, "text": "the pair's resources are no longer in the topology"}


def _severity(classify: Classifier, doc: JsonDict, opened: bool) -> JsonDict:
    severity, reason = classify(doc, opened)
    return {"severity": severity, "policy": reason} if reason else {"severity": severity}


def _annotated(change: PairChange, earlier: JsonDict | None, trigger: RunTrigger, now: datetime,
               classify: Classifier, opened: bool, endpoints: Mapping[ResourceId, Endpoint],
               docs: ChangeDocs | None = None) -> JsonDict:
    """The pair as announced: causes (merged with those recorded while it was settling) and severity."""
    doc = docs.doc(change, endpoints) if docs is not None else change_json(change, endpoints)
    if earlier is not None:
        seen = {c["text"] for c in doc["cause"]}
        merged = [c for c in earlier.get("cause", []) if c["text"] not in seen] + doc["cause"]
        decisive = [c for c in merged if c.get("property") != "provisioningState"]
        doc["cause"] = decisive or merged
        doc["since"] = earlier.get("since")
        doc["firstCaller"] = earlier.get("caller")
    if change.pending:
        doc["direction"] = "opened" if opened else "closed"
        doc["since"] = doc.get("since") or now.isoformat()
        doc["caller"] = (earlier or {}).get("caller") or attributed_caller(trigger, [doc])
    severity, reason = classify(doc, opened)  # as _severity, without a dict per pair
    doc["severity"] = severity
    if reason:
        doc["policy"] = reason
    return doc

