"""`python -m shared.cli report SNAPSHOT [--store DIR] [--policy FILE] -o FILE.html`: reads, renders, writes."""

from __future__ import annotations

import argparse
import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.core.report import AuditView, build_report
from shared.core.snapshot import load_snapshot_file, parse_resources
from shared.core.transit import compute_pairs, endpoints_of


def read_audit_folder(store_dir: str) -> AuditView:
    """The audit records of a local store folder (parts joined) and whether their chain and the state's tail verify.

    A damaged log still gives a page: the records up to the damage, and the page says the chain did not verify.
    """
    from shared.adapters.audit_reader import parse_record
    from shared.adapters.store import (
        AuditLogCorrupt,
        LocalAuditLog,
        LocalStateStore,
        missing_tail,
        parse_audit_line,
        verify_audit,
    )
    from shared.adapters.store.anchor import anchor_gap
    from shared.cli.usage import UsageError
    from shared.core.audit_query import AuditQueryError, LoggedRecord, PartJoiner

    if not Path(store_dir).is_dir():
        raise UsageError(f"{store_dir}: no such store folder")
    log = LocalAuditLog(store_dir)
    try:
        anchor, anchor_problem = log.anchor.read(), None  # read before the log: it never runs ahead of it
    except AuditLogCorrupt as exc:
        anchor, anchor_problem = None, str(exc)
    lines = list(log.lines())
    result = verify_audit(lines)
    problem = result.problem
    records: list[LoggedRecord] = []
    joiner = PartJoiner()
    try:
        for line in lines:
            record, recorded_at = parse_record(line)
            logged = joiner.feed(record, file=line.file, line=line.line, recorded_at=recorded_at)
            if logged is not None:
                records.append(logged)
    except AuditQueryError as exc:
        problem = problem or str(exc)
    if problem is None:  # the chain verified, so every line is a record
        problem = anchor_problem or anchor_gap(anchor, (parse_audit_line(line) for line in lines))
    if problem is None:
        problem = missing_tail(LocalStateStore(store_dir).load()[0], (r.record for r in records))
    return AuditView(source=store_dir, records=records, lines=len(lines), verified=problem is None, problem=problem)


def write_atomically(path: Path, text: str) -> None:
    """Write the page next to its destination and rename it into place (a reader never sees half a page)."""
    from shared.adapters.store._local import _replace_atomically

    path.parent.mkdir(parents=True, exist_ok=True)
    _replace_atomically(path, text.encode("utf-8"))


def cmd_report(args: argparse.Namespace) -> int:
    from shared.cli.usage import EXIT_OK, UsageError, _policy

    resources = load_snapshot_file(args.snapshot)
    digest = hashlib.sha256(Path(args.snapshot).read_bytes()).hexdigest() if Path(args.snapshot).is_file() else ""
    topology = parse_resources(resources, source=args.snapshot)
    policy = _policy(args.policy) if args.policy else None
    audit = read_audit_folder(args.store) if args.store else None
    source = f"snapshot {args.snapshot} ({len(resources):,} resources" + (f", sha256 {digest[:16]}…)" if digest
                                                                          else ")")
    page = build_report(topology, compute_pairs(topology), endpoints_of(topology), source=source,
                        generated_at=datetime.now(UTC).replace(microsecond=0), policy=policy, audit=audit)
    out = Path(args.output)
    try:
        write_atomically(out, page)
    except OSError as exc:
        raise UsageError(f"{out}: cannot write: {exc.strerror or exc.__class__.__name__}") from None
    print(f"report written to {out} ({len(page.encode('utf-8')):,} bytes)")
    return EXIT_OK


def register(sub: Any) -> None:
    p = sub.add_parser("report", help="write the ER-transit report page (one self-contained HTML file)")
    p.add_argument("snapshot")
    p.add_argument("--store", metavar="DIR", help="local store folder: adds the audit timeline and its verification")
    p.add_argument("--policy", metavar="FILE", help="policy file: highlights forbidden and unexpected paths")
    p.add_argument("-o", "--output", required=True, metavar="FILE.html", help="where to write the page")
    p.set_defaults(func=cmd_report)
