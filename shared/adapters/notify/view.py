"""The alert dict (`diff --json` plus run metadata) read defensively into the view every renderer shares."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

PORTAL = "https://portal.azure.com/#resource"
SEVERITY_RANK = {"critical": 3, "warning": 2, "info": 1}
DEFAULT_SEVERITY = "warning"


@dataclass(frozen=True, slots=True)
class Ref:
    """A resource as shown: its name and a portal link (empty when the id is unknown)."""

    id: str
    name: str
    link: str


@dataclass(frozen=True, slots=True)
class Endpoint:
    ref: Ref
    subscription: str
    resource_group: str
    prefixes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Pair:
    direction: str  # "opened" | "closed"
    a: Endpoint
    b: Endpoint
    status: str  # "confirmed" | "pending"
    severity: str
    circuits: tuple[Ref, ...]
    gateways: tuple[Ref, ...]
    warnings: tuple[str, ...]
    missing: tuple[str, ...] = ()  # for a closed pair: what now keeps it closed (the `explain` text)


@dataclass(frozen=True, slots=True)
class Cause:
    ref: Ref | None
    text: str  # what changed, without the resource name when `ref` is set
    full_text: str


@dataclass(frozen=True, slots=True)
class Group:
    causes: tuple[Cause, ...]
    pairs: tuple[Pair, ...]  # opened first, then closed; each by severity

    @property
    def severity(self) -> str:
        return max_severity(p.severity for p in self.pairs)


@dataclass(frozen=True, slots=True)
class AlertView:
    id: str
    caller: str
    time: str
    correlation_id: str
    trigger: str
    severity: str
    opened: int
    closed: int
    pending: int
    groups: tuple[Group, ...]
    warnings: tuple[str, ...]
    omitted: int = 0  # pairs the alert itself leaves out (a very large change); the audit log has them all
    detected_by: str = ""  # when nobody is named as the author: what found the change (reconcile, an event on ...)
    report: str = ""  # where the report page of this change is (container/blob), when the app writes one

    @property
    def title(self) -> str:
        pairs = [p for g in self.groups for p in g.pairs]
        if len(pairs) == 1 and not self.omitted:
            p = pairs[0]
            return f"ER transit {p.direction}: {p.a.ref.name} ⇄ {p.b.ref.name}"
        return f"ER transit changed: {self.opened} opened, {self.closed} closed"

    @property
    def total_pairs(self) -> int:
        return self.opened + self.closed


def portal_link(resource_id: str) -> str:
    return f"{PORTAL}{resource_id}" if resource_id.startswith("/") else ""


def max_severity(severities: Iterable[str]) -> str:
    return max(severities, key=lambda s: SEVERITY_RANK.get(s, 0), default=DEFAULT_SEVERITY)


def short_time(value: str) -> str:
    """`2024-03-22T05:31:12.1234567Z` -> `2024-03-22 05:31:12 UTC`; anything else unchanged."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(?:\.\d+)?(?:Z|\+00:00)", value)
    return f"{m.group(1)} {m.group(2)} UTC" if m else value


def read_alert(alert: Mapping[str, Any]) -> AlertView:
    """The view of an alert dict; unknown or missing optional keys are tolerated."""
    raw = [(r, _pair(r, d)) for d in ("opened", "closed") for r in _dicts(alert.get(d))]
    all_pairs = [p for _, p in raw]
    opened = [p for p in all_pairs if p.direction == "opened"]
    groups = _groups(alert, raw)
    raw_omitted = alert.get("omitted")
    omitted: Mapping[str, Any] = raw_omitted if isinstance(raw_omitted, dict) else {}
    more_opened, more_closed = (int(omitted.get(k) or 0) for k in ("opened", "closed"))
    return AlertView(
        id=_str(alert.get("id")),
        caller=_str(alert.get("caller")),
        time=_str(alert.get("time")),
        correlation_id=_str(alert.get("correlationId")),
        trigger=_trigger_text(alert.get("trigger")),
        severity=max_severity(p.severity for p in all_pairs),
        opened=len(opened) + more_opened,
        closed=len(all_pairs) - len(opened) + more_closed,
        pending=sum(1 for p in all_pairs if p.status == "pending"),
        groups=tuple(sorted(groups, key=lambda g: -SEVERITY_RANK.get(g.severity, 0))),
        warnings=tuple(_strs(alert.get("warnings"))),
        omitted=more_opened + more_closed,
        detected_by=_str(alert.get("detectedBy")),
        report=_report_name(alert.get("report")),
    )


def _report_name(value: Any) -> str:
    """`container/dated copy` of the alert's report page (the copy stays; latest.html moves on)."""
    if not isinstance(value, Mapping) or not value.get("copy"):
        return ""
    return f"{_str(value.get('location'))}/{_str(value.get('copy'))}"


def _groups(alert: Mapping[str, Any], pairs: list[tuple[dict[str, Any], Pair]]) -> list[Group]:
    """Groups as the alert gives them; pairs no group names are grouped by their own cause."""
    index = {(p.direction, _pair_key([p.a.ref.id, p.b.ref.id])): p for _, p in pairs}
    used: set[tuple[str, frozenset[str]]] = set()
    groups: list[Group] = []
    for raw in _dicts(alert.get("groups")):
        members: list[Pair] = []
        for direction in ("opened", "closed"):
            for ids in _lists(raw.get(direction)):
                key = (direction, _pair_key(ids))
                if key in index and key not in used:
                    used.add(key)
                    members.append(index[key])
        if members:
            groups.append(Group(tuple(_cause(c) for c in _dicts(raw.get("cause"))), _ordered(members)))
    by_cause: dict[tuple[str, ...], list[Pair]] = {}
    causes: dict[tuple[str, ...], tuple[Cause, ...]] = {}
    for raw_pair, p in pairs:
        if (p.direction, _pair_key([p.a.ref.id, p.b.ref.id])) in used:
            continue
        cs = tuple(_cause(c) for c in _dicts(raw_pair.get("cause")))
        cause_key = tuple(c.full_text for c in cs)
        causes.setdefault(cause_key, cs)
        by_cause.setdefault(cause_key, []).append(p)
    groups.extend(Group(causes[k], _ordered(v)) for k, v in by_cause.items())
    return groups


def _ordered(pairs: list[Pair]) -> tuple[Pair, ...]:
    return tuple(sorted(pairs, key=lambda p: (p.direction != "opened", -SEVERITY_RANK.get(p.severity, 0))))


def _pair_key(ids: Sequence[Any]) -> frozenset[str]:
    return frozenset(str(i).lower() for i in ids)


def _pair(raw: Mapping[str, Any], direction: str) -> Pair:
    vnets = [str(v) for v in _strs(raw.get("vnets"))] + ["", ""]
    endpoints = {str(e.get("id", "")).lower(): e for e in _dicts(raw.get("endpoints"))}
    severity = _str(raw.get("severity")).lower() or DEFAULT_SEVERITY
    return Pair(
        direction=direction,
        a=_endpoint(vnets[0], endpoints.get(vnets[0].lower(), {})),
        b=_endpoint(vnets[1], endpoints.get(vnets[1].lower(), {})),
        status="pending" if _str(raw.get("status")).lower() == "pending" else "confirmed",
        severity=severity if severity in SEVERITY_RANK else DEFAULT_SEVERITY,
        circuits=tuple(ref(c) for c in _strs(raw.get("circuits"))),
        gateways=tuple(ref(g) for g in _strs(raw.get("gateways"))),
        warnings=tuple(_strs(raw.get("warnings"))),
        missing=tuple(_strs(raw.get("explanation"))),
    )


def _endpoint(vnet_id: str, raw: Mapping[str, Any]) -> Endpoint:
    parts = id_parts(vnet_id)
    name = _str(raw.get("name")) or parts.get("name", "") or "(unknown VNet)"
    return Endpoint(
        ref=Ref(vnet_id, name, portal_link(vnet_id)),
        subscription=_str(raw.get("subscription")) or parts.get("subscriptions", ""),
        resource_group=_str(raw.get("resourceGroup")) or parts.get("resourcegroups", ""),
        prefixes=tuple(_strs(raw.get("addressPrefixes"))),
    )


def _cause(raw: Mapping[str, Any]) -> Cause:
    resource = _str(raw.get("resource"))
    name = _str(raw.get("name")) or id_parts(resource).get("name", "")
    prop = _str(raw.get("property"))
    change = _str(raw.get("change"))
    what = f"{prop} {_value(raw.get('old'))} → {_value(raw.get('new'))}" if prop else change or "changed"
    kind = _str(raw.get("kind"))
    full = _str(raw.get("text")) or f"{name} {what}".strip()
    if not name:
        return Cause(None, full, full)
    return Cause(Ref(resource, name, portal_link(resource)), f"{what} ({kind})" if kind else what, full)


def ref(resource_id: str) -> Ref:
    return Ref(resource_id, id_parts(resource_id).get("name", "") or resource_id, portal_link(resource_id))


def id_parts(resource_id: str) -> dict[str, str]:
    """`subscriptions`, `resourcegroups` (lower-cased keys) and `name` of an ARM id; empty for a non-id."""
    segments = [s for s in resource_id.split("/") if s]
    out = {segments[i].lower(): segments[i + 1] for i in range(0, len(segments) - 1, 2)}
    if segments:
        out["name"] = segments[-1]
    return out


def _trigger_text(raw: Any) -> str:
    if not isinstance(raw, Mapping):
        return ""
    kind = _str(raw.get("kind"))
    operation = _str(raw.get("operation"))
    return f"{kind}: {operation}" if kind and operation else kind or operation


def _value(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def _str(v: Any) -> str:
    return v if isinstance(v, str) else ("" if v is None else str(v))


def _strs(v: Any) -> list[str]:
    return [_str(x) for x in v if x is not None] if isinstance(v, list) else []


def _dicts(v: Any) -> list[dict[str, Any]]:
    return [x for x in v if isinstance(x, dict)] if isinstance(v, list) else []


def _lists(v: Any) -> list[list[Any]]:
    return [x for x in v if isinstance(x, list)] if isinstance(v, list) else []


def more_line(count: int, what: str, alert_id: str, *, pairs: int | None = None) -> str:
    """The line that says what a summarised alert left out and where to find it."""
    extra = f" ({pairs} pairs)" if pairs is not None else ""
    where = f" (alert id {alert_id})" if alert_id else ""
    return f"… and {count} more {what}{extra}; the full list is in the audit log{where}"
