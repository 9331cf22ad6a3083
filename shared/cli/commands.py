"""Offline and operator commands: `python -m shared.cli pairs|diff|...` (see DESIGN.md, command-line contract)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.cli.json_output import print_json
from shared.cli.usage import EXIT_BAD_INPUT, EXIT_FINDING, EXIT_OK, UsageError, _policy
from shared.core.collector import collector_paused
from shared.core.diff import diff_pairs
from shared.core.explain import VnetLookupError, explain_pair, resolve_vnet
from shared.core.policy import (
    annotate_diff,
    forbidden_openings,
    policy_lines,
    policy_warnings,
)
from shared.core.snapshot import SnapshotError, load_snapshots, read_snapshot
from shared.core.transit import compute_pairs
from shared.core.views import diff_json, diff_table, pairs_json, pairs_table
from shared.core.whatif import ChangeError, Scope, changes_from_template, parse_set, whatif

_SNAPSHOT_HELP = "a snapshot file (array, ARM list, az graph query output, one ARM GET body) or a folder of them"


def _print_json(doc: Any) -> None:
    print_json(doc, sys.stdout)  # the bytes of json.dump(doc, indent=2, ensure_ascii=False), in seconds at 20k


def cmd_pairs(args: argparse.Namespace) -> int:
    with collector_paused(freeze=True):  # a short-lived process: nothing it builds needs the cyclic collector
        topology = read_snapshot(args.snapshot)
        pairs = compute_pairs(topology)
    if args.json:
        _print_json(pairs_json(pairs, topology, lazy=True))
    else:
        print(pairs_table(pairs_json(pairs, topology), topology))
    return EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    with collector_paused(freeze=True):  # a short-lived process: nothing it builds needs the cyclic collector
        before, after = read_snapshot(args.before), read_snapshot(args.after)
        before_pairs, after_pairs = compute_pairs(before), compute_pairs(after)
        diff = diff_pairs(before_pairs, after_pairs, before_topology=before, after_topology=after)
    return _report_diff(diff_json(diff, warnings=after_pairs.warnings), args)


def _report_diff(doc: dict[str, Any], args: argparse.Namespace) -> int:
    """Print a diff document (annotated when --policy is given); exit 1 when a forbidden pair opens."""
    policy = _policy(args.policy) if getattr(args, "policy", None) else None
    if policy is not None:
        doc = annotate_diff(doc, policy, now=datetime.now(UTC))
    if args.json:
        _print_json(doc)
    else:
        print(diff_table(doc))
        if policy is not None and (doc["opened"] or doc["closed"]):
            print("\npolicy " + policy.source + ":\n" + "\n".join("  " + line for line in policy_lines(doc)))
    return EXIT_FINDING if policy is not None and forbidden_openings(doc) else EXIT_OK


def cmd_explain(args: argparse.Namespace) -> int:
    topology = read_snapshot(args.snapshot)
    try:
        a, b = resolve_vnet(topology, args.vnet_a), resolve_vnet(topology, args.vnet_b)
    except VnetLookupError as exc:
        raise UsageError(str(exc)) from None
    explanation = explain_pair(topology, a, b)
    if args.json:
        _print_json(explanation.to_json())
    else:
        print(explanation.text())
    return EXIT_OK


def _read_json(path: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"{path}: cannot read file: {exc.strerror or exc.__class__.__name__}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: cannot read file: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None


def cmd_whatif(args: argparse.Namespace) -> int:
    notes: list[str] = []  # e.g. a saved page that says more pages exist
    resources = load_snapshots(args.snapshot, notes=notes)
    if not (args.set or args.delete or args.template):
        raise UsageError("nothing to check: give --set, --delete or --template")
    puts: tuple[Any, ...] = ()
    delete_ids: tuple[str, ...] = ()
    if args.template:
        doc = _read_json(args.template)
        try:
            scope = Scope.parse(args.scope) if args.scope else None
            changes = changes_from_template(doc, scope=scope, resources=resources)
        except ChangeError as exc:
            raise UsageError(f"{args.template}: {exc}") from None
        puts, delete_ids = changes.puts, changes.delete_ids
    try:
        sets = [parse_set(ref, assignment) for ref, assignment in args.set or []]
        result = whatif(resources, sets, args.delete or [], puts=puts, delete_ids=delete_ids,
                        source=", ".join(args.snapshot))
    except ChangeError as exc:
        raise UsageError(str(exc)) from None
    return _report_diff(diff_json(result.diff, warnings=(*notes, *result.after_pairs.warnings)), args)


def cmd_policy_check(args: argparse.Namespace) -> int:
    policy = _policy(args.file)
    for warning in policy_warnings(policy):
        print(f"warning: {warning}", file=sys.stderr)
    kinds = {k: sum(1 for r in policy.rules if r.kind == k) for k in ("forbidden", "allowed", "accepted")}
    print(f"{policy.source}: ok ({', '.join(f'{n} {k}' for k, n in kinds.items())}; unexpected = "
          f"{policy.unexpected})")
    return EXIT_OK


def _register_explain_whatif_policy(sub: Any) -> None:
    p = sub.add_parser("explain", help="why two VNets are (not) an ER-transit pair")
    p.add_argument("snapshot", metavar="SNAPSHOT", help=_SNAPSHOT_HELP)
    p.add_argument("vnet_a", metavar="VNET_A", help="VNet id, or name when unique")
    p.add_argument("vnet_b", metavar="VNET_B", help="VNet id, or name when unique")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("whatif", help="the pairs a change would open and close (exit 1: a forbidden pair opens)")
    p.add_argument("snapshot", nargs="+", metavar="SNAPSHOT", help=_SNAPSHOT_HELP + "; several are merged")
    p.add_argument("--set", nargs=2, action="append", metavar=("RESOURCE", "PROPERTY=VALUE"),
                   help="set a property (path under properties, or tags.X); VALUE is JSON or a string")
    p.add_argument("--delete", action="append", metavar="RESOURCE", help="delete a resource (id or name)")
    p.add_argument("--template", metavar="DEPLOYMENT.json",
                   help="a compiled ARM template, or the JSON of `az deployment group what-if`")
    p.add_argument("--scope", metavar="/subscriptions/SUB/resourceGroups/RG",
                   help="the template's target resource group (default: inferred from the snapshot)")
    p.add_argument("--policy", metavar="FILE", help="policy file: severities, and exit 1 on a forbidden opening")
    p.add_argument("--json", action="store_true", help="print JSON (the shape of diff --json)")
    p.set_defaults(func=cmd_whatif)

    p = sub.add_parser("policy", help="policy file commands")
    policy_sub = p.add_subparsers(dest="policy_command", required=True)
    c = policy_sub.add_parser("check", help="validate a policy file (exit 2 with FILE:LINE on an error)")
    c.add_argument("file")
    c.set_defaults(func=cmd_policy_check)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m shared.cli",
                                     description="ExpressRoute VNet-to-VNet transit auditor")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("pairs", help="the ER-transit pairs of a snapshot")
    p.add_argument("snapshot", nargs="+", metavar="SNAPSHOT", help=_SNAPSHOT_HELP + "; several are merged")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_pairs)

    p = sub.add_parser("diff", help="the pairs opened and closed between two snapshots, with causes")
    p.add_argument("before", metavar="BEFORE", help=_SNAPSHOT_HELP)
    p.add_argument("after", metavar="AFTER", help=_SNAPSHOT_HELP)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--policy", metavar="FILE", help="policy file: severities, and exit 1 on a forbidden opening")
    p.set_defaults(func=cmd_diff)
    _register_explain_whatif_policy(sub)

    from shared.cli import ops as cli_ops
    from shared.cli import report as cli_report

    cli_ops.register(sub)
    cli_report.register(sub)
    return parser


def _quiet_sdk_logging() -> None:
    """Our warnings on stderr, one line each; the Azure SDKs' own (multi-line credential reports) only on error."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    logging.getLogger("azure").setLevel(logging.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_sdk_logging()
    try:
        return int(args.func(args))
    except (SnapshotError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        return EXIT_OK
