"""Offline and operator commands: `python -m shared.cli pairs|diff|...` (see DESIGN.md, command-line contract)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from shared.diff import diff_pairs
from shared.snapshot import SnapshotError, read_snapshot
from shared.transit import compute_pairs
from shared.views import diff_json, diff_table, pairs_json, pairs_table

EXIT_OK, EXIT_FINDING, EXIT_BAD_INPUT = 0, 1, 2


class UsageError(Exception):
    """Bad input given on the command line; printed as one line, exit status 2."""


def _print_json(doc: Any) -> None:
    json.dump(doc, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def cmd_pairs(args: argparse.Namespace) -> int:
    topology = read_snapshot(args.snapshot)
    doc = pairs_json(compute_pairs(topology), topology)
    if args.json:
        _print_json(doc)
    else:
        print(pairs_table(doc, topology))
    return EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    before, after = read_snapshot(args.before), read_snapshot(args.after)
    before_pairs, after_pairs = compute_pairs(before), compute_pairs(after)
    diff = diff_pairs(before_pairs, after_pairs, before_topology=before, after_topology=after)
    doc = diff_json(diff, warnings=after_pairs.warnings)
    if args.json:
        _print_json(doc)
    else:
        print(diff_table(doc))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m shared.cli",
                                     description="ExpressRoute VNet-to-VNet transit auditor")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("pairs", help="the ER-transit pairs of a snapshot")
    p.add_argument("snapshot")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_pairs)

    p = sub.add_parser("diff", help="the pairs opened and closed between two snapshots, with causes")
    p.add_argument("before")
    p.add_argument("after")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_diff)

    from shared import cli_ops

    cli_ops.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (SnapshotError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
