"""Benchmark of the report page on enterprise-sized topologies (a script, not a test).

    .venv/bin/python benchmarks/bench_report.py [--sizes 1000,5000,20000] [--policy examples/policy.yaml]

Uses bench_transit's generator. Each size runs in a fresh subprocess: the snapshot is written to a file, then the
`report` command's steps run as the CLI runs them (read + parse, pairs + endpoints, page data, HTML, write).
Prints a Markdown table: the wall time of each step, the whole command (and its CPU time, which a busy machine
inflates less), the page's size and the peak memory.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_transit import generate  # noqa: E402
from shared.cli.report import write_atomically  # noqa: E402
from shared.core.policy import load_policy  # noqa: E402
from shared.core.report import render_report, report_data  # noqa: E402
from shared.core.snapshot import load_snapshot_file, parse_resources  # noqa: E402
from shared.core.transit import compute_pairs, endpoints_of  # noqa: E402


def measure(n_vnets: int, policy_file: str | None) -> dict[str, Any]:
    before, _ = generate(n_vnets)
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        snapshot = Path(tmp) / "snapshot.json"
        snapshot.write_text(json.dumps(before), encoding="utf-8")
        del before
        policy = load_policy(policy_file) if policy_file else None
        c0, t0 = time.process_time(), time.perf_counter()
        topology = parse_resources(load_snapshot_file(snapshot), source=str(snapshot))
        t1 = time.perf_counter()
        pairs, endpoints = compute_pairs(topology), endpoints_of(topology)
        t2 = time.perf_counter()
        data = report_data(topology, pairs, endpoints, source=str(snapshot), generated_at=datetime.now(UTC),
                           policy=policy)
        t3 = time.perf_counter()
        page = render_report(data)
        t4 = time.perf_counter()
        write_atomically(Path(tmp) / "report.html", page)
        t5, c5 = time.perf_counter(), time.process_time()
    cells = sum(len(c["tips"]) for c in data["circuits"])
    return {
        "vnets": len(topology.vnets), "gateways": len(endpoints), "circuits": len(data["circuits"]),
        "pairs": len(pairs.pairs), "domain_pairs": len(data["pairs"]), "cells": cells,
        "templates": len(data["templates"]), "read_s": t1 - t0, "compute_s": t2 - t1, "data_s": t3 - t2,
        "html_s": t4 - t3, "write_s": t5 - t4, "total_s": t5 - t0, "cpu_s": c5 - c0, "bytes": len(page.encode("utf-8")),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| VNets | gateways | circuits | pairs | domain pairs | matrix cells (texts) | read+parse | pairs | "
             "page data | HTML | whole command (CPU) | page size | peak RSS |", "|" + "---:|" * 13]
    for r in rows:
        lines.append(
            f"| {r['vnets']:,} | {r['gateways']:,} | {r['circuits']} | {r['pairs']:,} | {r['domain_pairs']:,} | "
            f"{r['cells']:,} ({r['templates']:,}) | {r['read_s']:.2f} s | {r['compute_s']:.2f} s | "
            f"{r['data_s']:.2f} s | {r['html_s']:.2f} s | {r['total_s']:.2f} s ({r['cpu_s']:.2f} s) | "
            f"{r['bytes'] / 1e6:.1f} MB | "
            f"{r['peak_rss_mb']:.0f} MB |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="1000,5000,20000", help="comma-separated VNet counts")
    parser.add_argument("--policy", help="a policy file (forbidden/unexpected marks on every pair)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: measure one size, print JSON
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(measure(args.one, args.policy)))
        return 0
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        cmd = [sys.executable, __file__, "--one", str(size)] + (["--policy", args.policy] if args.policy else [])
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout))
    print(f"Python {platform.python_version()}, {platform.machine()}; a fresh process per size"
          + (f"; policy {args.policy}" if args.policy else "") + ".\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
