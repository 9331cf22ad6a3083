"""`audit list`, `audit show`, `audit history`: questions to the audit log from the command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.adapters.audit_reader import AuditDayFiles, find_record, read_records
from shared.app.ports import StateStore
from shared.core.audit_query import (
    AuditFilter,
    AuditQueryError,
    Window,
    change_of,
    changes,
    delivery_attempts,
    pair_history,
    pair_matches,
    parse_outcomes,
    parse_when,
    who_of,
)
from shared.core.audit_views import history_text, list_text, printable, show_text


class _Refused(Exception):
    """The store cannot be opened for questions; printed as one line, exit 2."""


def _open(args: argparse.Namespace) -> tuple[AuditDayFiles, StateStore]:
    """The audit log and the committed state the command reads."""
    from shared.adapters.store import LocalAuditLog, LocalStateStore, store_from_settings

    if args.from_settings:
        state, log, _ = store_from_settings(os.environ)
        if not isinstance(log, AuditDayFiles):
            raise _Refused("the audit log the app settings select cannot be queried")
        return log, state
    folder = Path(args.store)
    if not folder.is_dir():
        raise _Refused(f"no store folder {args.store}")
    return LocalAuditLog(folder), LocalStateStore(folder)


def _storage_errors() -> tuple[type[BaseException], ...]:
    from azure.core.exceptions import AzureError

    return (AzureError, OSError)


def _guarded(command: Any) -> Any:
    """Run a command; a bad question or a damaged log becomes a one-line error (exit 2), never a traceback."""

    def run(args: argparse.Namespace) -> int:
        try:
            return int(command(args))
        except (AuditQueryError, _Refused) as exc:
            message = str(exc)
        except _storage_errors() as exc:
            reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc.__class__.__name__
            message = f"cannot read the audit log: {str(reason).splitlines()[0]}"
        print(f"error: {printable(message)}", file=sys.stderr)
        return 2

    return run


def _window(args: argparse.Namespace, now: datetime) -> Window:
    since = parse_when(args.since, now=now, what="--since") if args.since else None
    until = parse_when(args.until, now=now, what="--until") if args.until else None
    return Window(since, until)


def cmd_audit_list(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    audit_filter = AuditFilter(window=_window(args, now), vnets=tuple(args.vnet or ()), caller=args.caller,
                               outcomes=parse_outcomes(args.outcome))
    log, _ = _open(args)
    wanted: set[str] = set()  # alert and run ids of the records kept: only their deliveries need reading
    found = changes(read_records(log, audit_filter.window, today=now.date(), needles=audit_filter.needles(),
                                 wanted=wanted), audit_filter, wanted)
    if args.json:
        for change in found:
            sys.stdout.write(json.dumps(change.to_json(), ensure_ascii=False, separators=(",", ":")) + "\n")
    else:
        print(list_text(found, outcomes=audit_filter.outcomes))
    return 0


def cmd_audit_show(args: argparse.Namespace) -> int:
    log, _ = _open(args)
    found = find_record(log, args.id)
    change = change_of(found.record, delivery_attempts(found.related))
    chain = found.chain
    if chain.ok:
        verdict = f"intact up to it ({chain.count} records checked from the first)"
    else:
        verdict = f"BROKEN at {chain.problem} (run `audit verify`)"
    intact = chain.ok
    if args.json:
        doc = change.to_json()
        doc["query"]["chain"] = {"intactUpToIt": intact, "problem": chain.problem}
        sys.stdout.write(json.dumps(doc, ensure_ascii=False, indent=2) + "\n")
    else:
        print(show_text(change, printable(verdict)))
    return 0 if intact else 1


def _now_text(state_store: StateStore, vnet_a: str, vnet_b: str, opened_before: bool) -> str:
    from shared.app.auditor import committed_pair_ids
    from shared.core.snapshot import SnapshotError

    try:
        state, _ = state_store.load()
    except (ValueError, KeyError, TypeError) as exc:
        raise AuditQueryError(f"the committed state cannot be read ({exc.__class__.__name__}); its state now "
                              "is unknown") from None
    if state is None:
        return "unknown (no committed state in the store)"
    try:
        pairs = committed_pair_ids(state)
    except SnapshotError as exc:
        raise AuditQueryError(f"the committed state cannot be read: {exc}") from None
    query = (vnet_a, vnet_b)
    is_open = any(pair_matches({"vnets": list(p)}, query) for p in pairs)
    settling = [p for p in state.pending if pair_matches(p, query)]
    text = f"{'OPEN' if is_open else 'closed'} (committed state, run {state.sequence})"
    if is_open and not opened_before:
        text += "; open since before the first opening read (the baseline, or before --since)"
    for p in settling:
        text += (f"; settling: {'opening' if p.get('direction') == 'opened' else 'closing'} since "
                 f"{printable(p.get('since'))}, started by {printable(p.get('caller') or '?')}")
    return text


def cmd_audit_history(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    window = _window(args, now)
    needles = AuditFilter(vnets=(args.vnet_a, args.vnet_b), outcomes=frozenset({"committed"})).needles()
    log, state_store = _open(args)

    def inside() -> Iterator[Any]:
        return (r for r in read_records(log, window, today=now.date(), needles=needles, wanted=set())
                if window.contains(r.recorded_at))

    events = pair_history(inside(), args.vnet_a, args.vnet_b)
    now_text = _now_text(state_store, args.vnet_a, args.vnet_b, any(e.direction == "opened" for e in events))
    if args.json:
        for event in events:
            sys.stdout.write(json.dumps({"time": event.logged.record.get("recordedAt"), "direction": event.direction,
                                         "runId": event.logged.record.get("runId"),
                                         "who": who_of(event.logged.record), "pair": event.pair,
                                         "file": event.logged.file, "line": event.logged.line},
                                        ensure_ascii=False, separators=(",", ":")) + "\n")
        sys.stdout.write(json.dumps({"now": now_text}, ensure_ascii=False) + "\n")
    else:
        print(history_text(args.vnet_a, args.vnet_b, events, now_text))
    return 0


def _source(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--store", help="local store folder")
    where.add_argument("--from-settings", action="store_true",
                       help="the Azure audit log the app settings in the environment select (as `audit verify`)")


def _window_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since", metavar="WHEN", help="from this time: ISO (2026-11-20, 2026-11-20T09:00Z) or an age "
                                                  "(30m, 12h, 7d, 2w)")
    p.add_argument("--until", metavar="WHEN", help="up to this time (same forms)")


def register(audit_sub: Any) -> None:
    """Add list, show and history to the `audit` command."""
    p = audit_sub.add_parser("list", help="committed changes, newest first (who, cause, alert, deliveries)")
    _source(p)
    _window_options(p)
    p.add_argument("--vnet", action="append", metavar="NAME_OR_ID",
                   help="only changes touching this VNet; twice: only that pair")
    p.add_argument("--caller", metavar="WHO", help="only changes by this caller (any part of it, any case)")
    p.add_argument("--outcome", action="append", metavar="OUTCOME",
                   help="committed (default), no-change, duplicate, incomplete, lost-race, delivery, or all")
    p.add_argument("--json", action="store_true", help="one JSON record per line")
    p.set_defaults(func=_guarded(cmd_audit_list))

    p = audit_sub.add_parser("show", help="one record in full (by run id or alert id) and the chain up to it")
    p.add_argument("id", metavar="ALERT_ID_OR_RUN_ID", help="a run id or alert id, or a unique start of one")
    _source(p)
    p.add_argument("--json", action="store_true", help="print the record as JSON")
    p.set_defaults(func=_guarded(cmd_audit_show))

    p = audit_sub.add_parser("history", help="every time a pair opened or closed, and its state now")
    p.add_argument("vnet_a", metavar="VNET_A", help="VNet name or resource id")
    p.add_argument("vnet_b", metavar="VNET_B", help="VNet name or resource id")
    _source(p)
    _window_options(p)
    p.add_argument("--json", action="store_true", help="one JSON object per change, then its state now")
    p.set_defaults(func=_guarded(cmd_audit_history))
