"""Benchmark of reconciles that miss a subscription (issue 16, item 3; a script, not a test).

    .venv/bin/python benchmarks/bench_partial_read.py [--vnets 20000]

On the generated enterprise estate (20 subscriptions) through the real reader against the fake ARM over HTTPS, with
the local-folder store: a baseline reconcile; a reconcile with nothing changed; one that misses a subscription
(denied) while a gateway in another subscription opens pairs (the missed one's pairs held); one more while it is
still denied; then the reconcile that reads it again (held changes announced). Prints time, outcome, opened /
closed / held and the calls the fake counted for each.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_auditor import closed_gateway, fake_arm_auditor, flipped, peak_mb  # noqa: E402
from benchmarks.bench_transit import generate  # noqa: E402
from shared.adapters.store import LocalAuditLog  # noqa: E402
from shared.app.auditor import RunTrigger  # noqa: E402


def circuit_subscriptions(resources: list[dict[str, Any]]) -> set[str]:
    """The generator keeps the circuits in one subscription, whose loss would hold every pair over them."""
    return {r["id"].split("/")[2] for r in resources if r["type"].lower().endswith("/expressroutecircuits")}


def busiest_other_end(resources: list[dict[str, Any]], gateway: dict[str, Any], *, avoid: set[str]) -> str:
    """The subscription holding the most far ends of the pairs that flipping `gateway` opens (so some are held)."""
    from collections import Counter

    from shared.core.snapshot import parse_resources
    from shared.core.transit import compute_pairs

    after = [flipped(r) if r["id"] == gateway["id"] else r for r in resources]
    old = compute_pairs(parse_resources(resources)).pairs
    ends: Counter[str] = Counter()
    for key, pair in compute_pairs(parse_resources(after)).pairs.items():
        if key not in old:
            ends.update(v.value.split("/")[2] for v in (pair.a, pair.b))
    return next(sub for sub, _ in ends.most_common() if sub not in avoid)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vnets", type=int, default=20000)
    args = parser.parse_args(argv)
    before, _ = generate(args.vnets)
    folder = tempfile.mkdtemp(prefix="bench-partial-")
    fake, reader, auditor = fake_arm_auditor(folder, before)
    gateway = closed_gateway(before)
    flip_sub = gateway["id"].split("/")[2]
    denied = busiest_other_end(before, gateway, avoid={flip_sub, *circuit_subscriptions(before)})
    rows: list[tuple[str, Any, float, tuple[int, int]]] = []

    def reconcile(label: str) -> None:
        fake.clear_requests()
        started = time.perf_counter()
        result = auditor.run(RunTrigger(kind="reconcile"))
        seconds = time.perf_counter() - started
        rows.append((label, result, seconds, (len(fake.resource_graph_requests()), len(fake.arm_requests()))))

    reconcile("baseline")
    reconcile("nothing changed")
    fake.deny_subscription(denied)
    fake.set_arm_copy(flipped(gateway))
    estate = {s: [r for r in before if r["id"].split("/")[2] == s] for s in reader.subscriptions}
    estate[flip_sub] = [flipped(r) if r["id"] == gateway["id"] else r for r in estate[flip_sub]]
    fake.set_resources(estate)
    reconcile(f"subscription {denied[-4:]} denied, a gateway in {flip_sub[-4:]} opens pairs")
    reconcile("still denied, nothing else changed")
    fake.allow_subscription(denied)
    reconcile("readable again")
    fake.stop()
    held = {r["runId"]: len(r["held"]) for r in LocalAuditLog(folder).records() if "held" in r}
    print(f"| reconcile ({args.vnets:,} VNets, {len(reader.subscriptions)} subscriptions) | outcome | opened | "
          "closed | held | time | Resource Graph queries / ARM calls |")
    print("|---|---|---|---|---|---|---|")
    records = [r for r in LocalAuditLog(folder).records() if r.get("outcome") in ("committed", "no change")]
    for (label, result, seconds, calls), record in zip(rows, records, strict=False):
        print(f"| {label} | {result.outcome} | {len(result.opened):,} | {len(result.closed):,} | "
              f"{held.get(record['runId'], 0):,} | {seconds:.2f} s | {calls[0]} / {calls[1]} |")
    print(f"peak RSS {peak_mb():.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
