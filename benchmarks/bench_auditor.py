"""Benchmark of one auditor run (read -> compute -> diff -> commit -> audit) on enterprise-sized topologies.

    .venv/bin/python benchmarks/bench_auditor.py [--sizes 1000,5000,20000]

Uses the local-folder store and an in-memory reader, so it measures the auditor's own work (not ARM latency).
Each size runs in a fresh subprocess so its peak memory is its own. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_transit import generate  # noqa: E402
from shared.auditor import Auditor, RunTrigger  # noqa: E402
from shared.ports import JsonDict  # noqa: E402
from shared.store import LocalAuditLog, LocalStateStore  # noqa: E402


class MemoryReader:
    def __init__(self, resources: list[JsonDict]) -> None:
        self.resources = resources

    def read(self, *, focus_resource_id: str | None = None) -> list[JsonDict]:
        return self.resources


class CountingNotifier:
    channel = name = "bench"

    def __init__(self) -> None:
        self.alerts = 0

    def deliver(self, alert: JsonDict, *, alert_id: str) -> None:
        self.alerts += 1


def measure(n_vnets: int) -> dict[str, Any]:
    before, after = generate(n_vnets)
    folder = tempfile.mkdtemp(prefix="bench-auditor-")
    reader, notifier = MemoryReader(before), CountingNotifier()
    auditor = Auditor(reader=reader, state=LocalStateStore(folder), audit=LocalAuditLog(folder),
                      notifiers=[notifier])
    started = time.perf_counter()
    auditor.run(RunTrigger(kind="reconcile"))
    baseline = time.perf_counter() - started
    reader.resources = after
    started = time.perf_counter()
    result = auditor.run(RunTrigger(kind="event", event_id="bench-1", resource_id=None))
    change = time.perf_counter() - started
    started = time.perf_counter()
    auditor.run(RunTrigger(kind="event", event_id="bench-2", resource_id=None))
    unchanged = time.perf_counter() - started
    state_bytes = sum(p.stat().st_size for p in Path(folder).glob("state*"))
    return {"vnets": n_vnets, "baseline_s": baseline, "change_s": change, "unchanged_s": unchanged,
            "opened": len(result.opened), "closed": len(result.closed), "alerts": notifier.alerts,
            "state_mb": state_bytes / 1e6, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,5000,20000")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one)))
        return 0
    print("| VNets | baseline run | run with a change (opened/closed) | unchanged event run | state file | peak RSS |")
    print("|---:|---:|---:|---:|---:|---:|")
    for size in (int(s) for s in args.sizes.split(",")):
        out = subprocess.run([sys.executable, __file__, "--one", str(size)], check=True, capture_output=True,
                             text=True, env={**os.environ, "PYTHONHASHSEED": "0"}).stdout
        r = json.loads(out)
        print(f"| {r['vnets']:,} | {r['baseline_s']:.2f} s | {r['change_s']:.2f} s ({r['opened']:,}/{r['closed']:,}) "
              f"| {r['unchanged_s']:.2f} s | {r['state_mb']:.1f} MB | {r['peak_mb']:.0f} MB |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
