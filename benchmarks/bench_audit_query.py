"""Benchmark of the audit questions (`audit list`, `show`, `history`) on a generated year of audit log.

    .venv/bin/python benchmarks/bench_audit_query.py [--days 365] [--per-day 100]

Writes a local store with one day file per day, `--per-day` committed changes a day (each with its delivery
record, every tenth delivery failing once first; one change a week recorded in parts), chained as the auditor
chains them. Then times each question in a fresh process (the CLI as a user runs it) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from shared.adapters.store import audit_file_name, canonical_json, chain_next  # noqa: E402
from shared.app.auditor import split_record  # noqa: E402
from shared.app.ports import JsonDict  # noqa: E402

SUB = "00000000-0000-0000-0000-00000000b3c4"
HUBS = 200


def _id(kind: str, name: str) -> str:
    return f"/subscriptions/{SUB}/resourceGroups/rg-net/providers/Microsoft.Network/{kind}/{name}"


def vnet_id(n: int) -> str:
    return _id("virtualNetworks", f"hub-{n:03d}")


def _pair(a: int, b: int, gateway: int, opened: bool) -> JsonDict:
    gw = _id("virtualNetworkGateways", f"ergw-{gateway:03d}")
    flag = "false -> true" if opened else "true -> false"
    pair: JsonDict = {
        "vnets": [vnet_id(a), vnet_id(b)], "status": "confirmed", "severity": "warning", "warnings": [],
        "circuits": [_id("expressRouteCircuits", "er-main")],
        "gateways": [_id("virtualNetworkGateways", f"ergw-{a:03d}"), _id("virtualNetworkGateways", f"ergw-{b:03d}")],
        "endpoints": [{"id": vnet_id(n), "name": f"hub-{n:03d}", "subscription": SUB, "resourceGroup": "rg-net",
                       "addressPrefixes": [f"10.{n % 250}.0.0/16"], "tags": {},
                       "gateways": [_id("virtualNetworkGateways", f"ergw-{n:03d}")]} for n in (a, b)],
        "cause": [{"resource": gw, "name": f"ergw-{gateway:03d}", "kind": "gateway", "change": "modified",
                   "property": "allowRemoteVnetTraffic", "old": not opened, "new": opened,
                   "text": f"ergw-{gateway:03d} allowRemoteVnetTraffic {flag}"}],
    }
    if not opened:
        pair["explanation"] = [f"ergw-{gateway:03d} does not allow traffic from remote VNets"]
    return pair


def generated_records(days: int, per_day: int, *, last_day: date, seed: int = 15,
                      parts_every: int = 7) -> Iterator[tuple[datetime, JsonDict]]:
    """(recordedAt, record) in log order: per day `per_day` committed changes, each followed by its deliveries."""
    rng = random.Random(seed)
    first = last_day - timedelta(days=days - 1)
    sequence = 0
    for d in range(days):
        start = datetime(first.year, first.month, first.day, tzinfo=UTC) + timedelta(days=d)
        for i in range(per_day):
            moment = start + timedelta(seconds=(i + 0.5) * 86400 / per_day)
            run_id, alert_id = f"{rng.getrandbits(128):032x}", f"{rng.getrandbits(128):032x}"
            a, b = rng.sample(range(HUBS), 2)
            opened = rng.random() < 0.5
            count = 400 if parts_every and i == 0 and d % parts_every == 0 else 1
            pairs = [_pair(a, b, a, opened)] + [_pair((a + k) % HUBS, (b + k) % HUBS, a, opened)
                                                for k in range(1, count) if (a + k) % HUBS != (b + k) % HUBS]
            sequence += 1
            record: JsonDict = {
                "runId": run_id, "time": moment.isoformat(), "outcome": "committed",
                "trigger": {"kind": "event", "eventId": f"{rng.getrandbits(64):016x}",
                            "operation": "Microsoft.Network/virtualNetworkGateways/write",
                            "resourceId": _id("virtualNetworkGateways", f"ergw-{a:03d}")},
                "caller": f"user{rng.randrange(20):02d}@contoso.example", "correlationId": f"corr-{sequence}",
                "eventTime": moment.isoformat(), "opened": pairs if opened else [], "closed": [] if opened else pairs,
                "pending": [], "warnings": [], "commitConflicts": 0, "baseline": False, "topologyDigest": "0" * 64,
                "stateSequence": sequence, "pairs": 1000, "alertId": alert_id, "notifiers": ["teams"],
            }
            for part in split_record(record, budget=60_000 if count > 1 else 3 * 1024 * 1024):
                yield moment, part
            failing = i % 10 == 9
            if failing:
                yield moment + timedelta(seconds=1), {"runId": run_id, "time": (moment + timedelta(seconds=1))
                                                      .isoformat(), "outcome": "delivery", "delivered": [],
                                                      "undelivered": [f"{alert_id}:teams"]}
            later = moment + timedelta(seconds=60 if failing else 1)
            yield later, {"runId": run_id, "time": later.isoformat(), "outcome": "delivery",
                          "delivered": [f"{alert_id}:teams"], "undelivered": []}


def generated_lines(days: int, per_day: int, *, last_day: date, **kwargs: Any) -> Iterator[tuple[str, str]]:
    """(file name, chained JSON line) for the generated log, as the audit log stores it."""
    previous: JsonDict | None = None
    for moment, record in generated_records(days, per_day, last_day=last_day, **kwargs):
        previous = chain_next(previous, record, recorded_at=moment)
        yield audit_file_name(moment.date()), canonical_json(previous) + "\n"


def write_log(folder: Path, days: int, per_day: int, *, last_day: date, **kwargs: Any) -> dict[str, int]:
    """Write the generated log as day files into `folder`; returns lines per file."""
    folder.mkdir(parents=True, exist_ok=True)
    by_file: dict[str, list[str]] = {}
    for name, line in generated_lines(days, per_day, last_day=last_day, **kwargs):
        by_file.setdefault(name, []).append(line)
        if len(by_file) > 1:  # a day is complete: write it and free it
            done = next(iter(by_file))
            (folder / done).write_text("".join(by_file.pop(done)), encoding="utf-8")
    for name, lines in by_file.items():
        (folder / name).write_text("".join(lines), encoding="utf-8")
    return {p.name: sum(1 for _ in p.open(encoding="utf-8")) for p in sorted(folder.glob("audit-*.jsonl"))}


def _time_cli(args: list[str]) -> dict[str, Any]:
    code = ("import resource, sys, time; from shared.cli import main; t = time.perf_counter(); "
            "import io, contextlib; out = io.StringIO()\n"
            "with contextlib.redirect_stdout(out): rc = main(sys.argv[1:])\n"
            "u = resource.getrusage(resource.RUSAGE_SELF)\n"
            "print(rc, time.perf_counter() - t, u.ru_maxrss, len(out.getvalue().splitlines()), "
            "u.ru_utime + u.ru_stime, file=sys.stderr)")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    last = done.stderr.strip().splitlines()[-1].split()
    return {"rc": int(last[0]), "seconds": float(last[1]), "wall": wall, "rss_mb": int(last[2]) / 1024,
            "lines": int(last[3]), "cpu": float(last[4])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--per-day", type=int, default=100)
    options = parser.parse_args()
    today = datetime.now(UTC).date()
    store = Path(tempfile.mkdtemp(prefix="bench-audit-"))
    started = time.perf_counter()
    counts = write_log(store, options.days, options.per_day, last_day=today)
    size = sum(p.stat().st_size for p in store.iterdir())
    print(f"generated {sum(counts.values()):,} records in {len(counts)} day files, {size / 1e6:.0f} MB, "
          f"in {time.perf_counter() - started:.1f} s ({store})", file=sys.stderr)
    middle = today - timedelta(days=options.days // 2)
    run_id, alert_id = _ids_on(store / audit_file_name(middle))
    questions = [
        ("list, one day (--since/--until)", ["--since", f"{middle}T00:00:00Z", "--until", f"{middle}T23:59:59Z"]),
        ("list --since 12h", ["--since", "12h"]),
        ("list --since 7d", ["--since", "7d"]),
        ("list --since 7d --caller user03", ["--since", "7d", "--caller", "user03"]),
        ("list, whole log, one pair (--vnet x2)", ["--vnet", "hub-001", "--vnet", "hub-002"]),
        ("list, whole log (every change)", []),
    ]
    rows = []
    for label, extra in questions:
        rows.append((label, _time_cli(["audit", "list", "--store", str(store), *extra])))
    rows.append(("show ALERT_ID (mid-log; verifies the chain up to it)",
                 _time_cli(["audit", "show", alert_id, "--store", str(store)])))
    rows.append(("show RUN_ID", _time_cli(["audit", "show", run_id, "--store", str(store)])))
    rows.append(("history hub-001 hub-002 (whole log)", _time_cli(["audit", "history", "hub-001", "hub-002",
                                                                    "--store", str(store)])))
    rows.append(("verify (for comparison)", _time_cli(["audit", "verify", "--store", str(store)])))
    print(f"| question ({len(counts)} day files, {sum(counts.values()):,} records, {size / 1e6:.0f} MB) "
          "| time | CPU | peak RSS | output lines |")
    print("|---|---:|---:|---:|---:|")
    for label, row in rows:
        print(f"| {label} | {row['seconds']:.2f} s | {row['cpu']:.2f} s | {row['rss_mb']:.0f} MB | {row['lines']:,} |")


def _ids_on(path: Path) -> tuple[str, str]:
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record.get("alertId") and "part" not in record:
            return str(record["runId"]), str(record["alertId"])
    raise SystemExit(f"no alert in {path}")


if __name__ == "__main__":
    main()
