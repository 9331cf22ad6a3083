"""The ports the use case (auditor) talks to; adapters in arm, store and notify implement them."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

JsonDict = dict[str, Any]
# StateStore.load's `on_head`: (the head's ETag, the head's state fields without the resources) -> None.
HeadHook = Callable[[str | None, Mapping[str, Any]], None]


class IncompleteReadError(Exception):
    """The live topology could not be read completely (403, throttling, a failed call).

    `unreadable` names the watched subscriptions that could not be read at all, each with why (no Reader or
    not found; Resource Graph cannot tell the two apart), for the health alert that names them.
    """

    def __init__(self, message: str, *, unreadable: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.unreadable: dict[str, str] = dict(unreadable or {})


@dataclass(frozen=True, slots=True)
class ScopeRead:
    """A whole-scope read that may have missed some watched subscriptions (a reader's optional `read_scope`).

    resources: every relevant resource of the subscriptions that were read completely (none of a missed one).
    unreadable: subscription -> why, for those the identity cannot read at all (no Reader, not found, another
        tenant): raised as a health alert at once.
    failed: subscription -> why, for those whose read failed this time (throttled, 5xx, a timeout): counted as an
        incomplete read, retried by the next run.
    """

    resources: list[JsonDict]
    unreadable: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def missed(self) -> dict[str, str]:
        """Every subscription not read, lower-case id -> why."""
        return {s.lower(): why for s, why in {**self.failed, **self.unreadable}.items()}


class StateConflict(Exception):
    """Another run committed the state first (the ETag condition failed)."""


class StateCorrupt(Exception):
    """The committed state cannot be read (garbage, truncated, edited by hand) or cannot be trusted (older than
    what the audit chain shows was committed). `etag` is the refused head's, so a rebuild can replace it under the
    usual ETag condition; `sequence` is the highest run the audit chain shows was committed (None: unknown), so
    the rebuild's sequence goes on after it."""

    def __init__(self, message: str, *, etag: str | None, sequence: int | None = None) -> None:
        super().__init__(message)
        self.etag = etag
        self.sequence = sequence


class DeliveryError(Exception):
    """A chat service did not accept an alert. `retryable` says whether a later attempt may succeed.

    retry_after: seconds the service asked us to wait (Retry-After) before posting to it again; the auditor keeps
        it as the webhook's "not before" time across alerts and runs.
    alarm: the channel itself is broken (revoked or deleted webhook, 401/403/404, or even the minimal alert was
        refused): a health alert is raised, so someone hears of it by another way.
    """

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None,
                 alarm: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.alarm = alarm


@dataclass(frozen=True, slots=True)
class CommittedState:
    """What the last committed run knew.

    pairs: how the committed pair set deviates from the pairs of `resources`: `{"vnets": [A, B], "delta": "+"}`
        (committed though the topology no longer yields it: its removal is settling) or `"-"` (yielded but not
        committed yet: still settling into existence). See auditor.committed_pair_ids.
    resources: the raw ARM resources those pairs were computed from (so the next diff can name causes).
    topology_digest: SHA-256 of the canonical JSON of `resources`.
    processed_event_ids: the most recent Event Grid event ids already decided (bounded list, newest last).
    outbox: alerts committed but not yet accepted by a chat service: {"id", "channel", "alert"} each.
    pending: changes still settling, re-checked later (free-form records from the auditor).
    sequence: increases by one with every commit.
    health: the auditor's own health (shared.core.health): raised conditions, the last complete read and the
        last complete reconcile.
    webhooks: per notifier name, {"notBefore": epoch seconds}: no post to that webhook before then (Retry-After).
    audit_tail: where the audit chain ended when this state was written ({"file", "size", "seq", "lineHash"}), so
        the next append need not read the log's last line back (trusted only while the file has that size).
    topology_pairs: how many pairs the topology of `resources` yields (before the deviations), so that an event
        that pairs only the circuits it touched can still count the whole set; None in states written before.
    topology_warnings: what parsing `resources` warned about, so that a run whose read equals the committed copy
        need not parse it again; None when not kept (states written before, or too long for the small head).
    pair_warnings: what pairing `resources` warned about as a whole (the topology's warnings, then the gateways'
        and Global Reach's), kept like `topology_warnings`, so that a new process's first event that flips a
        gateway's flags can decide from the region of the copy it reaches (shared.core.region).
    unread: watched subscriptions the last whole-scope read missed, lower-case id -> {"why", "since", "baseline"}:
        their resources in `resources` are the last ones read, and no run decides a pair that touches them until a
        whole-scope read covers them again. `baseline` true: never read since the baseline, so the first read
        records their pairs instead of announcing them (shared.core.coverage).
    working_copy_ok: False when the store could not load `resources` intact (then they are empty): the run reads
        the whole scope again and re-baselines instead of diffing against nothing. Not stored.
    """

    pairs: list[JsonDict] = field(default_factory=list)
    resources: list[JsonDict] = field(default_factory=list)
    topology_digest: str = ""
    processed_event_ids: list[str] = field(default_factory=list)
    outbox: list[JsonDict] = field(default_factory=list)
    pending: list[JsonDict] = field(default_factory=list)
    sequence: int = 0
    health: JsonDict = field(default_factory=dict)
    webhooks: JsonDict = field(default_factory=dict)
    audit_tail: JsonDict | None = None
    topology_pairs: int | None = None
    topology_warnings: list[str] | None = None
    pair_warnings: list[str] | None = None
    unread: JsonDict = field(default_factory=dict)
    working_copy_ok: bool = True

    def to_json(self) -> JsonDict:
        return {
            "pairs": self.pairs,
            "resources": self.resources,
            "topologyDigest": self.topology_digest,
            "processedEventIds": self.processed_event_ids,
            "outbox": self.outbox,
            "pending": self.pending,
            "sequence": self.sequence,
            **({"health": self.health} if self.health else {}),
            **({"webhooks": self.webhooks} if self.webhooks else {}),
            **({"auditTail": self.audit_tail} if self.audit_tail else {}),
            **({"topologyPairs": self.topology_pairs} if self.topology_pairs is not None else {}),
            **({"topologyWarnings": self.topology_warnings} if self.topology_warnings is not None else {}),
            **({"pairWarnings": self.pair_warnings} if self.pair_warnings is not None else {}),
            **({"unread": self.unread} if self.unread else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CommittedState:
        return cls(
            pairs=list(data.get("pairs", [])),
            resources=list(data.get("resources", [])),
            topology_digest=str(data.get("topologyDigest", "")),
            processed_event_ids=[str(x) for x in data.get("processedEventIds", [])],
            outbox=list(data.get("outbox", [])),
            pending=list(data.get("pending", [])),
            sequence=int(data.get("sequence", 0)),
            health=dict(data.get("health") or {}),
            webhooks=dict(data.get("webhooks") or {}),
            audit_tail=dict(data["auditTail"]) if isinstance(data.get("auditTail"), dict) else None,
            topology_pairs=(data["topologyPairs"] if isinstance(data.get("topologyPairs"), int)
                            and not isinstance(data.get("topologyPairs"), bool) and data["topologyPairs"] >= 0
                            else None),
            topology_warnings=([str(w) for w in data["topologyWarnings"]]
                               if isinstance(data.get("topologyWarnings"), list) else None),
            pair_warnings=([str(w) for w in data["pairWarnings"]]
                           if isinstance(data.get("pairWarnings"), list) else None),
            unread={str(k): dict(v) for k, v in data["unread"].items() if isinstance(v, dict)}
            if isinstance(data.get("unread"), dict) else {},
        )


class StateStore(Protocol):
    def load(self, *, verify: bool = True, on_head: HeadHook | None = None
             ) -> tuple[CommittedState | None, str | None]:
        """The committed state and its ETag; (None, None) when nothing was committed yet.

        `verify` (a run's first load): also check the state against the audit chain's end and the working copy
        against what was stored, even when a copy is cached. False: a re-read within a run, to settle the outbox.
        `on_head(etag, head)`: called (perhaps more than once, if the head changes meanwhile) when a head is read
        whose working copy must then be read from storage, before that read; `head` holds the state's fields but
        not its resources. The event path starts its own ARM read there, so the two overlap.
        """
        ...

    def save(self, state: CommittedState, *, etag: str | None) -> str:
        """Write `state` only if the stored ETag is still `etag` (None: only if none exists yet).

        Returns the new ETag; raises StateConflict when another run committed first.
        """
        ...


class AuditLog(Protocol):
    def append(self, record: Any) -> JsonDict:
        """Append one record (a JSON object, or a store.EncodedRecord already serialised), chained to the previous
        one; returns it as stored (with seq, prevHash, hash)."""
        ...

    def records(self) -> Iterator[JsonDict]:
        """Every stored record, oldest first."""
        ...


class RecheckQueue(Protocol):
    def schedule(self, message: JsonDict, *, delay_seconds: int) -> None:
        """Ask for a re-check run after `delay_seconds` (a change was still settling)."""
        ...


class ReportPublisher(Protocol):
    """Where the report page goes after each committed change (store.report: a private blob container, a folder)."""

    location: str  # the container (or folder) the pages go to; not secret, alerts name it

    def names(self, *, sequence: int, when: datetime) -> tuple[str, str]:
        """(latest, dated copy): the names the page of commit `sequence` made at `when` is written to."""
        ...

    def publish(self, page: str, *, sequence: int, when: datetime) -> None:
        """Write the page as its dated copy and as the latest page."""
        ...


class TopologyReader(Protocol):
    def read(self, *, focus_resource_id: str | None = None) -> list[JsonDict]:
        """Every relevant ARM resource of the scope; raises IncompleteReadError when any part failed."""
        ...


class Notifier(Protocol):
    channel: str
    name: str  # not secret: the setting name (e.g. "slack:SLACK_WEBHOOK_URL"), never the URL

    def deliver(self, alert: JsonDict, *, alert_id: str) -> None:
        """Post one alert; raises DeliveryError when the service did not accept it."""
        ...


def bounded_ids(ids: Sequence[str], new_id: str, *, keep: int = 1000) -> list[str]:
    """The processed-event-id list after adding `new_id`, keeping only the newest `keep`."""
    out = [i for i in ids if i != new_id]
    out.append(new_id)
    return out[-keep:]
