"""The texts of `audit list`, `audit show` and `audit history` (pure): tables and records, names others control
printed escaped."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shared.core.audit_query import (
    DELIVERY,
    PAIR_LISTS,
    Change,
    PairEvent,
    cause_texts,
    pairs_of,
    short_time,
    vnet_name,
    who_of,
)
from shared.core.escape import controls, terminal_lines


def printable(value: Any) -> str:
    """A value others control (names, callers, causes) on one line: control characters shown as escapes."""
    return controls(str(value))


def _cause_cell(record: Mapping[str, Any]) -> str:
    if record.get("outcome") == DELIVERY:
        done = [f"{i} delivered" for i in record.get("delivered") or []]
        return ", ".join(done + [f"{i} not delivered" for i in record.get("undelivered") or []]) or "-"
    if record.get("baseline"):
        return f"baseline ({record.get('pairs', '?')} pairs)"
    texts = cause_texts(record)
    if not texts:
        return str(record.get("detail") or "-")
    return texts[0] + (f" (+{len(texts) - 1} more)" if len(texts) > 1 else "")


def _trigger_cell(record: Mapping[str, Any]) -> str:
    trigger = record.get("trigger") if isinstance(record.get("trigger"), Mapping) else {}
    assert isinstance(trigger, Mapping)
    kind = str(trigger.get("kind") or "?")
    return f"{kind}: {trigger['operation']}" if trigger.get("operation") else kind


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return lines


LIST_HEADERS = ("time (UTC)", "who", "cause", "opened", "closed", "alert", "delivered to")


def list_text(found: Sequence[Change], *, outcomes: frozenset[str] | None) -> str:
    what = "committed changes" if outcomes == frozenset({"committed"}) else "records"
    if not found:
        return f"no {what} match"
    rows = []
    for change in found:
        doc = change.logged.record
        outcome = str(doc.get("outcome"))
        cause = _cause_cell(doc) if outcome == "committed" else f"{outcome}: {_cause_cell(doc)}"
        pending = len(doc.get("pending") or [])
        rows.append([short_time(change.logged.recorded_at), printable(who_of(doc) or "-"), printable(cause),
                     str(len(doc.get("opened") or [])), str(len(doc.get("closed") or []))
                     + (f" (+{pending} pending)" if pending else ""),
                     change.alert_id or "-", printable(", ".join(change.deliveries) or "-")])
    return terminal_lines([f"{len(found)} {what}, newest first", *_table(LIST_HEADERS, rows)])


def _pair_lines(direction: str, pair: Mapping[str, Any]) -> list[str]:
    ids = [str(v) for v in pair.get("vnets") or []]
    names = " <-> ".join(printable(vnet_name(v)) for v in ids)
    extra = [f"status {pair['status']}"] if pair.get("status") else []
    if pair.get("severity"):
        extra.append(f"severity {pair['severity']}")
    lines = [f"  {direction.upper():7} {names}" + (f"  [{', '.join(printable(e) for e in extra)}]" if extra else "")]
    lines += [f"          vnet: {printable(v)}" for v in ids]
    lines += [f"          cause: {printable(c.get('text'))}" for c in pair.get("cause") or [] if isinstance(c, Mapping)]
    lines += [f"          now missing: {printable(m)}" for m in pair.get("explanation") or []]
    circuits = ", ".join(printable(vnet_name(c)) for c in pair.get("circuits") or [])
    gateways = ", ".join(printable(vnet_name(g)) for g in pair.get("gateways") or [])
    if circuits or gateways:
        lines.append(f"          via circuit {circuits or '?'}; gateways {gateways or '?'}")
    if pair.get("policy"):
        lines.append(f"          policy: {printable(pair['policy'])}")
    lines += [f"          warning: {printable(w)}" for w in pair.get("warnings") or []]
    return lines


def show_text(change: Change, chain: str) -> str:
    """Everything one record holds, readable, plus the chain's verdict up to it."""
    logged, doc = change.logged, change.logged.record
    trigger = doc.get("trigger") if isinstance(doc.get("trigger"), Mapping) else {}
    assert isinstance(trigger, Mapping)
    seqs = f"{logged.seq}" if logged.parts == 1 else f"{logged.seq}-{logged.last_seq} ({logged.parts} parts)"
    lines = [
        f"run {printable(doc.get('runId'))}: {printable(doc.get('outcome'))}",
        f"  recorded: {short_time(logged.recorded_at)} UTC, record {seqs}, {logged.where}",
        f"  run time: {printable(doc.get('time'))}",
        f"  trigger: {printable(_trigger_cell(doc))}",
    ]
    if trigger.get("resourceId"):
        lines.append(f"  resource: {printable(trigger['resourceId'])}")
    for label, key in (("changed by", "caller"), ("event time", "eventTime"), ("correlation id", "correlationId"),
                       ("event id", None), ("detail", "detail")):
        value = trigger.get("eventId") if key is None else doc.get(key)
        if label == "changed by":
            value = who_of(doc)
        if value:
            lines.append(f"  {label}: {printable(value)}")
    if doc.get("baseline"):
        lines.append(f"  baseline: the first run; {doc.get('pairs', '?')} pairs recorded, none announced")
    counts = {k: len(doc.get(k) or []) for k in PAIR_LISTS}
    lines.append(f"  {counts['opened']} opened, {counts['closed']} closed, {counts['pending']} pending"
                 + (f"; {doc['pairs']} pair{'s' if doc['pairs'] != 1 else ''} committed after it"
                    if isinstance(doc.get("pairs"), int) else ""))
    for key in PAIR_LISTS:
        for _, pair in pairs_of(doc, key):
            lines += _pair_lines(key, pair)
    lines += [f"  warning: {printable(w)}" for w in doc.get("warnings") or []]
    if doc.get("outcome") == DELIVERY:
        lines += [f"  delivered: {printable(i)}" for i in doc.get("delivered") or []]
        lines += [f"  not delivered: {printable(i)}" for i in doc.get("undelivered") or []]
    if change.alert_id:
        lines.append(f"  alert {change.alert_id}: " + (printable(", ".join(change.deliveries)) or "no delivery yet"))
        lines += [f"    {short_time(a.time)} {printable(a.notifier)}: "
                  f"{'delivered' if a.delivered else 'not delivered'} (run {a.run_id}, {a.where})"
                  for a in change.attempts]
    elif doc.get("outcome") == "committed":
        lines.append("  alert: none (nothing to announce)")
    lines.append(f"  chain: {chain}")
    return terminal_lines(lines)


def history_text(vnet_a: str, vnet_b: str, events: Sequence[PairEvent], now: str) -> str:
    title = f"{printable(vnet_name(vnet_a))} <-> {printable(vnet_name(vnet_b))}"
    lines = [f"history of {title}: {len(events)} change{'s' if len(events) != 1 else ''} recorded"]
    for event in events:
        doc, pair = event.logged.record, event.pair
        causes = "; ".join(printable(c.get("text")) for c in pair.get("cause") or [] if isinstance(c, Mapping))
        who = printable(who_of(doc) or "?")
        lines.append(f"  {short_time(event.logged.recorded_at)}  {event.direction.upper()} by {who}")
        if causes:
            lines.append(f"      cause: {causes}")
        lines += [f"      now missing: {printable(m)}" for m in pair.get("explanation") or []]
        alert = f", alert {printable(doc['alertId'])}" if doc.get("alertId") and event.direction in (
            "opened", "closed") else ""
        lines.append(f"      run {printable(doc.get('runId'))} ({printable(_trigger_cell(doc))}){alert}")
    lines.append(f"now: {now}")
    return terminal_lines(lines)
