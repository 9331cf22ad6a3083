"""Operator commands of the CLI that reach adapters: export, replay, audit verify, render."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def cmd_export(args: argparse.Namespace) -> int:
    from shared.adapters.arm import export_main

    return export_main(list(args.subscription), out=sys.stdout)


def cmd_replay(args: argparse.Namespace) -> int:
    from shared.cli.replay import ReplayError, replay_main
    from shared.cli.usage import UsageError

    try:
        return replay_main(args.dir, args.store, as_json=args.json)
    except ReplayError as exc:
        raise UsageError(str(exc)) from None


def cmd_audit_verify(args: argparse.Namespace) -> int:
    import os

    from shared.adapters.store import audit_verify_main

    if args.from_settings:
        return audit_verify_main(None, settings=os.environ)
    return audit_verify_main(args.store)


def cmd_render(args: argparse.Namespace) -> int:
    from shared.adapters.notify.render import render_main

    return render_main(args.channel, args.diff_json)


def register(sub: Any) -> None:
    p = sub.add_parser("export", help="write a snapshot of live subscriptions (Resource Graph + ARM) to stdout")
    p.add_argument("--subscription", action="append", required=True, metavar="ID",
                   help="a subscription to read (repeat for several)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("replay", help="drive the function entry points through a recorded story (local store)")
    p.add_argument("dir", help="folder of step folders, each with topology.json and optionally event.json")
    p.add_argument("--store", help="local store folder for state and audit (default: a new temporary folder)")
    p.add_argument("--json", action="store_true", help="one JSON object per step")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("audit", help="audit log commands")
    audit_sub = p.add_subparsers(dest="audit_command", required=True)
    v = audit_sub.add_parser("verify", help="walk the audit chain; exit 1 at the first broken or missing record")
    where = v.add_mutually_exclusive_group(required=True)
    where.add_argument("--store", help="local store folder")
    where.add_argument("--from-settings", action="store_true",
                       help="the store the app settings in the environment select (AuditorStorage, "
                            "AuditorStorage__blobServiceUri, AUDIT_CONTAINER), as the function uses it")
    v.set_defaults(func=cmd_audit_verify)
    from shared.cli import audit as cli_audit

    cli_audit.register(audit_sub)

    p = sub.add_parser("render", help="print the chat payload a diff would produce")
    p.add_argument("--channel", required=True, choices=["teams", "slack", "json"])
    p.add_argument("diff_json", help="the output of `diff --json`")
    p.set_defaults(func=cmd_render)
