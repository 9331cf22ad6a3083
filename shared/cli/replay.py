"""`replay DIR`: drive the real function entry points through a recorded story of topologies and events."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from shared.app.ports import JsonDict
from shared.core.escape import terminal_lines


class ReplayError(ValueError):
    """The story folder is not usable; the message says why."""


# Settings that select an Azure store: replay drops them, so a recorded story can never write to the real
# state or audit log, whatever the operator's shell (or local.settings.json) holds.
AZURE_STORE_SETTINGS = ("AuditorStorage",)


def replay_settings(env: Mapping[str, str], *, live: Path, store: Path) -> dict[str, str]:
    """The settings a replay runs with: the caller's (webhooks, policy), its own local store, no Azure store."""
    out = {k: v for k, v in env.items()
           if not any(k == p or k.startswith(p + "__") or k.startswith(p + ":") for p in AZURE_STORE_SETTINGS)}
    out.update({"TOPOLOGY_SNAPSHOT": str(live), "STORE_DIR": str(store)})
    return out


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """os.environ becomes exactly `values` for the block (so nothing read later sees an Azure store setting)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _events(path: Path) -> list[Any]:
    """Decode an Event Grid delivery exactly as the Functions host does (one EventGridEvent per array item)."""
    from azure.functions.eventgrid import EventGridEventInConverter
    from azure.functions.meta import Datum

    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReplayError(f"{path}: not a readable JSON file ({exc.__class__.__name__})") from None
    items = doc if isinstance(doc, list) else [doc]
    return [EventGridEventInConverter.decode(Datum(json.dumps(item), "json"), trigger_metadata=None) for item in items]


def steps_of(story: Path) -> list[Path]:
    if not story.is_dir():
        raise ReplayError(f"{story}: not a folder")
    steps = sorted(p for p in story.iterdir() if p.is_dir())
    if not steps:
        raise ReplayError(f"{story}: no step folders (01-baseline/, 02-.../) found")
    for step in steps:
        if not (step / "topology.json").is_file():
            raise ReplayError(f"{step}: missing topology.json")
    return steps


def run_story(story: Path, store: Path, *, quiet_alerts: bool) -> Iterator[JsonDict]:
    """Run each step through function_app's triggers; yield what the audit log recorded for it."""
    from azure.functions.timer import TimerRequest

    import function_app
    from shared import entrypoints
    from shared.adapters.store import LocalAuditLog

    store.mkdir(parents=True, exist_ok=True)
    live = store / "live-topology.json"
    env = replay_settings(os.environ, live=live, store=store)
    audit = LocalAuditLog(store)
    for step in steps_of(story):
        shutil.copyfile(step / "topology.json", live)
        seen = sum(1 for _ in audit.records())
        event_file = step / "event.json"
        with _environment(env), contextlib.redirect_stdout(sys.stderr if quiet_alerts else sys.stdout):
            entrypoints.reset()
            entrypoints.use(entrypoints.build_auditor(env))
            if event_file.is_file():
                for event in _events(event_file):
                    function_app.on_resource_event(event)
            else:
                function_app.reconcile(TimerRequest(past_due=False))
        entrypoints.reset()
        records = [r for r in list(audit.records())[seen:] if r.get("outcome") != "delivery"]
        yield {
            "step": step.name,
            "trigger": "event" if event_file.is_file() else "reconcile",
            "outcome": records[-1]["outcome"] if records else "skipped",
            "opened": [p for r in records for p in r.get("opened", [])],
            "closed": [p for r in records for p in r.get("closed", [])],
            "pending": [p for r in records for p in r.get("pending", [])],
            "caller": records[-1].get("caller") if records else None,
        }


def _name(vnet_id: str) -> str:
    return vnet_id.rsplit("/", 1)[-1]


def _summary(step: JsonDict) -> str:
    parts = [f"{step['step']:<22} {step['trigger']:<9} -> {step['outcome']}"]
    for verb in ("opened", "closed", "pending"):
        for p in step[verb]:
            a, b = (_name(v) for v in p["vnets"])
            causes = "; ".join(c["text"] for c in p.get("cause", []))
            label = f"{verb} ({p['direction']})" if verb == "pending" else verb
            parts.append(f"    {label}: {a} <-> {b}   cause: {causes}")
    return terminal_lines(parts)


def replay_main(story: str, store: str | None, *, as_json: bool) -> int:
    store_dir = Path(store) if store else Path(tempfile.mkdtemp(prefix="er-transit-replay-"))
    print(f"store: {store_dir}", file=sys.stderr if as_json else sys.stdout)
    for step in run_story(Path(story), store_dir, quiet_alerts=as_json):
        if as_json:
            print(json.dumps({k: step[k] for k in ("step", "outcome", "opened", "closed")}, ensure_ascii=False))
        else:
            print(_summary(step))
    if not as_json:
        print(f"audit log: {store_dir}  (check it: python -m shared.cli audit verify --store {store_dir})")
    return 0
