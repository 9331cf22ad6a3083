"""The auditor's own health as alerts: conditions that start and clear, each posted and audited both times (pure).

A health alert is an ordinary alert dict with `kind: "health"`: it goes through the same outbox and Notifiers as
a transit alert, so every channel (Teams, Slack, JSON, Event Grid) can carry it. `is_health` tells them apart.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

JsonDict = dict[str, Any]

HEALTH_KIND = "health"
RAISED, CLEARED = "raised", "cleared"
# The fixed text Azure Monitor's "health alert raised" log alert searches for (infra/app/monitoring.bicep).
LOG_MARKER_RAISED = "ER-transit health alert raised"
LOG_MARKER_CLEARED = "ER-transit health alert cleared"
# Logged on every complete reconcile: the heartbeat Azure Monitor expects at least once an hour.
LOG_MARKER_RECONCILED = "ER-transit reconcile complete"

READS_INCOMPLETE = "reads-incomplete"
NO_RECONCILE = "no-reconcile"
SUBSCRIPTION_UNREADABLE = "subscription-unreadable"  # + ":<subscription id>"
DELIVERY_FAILED = "delivery-failed"  # + ":<notifier name>"
STATE_REFUSED = "state-refused"

DEFAULT_LIMIT = timedelta(minutes=60)


@dataclass(frozen=True, slots=True)
class Observation:
    """What one run saw that bears on health. Fields left at their default say nothing."""

    # True: a complete read (apart from `unreadable`, whose pairs were held); False: an incomplete one; None: no read
    read_complete: bool | None = None
    read_error: str = ""
    unreadable: Mapping[str, str] = field(default_factory=dict)  # subscription -> why (no Reader / not found)
    reconciled: bool = False  # a complete timer reconcile
    channel_failures: Mapping[str, str] = field(default_factory=dict)  # notifier name -> why (alarm)
    channels_ok: frozenset[str] = frozenset()  # notifiers that accepted a post
    state_refused: str = ""  # why the committed state was refused (corrupt or tampered)
    state_trusted: bool = False  # a committed state was loaded and passed its checks


@dataclass(frozen=True, slots=True)
class Transition:
    condition: str
    status: str  # RAISED | CLEARED
    title: str
    detail: str
    since: str  # when the condition started (ISO time)


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def refresh_interval(limit: timedelta) -> timedelta:
    """How stale a stored "last complete" time may get before a run rewrites it (saves a state write per run).

    The alarms allow for it (they fire between `limit` and `limit` + this), so they never fire early.
    """
    return min(limit / 12, timedelta(minutes=5))


def assess(health: Mapping[str, Any], seen: Observation, *, now: datetime, limit: timedelta = DEFAULT_LIMIT,
           ) -> tuple[JsonDict, list[Transition]]:
    """The health after this run's observation, and the conditions that started or cleared with it.

    `health` (as stored in the state): {"conditions": {key: {"since", "title", "detail"}}, "lastComplete",
    "lastReconcile"}. Returns a new dict; the input is not changed. An incomplete read changes it only when an
    alarm starts, so a failed read leaves the committed state alone.
    """
    conditions: dict[str, JsonDict] = {k: dict(v) for k, v in _conditions(health).items()}
    out: JsonDict = {k: v for k, v in health.items() if k != "conditions"}
    slack = limit + refresh_interval(limit)  # the stored times may lag by one refresh interval: never alarm early
    for sub, why in seen.unreadable.items():
        key = f"{SUBSCRIPTION_UNREADABLE}:{sub.lower()}"
        conditions.setdefault(key, {"since": _iso(now), "title": f"Subscription {sub} cannot be read",
                                    "detail": f"subscription {sub}: {why}; its changes are not audited (the "
                                              "pairs that touch it keep their last known status)"})
    if seen.read_complete is True:
        _refresh(out, "lastComplete", now, limit)
        conditions.pop(READS_INCOMPLETE, None)
        # Read completely apart from the subscriptions it names as unreadable: every other one is readable again.
        still = {f"{SUBSCRIPTION_UNREADABLE}:{sub.lower()}" for sub in seen.unreadable}
        for key in [k for k in conditions if k.startswith(SUBSCRIPTION_UNREADABLE + ":") and k not in still]:
            del conditions[key]
        if seen.reconciled or "lastReconcile" not in out:  # count from the first run, so a dead timer is noticed
            _refresh(out, "lastReconcile", now, limit)
    elif seen.read_complete is False:
        since = _parse(out.get("lastComplete"))
        if since is not None and now - since > slack:
            conditions.setdefault(READS_INCOMPLETE, {
                "since": _iso(since), "title": "Topology reads have been incomplete for too long",
                "detail": f"no complete read since {_iso(since)}, so changes since then are not audited; "
                          f"last error: {seen.read_error[:500] or 'unknown'}"})

    last = _parse(out.get("lastReconcile"))
    if last is not None and now - last > slack:
        conditions.setdefault(NO_RECONCILE, {
            "since": _iso(last), "title": "No complete reconcile for too long",
            "detail": f"the last complete reconcile was at {_iso(last)}: the timer may have stopped, or every "
                      "reconcile since failed or read incompletely; lost events are not caught meanwhile"})
    elif last is not None and seen.reconciled:
        conditions.pop(NO_RECONCILE, None)

    for name, why in seen.channel_failures.items():
        conditions.setdefault(f"{DELIVERY_FAILED}:{name}", {
            "since": _iso(now), "title": f"Alerts to {name} are not being delivered",
            "detail": f"{name}: {why[:300]}"})
    for name in seen.channels_ok:
        conditions.pop(f"{DELIVERY_FAILED}:{name}", None)

    if seen.state_refused:
        conditions.setdefault(STATE_REFUSED, {
            "since": _iso(now), "title": "The committed state was refused and rebuilt",
            "detail": seen.state_refused[:500]})
    elif seen.state_trusted:
        conditions.pop(STATE_REFUSED, None)

    before = _conditions(health)
    transitions = [Transition(k, RAISED, v["title"], v["detail"], v["since"])
                   for k, v in conditions.items() if k not in before]
    transitions += [Transition(k, CLEARED, v.get("title", k), v.get("detail", ""), v.get("since", ""))
                    for k, v in before.items() if k not in conditions]
    if conditions:
        out["conditions"] = conditions
    return out, sorted(transitions, key=lambda t: (t.status, t.condition))


def _refresh(out: JsonDict, key: str, now: datetime, limit: timedelta) -> None:
    last = _parse(out.get(key))
    if last is None or now - last >= refresh_interval(limit):
        out[key] = _iso(now)


def _conditions(health: Mapping[str, Any]) -> dict[str, JsonDict]:
    raw = health.get("conditions")
    return {str(k): v for k, v in raw.items() if isinstance(v, dict)} if isinstance(raw, dict) else {}


def health_alert(t: Transition, *, now: datetime) -> JsonDict:
    """The alert dict posted for a transition (the renderers and every Notifier accept it like a transit alert)."""
    alert_id = hashlib.sha256(f"{t.condition}\n{t.status}\n{t.since}".encode()).hexdigest()[:32]
    title = t.title if t.status == RAISED else f"Resolved: {t.title}"
    return {
        "kind": HEALTH_KIND, "id": alert_id, "condition": t.condition, "status": t.status,
        "severity": "critical" if t.status == RAISED else "info", "title": title, "detail": t.detail,
        "since": t.since, "time": _iso(now), "opened": [], "closed": [],
    }


def is_health(alert: Mapping[str, Any]) -> bool:
    return alert.get("kind") == HEALTH_KIND


def channel_of_condition(condition: str) -> str | None:
    """The notifier a delivery-failed condition is about (a health alert about a channel is not sent to it)."""
    prefix = DELIVERY_FAILED + ":"
    return condition[len(prefix):] if condition.startswith(prefix) else None
