"""Benchmarks of auditor runs on the generated enterprise estate (issue 9's "Done when" table; scripts, not tests).

    .venv/bin/python benchmarks/bench_auditor.py [--vnets 20000] [--only NAME[,NAME]] [--repeat N]

Scenarios (each in a fresh subprocess, so its time and peak memory are its own; a baseline is prepared first):
- event-opens: an event whose gateway flip opens pairs, through the real SDK reader against the fake ARM over
  HTTPS (Resource Graph queries and ARM calls counted by the fake), with the local-folder store; "cold" is a new
  process (loads the committed working copy from disk), "warm" a process that already holds it.
- event-after-warmup: a new process warmed first (the Functions warmup trigger, Auditor.warm), then the event.
- event-closes: a new process's event for a connection deleted (ARM answers 404), which closes pairs; then, warm,
  another one.
- event-settles: a new process's event for a gateway turned Updating (its pairs go pending): a change that is not
  a flag flip nor a connection's, so the whole committed copy is parsed.
- event-unchanged: an event whose resource did not change (fake ARM), and the same with the offline snapshot
  reader (TOPOLOGY_SNAPSHOT), which reads the whole file.
- large-change: the generator's "after" topology (40 gateway flips, 1 connection in 100 deleted) read as one
  reconcile from memory: time (wall and CPU) and peak RSS of the process. "cold": a new process that loads the
  committed copy from disk; "warm": the process that committed the baseline (a Functions host that ran the last
  reconcile still holds its parsed copy).
- reconcile-1500: a timer reconcile of the estate spread over 1,500 watched subscriptions, through the fake that
  enforces Resource Graph's limits (1,000 subscriptions a request, 1,000 rows a page, 15 queries per 5 s).
- burst-50: 50 events (gateway flips and no-ops) on 8 threads against the fake ARM.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_transit import SUBSCRIPTIONS, generate  # noqa: E402
from shared.adapters.store import LocalAuditLog, LocalStateStore  # noqa: E402
from shared.app.auditor import Auditor, RunTrigger  # noqa: E402
from shared.app.ports import JsonDict  # noqa: E402

SCENARIOS = ("event-opens", "event-after-warmup", "event-closes", "event-settles", "event-unchanged", "large-change",
             "large-change-warm", "reconcile-1500", "burst-50")


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


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def by_subscription(resources: list[JsonDict], extra: int = 0) -> dict[str, list[JsonDict]]:
    out: dict[str, list[JsonDict]] = {s: [] for s in SUBSCRIPTIONS}
    out.update({f"00000000-0000-0000-0001-{i:012d}": [] for i in range(extra)})
    for r in resources:
        out[r["id"].split("/")[2]].append(r)
    return out


def fake_arm_auditor(folder: str, resources: list[JsonDict], *, extra_subs: int = 0) -> tuple[Any, Any, Any]:
    from shared.adapters.arm import ResourceGraphTopologyReader
    from tests.integration.fake_arm import FakeArmServer

    fake = FakeArmServer().start()
    estate = by_subscription(resources, extra_subs)
    fake.set_resources(estate)
    reader = ResourceGraphTopologyReader(fake.credential, list(estate), **fake.client_options(retry_total=0))
    auditor = Auditor(reader=reader, state=LocalStateStore(folder), audit=LocalAuditLog(folder),
                      notifiers=[CountingNotifier()])
    return fake, reader, auditor


def closed_gateway(resources: list[JsonDict], index: int = 0) -> JsonDict:
    """A gateway with allowRemoteVnetTraffic false that shares a circuit with an enabled one (flipping it opens
    pairs)."""
    circuits: dict[str, set[str]] = {}
    for r in resources:
        if r["type"].lower().endswith("/connections"):
            gw = r["properties"]["virtualNetworkGateway1"]["id"].lower()
            circuits.setdefault(gw, set()).add(r["properties"]["peer"]["id"].lower().split("/peerings")[0])
    gateways = [r for r in resources if r["type"].lower().endswith("/virtualnetworkgateways")]
    enabled = set().union(*(circuits.get(g["id"].lower(), set()) for g in gateways
                            if g["properties"].get("allowRemoteVnetTraffic")))
    candidates = [g for g in gateways if not g["properties"].get("allowRemoteVnetTraffic")
                  and circuits.get(g["id"].lower(), set()) & enabled]
    return candidates[index]


def flipped(gateway: JsonDict) -> JsonDict:
    return {**gateway, "properties": {**gateway["properties"], "allowRemoteVnetTraffic":
                                      not gateway["properties"].get("allowRemoteVnetTraffic")}}


def event(event_id: str, resource_id: str) -> RunTrigger:
    return RunTrigger(kind="event", event_id=event_id, operation="Microsoft.Network/virtualNetworkGateways/write",
                      resource_id=resource_id, caller="bench@contoso.example")


def timed(fn: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - started


def cpu_timed(fn: Any) -> tuple[Any, float, float]:
    """(result, wall seconds, CPU seconds of this process): on a shared 2-core machine the CPU time is the
    steadier figure."""
    started, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - started, time.process_time() - cpu


# -- scenarios (each runs in its own process) ----------------------------------------------------------------
def prepare_baseline(n: int, folder: str) -> None:
    before, _ = generate(n)
    fake, _, auditor = fake_arm_auditor(folder, before)
    auditor.run(RunTrigger(kind="reconcile"))
    fake.stop()


def cold_then_warm(fake: Any, auditor: Auditor, steps: list[tuple[Any, RunTrigger]], count: str) -> dict[str, Any]:
    """Run each step (a change to the fake ARM, then its event) in turn: the first in a new process (cold), the
    second warm; their times, calls (Resource Graph, ARM) and how many pairs moved (`count`: opened or closed)."""
    out: dict[str, Any] = {}
    for label, (apply, trigger) in zip(("cold", "warm"), steps, strict=True):
        apply()
        fake.clear_requests()
        result, seconds = timed(lambda: auditor.run(trigger))  # noqa: B023 (called at once)
        out[f"{label}_s"] = seconds
        out[label] = (len(fake.resource_graph_requests()), len(fake.arm_requests()), len(getattr(result, count)))
    fake.stop()
    return {**out, "peak_mb": peak_mb()}


def event_opens(n: int, folder: str) -> dict[str, Any]:
    before, _ = generate(n)
    fake, reader, auditor = fake_arm_auditor(folder, before)
    first, second = closed_gateway(before), closed_gateway(before, 1)
    return cold_then_warm(fake, auditor, [(lambda: fake.set_arm_copy(flipped(first)), event("open-1", first["id"])),
                                          (lambda: fake.set_arm_copy(flipped(second)), event("open-2", second["id"]))],
                          "opened")


def event_closes(n: int, folder: str) -> dict[str, Any]:
    before, _ = generate(n)
    fake, _, auditor = fake_arm_auditor(folder, before)
    connections = [r for r in before if r["type"].lower().endswith("/connections")]
    first, second = connections[0], connections[len(connections) // 2]

    def deleted(*gone: JsonDict) -> Any:
        return lambda: fake.set_resources(by_subscription([r for r in before if all(r is not g for g in gone)]))

    def trigger(event_id: str, connection: JsonDict) -> RunTrigger:
        return RunTrigger(kind="event", event_id=event_id, resource_id=connection["id"],
                          operation="Microsoft.Network/connections/delete", caller="bench@contoso.example")

    return cold_then_warm(fake, auditor, [(deleted(first), trigger("close-1", first)),
                                          (deleted(first, second), trigger("close-2", second))], "closed")


def event_settles(n: int, folder: str) -> dict[str, Any]:
    before, _ = generate(n)
    fake, _, auditor = fake_arm_auditor(folder, before)
    gateway = flipped(closed_gateway(before))
    fake.set_arm_copy({**gateway, "properties": {**gateway["properties"], "provisioningState": "Updating"}})
    fake.clear_requests()
    result, cold = timed(lambda: auditor.run(event("settle-1", gateway["id"])))
    calls = (len(fake.resource_graph_requests()), len(fake.arm_requests()), len(result.pending))
    fake.stop()
    return {"cold_s": cold, "cold": calls, "peak_mb": peak_mb()}


def event_after_warmup(n: int, folder: str) -> dict[str, Any]:
    """A new instance the platform warmed (the warmup trigger: Auditor.warm) before its first event."""
    before, _ = generate(n)
    fake, reader, auditor = fake_arm_auditor(folder, before)
    gateway = closed_gateway(before)
    fake.set_arm_copy(flipped(gateway))
    warmed, warm_s = timed(auditor.warm)
    fake.clear_requests()
    result, seconds = timed(lambda: auditor.run(event("open-w", gateway["id"])))
    calls = (len(fake.resource_graph_requests()), len(fake.arm_requests()), len(result.opened))
    fake.stop()
    return {"warm_up_s": warm_s, "warmed": warmed, "s": seconds, "calls": calls, "peak_mb": peak_mb()}


def event_unchanged(n: int, folder: str) -> dict[str, Any]:
    before, _ = generate(n)
    fake, _, auditor = fake_arm_auditor(folder, before)
    gateway = closed_gateway(before)
    fake.clear_requests()
    result, cold = timed(lambda: auditor.run(event("same-1", gateway["id"])))
    calls = (len(fake.resource_graph_requests()), len(fake.arm_requests()))
    result2, warm = timed(lambda: auditor.run(event("same-2", gateway["id"])))
    fake.stop()
    # The offline snapshot reader (TOPOLOGY_SNAPSHOT): reads the whole file, compares with the committed copy.
    from shared.adapters.offline import SnapshotFileTopologyReader

    snapshot = Path(folder) / "snapshot.json"
    snapshot.write_text(json.dumps({"value": before}))
    offline = Auditor(reader=SnapshotFileTopologyReader(snapshot), state=LocalStateStore(folder),
                      audit=LocalAuditLog(folder), notifiers=[CountingNotifier()])
    result3, offline_s = timed(lambda: offline.run(event("same-3", gateway["id"])))
    return {"cold_s": cold, "warm_s": warm, "calls": calls, "outcomes": [result.outcome, result2.outcome,
            result3.outcome], "offline_s": offline_s, "peak_mb": peak_mb()}


def prepare_memory_baseline(n: int, folder: str) -> None:
    before, _ = generate(n)
    Auditor(reader=MemoryReader(before), state=LocalStateStore(folder), audit=LocalAuditLog(folder),
            notifiers=[CountingNotifier()]).run(RunTrigger(kind="reconcile"))


def large_change(n: int, folder: str) -> dict[str, Any]:
    _, after = generate(n)
    base = peak_mb()
    auditor = Auditor(reader=MemoryReader(after), state=LocalStateStore(folder), audit=LocalAuditLog(folder),
                      notifiers=[CountingNotifier()])
    result, seconds, cpu = cpu_timed(lambda: auditor.run(RunTrigger(kind="reconcile")))
    state_bytes = sum(p.stat().st_size for p in Path(folder).glob("state.json"))
    projection_bytes = sum(p.stat().st_size for p in Path(folder).glob("topology-*.json"))
    return {"s": seconds, "cpu_s": cpu, "opened": len(result.opened), "closed": len(result.closed),
            "peak_mb": peak_mb(), "inputs_mb": base, "head_kb": state_bytes / 1024,
            "projection_mb": projection_bytes / 1e6}


def large_change_warm(n: int, folder: str) -> dict[str, Any]:
    before, after = generate(n)
    reader = MemoryReader(before)
    auditor = Auditor(reader=reader, state=LocalStateStore(folder), audit=LocalAuditLog(folder),
                      notifiers=[CountingNotifier()])
    auditor.run(RunTrigger(kind="reconcile"))  # the baseline, committed by this very process
    base = peak_mb()
    reader.resources = after
    result, seconds, cpu = cpu_timed(lambda: auditor.run(RunTrigger(kind="reconcile")))
    return {"s": seconds, "cpu_s": cpu, "opened": len(result.opened), "closed": len(result.closed),
            "peak_mb": peak_mb(), "baseline_mb": base}


def reconcile_1500(n: int, folder: str) -> dict[str, Any]:
    before, _ = generate(n)
    fake, reader, auditor = fake_arm_auditor(folder, before, extra_subs=1500 - len(SUBSCRIPTIONS))
    result, seconds = timed(lambda: auditor.run(RunTrigger(kind="reconcile")))
    batches = [len(r.body.get("subscriptions") or []) for r in fake.resource_graph_requests()
               if not (r.body.get("options") or {}).get("$skipToken")]
    out = {"s": seconds, "outcome": result.outcome, "queries": len(fake.resource_graph_requests()),
           "batches": batches, "throttled": fake.throttled, "waited_s": reader._pacer.waited_seconds,
           "subscriptions": len(reader.subscriptions), "peak_mb": peak_mb()}
    fake.stop()
    return out


def burst_50(n: int, folder: str) -> dict[str, Any]:
    before, _ = generate(n)
    fake, _, auditor = fake_arm_auditor(folder, before)
    rnd = random.Random(3)
    gateways = [r for r in before if r["type"].lower().endswith("/virtualnetworkgateways")]
    chosen = rnd.sample(gateways, 10)
    for gw in chosen[:5]:
        fake.set_arm_copy(flipped(gw))  # five real changes; the other events change nothing
    triggers = [event(f"burst-{i}", chosen[i % len(chosen)]["id"]) for i in range(50)]
    fake.clear_requests()
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes, seconds = timed(lambda: list(pool.map(lambda t: auditor.run(t).outcome, triggers)))
    out = {"s": seconds, "outcomes": {o: outcomes.count(o) for o in sorted(set(outcomes))},
           "throttled": fake.throttled, "graph": len(fake.resource_graph_requests()),
           "arm": len(fake.arm_requests()), "peak_mb": peak_mb()}
    fake.stop()
    return out


RUNNERS = {"event-opens": (prepare_baseline, event_opens), "event-after-warmup": (prepare_baseline, event_after_warmup),
           "event-closes": (prepare_baseline, event_closes), "event-settles": (prepare_baseline, event_settles),
           "event-unchanged": (prepare_baseline, event_unchanged),
           "large-change": (prepare_memory_baseline, large_change), "large-change-warm": (None, large_change_warm),
           "reconcile-1500": (None, reconcile_1500),
           "burst-50": (prepare_baseline, burst_50)}


def run_one(name: str, n: int, repeat: int = 1) -> dict[str, Any]:
    """The scenario's figures; with `repeat`, each number is the median of that many runs, each in a new process
    on a fresh copy of the same prepared baseline (this shared machine's speed varies by 20% from run to run)."""
    prepared = tempfile.mkdtemp(prefix=f"bench-{name}-")
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    prepare, _ = RUNNERS[name]
    if prepare is not None:
        subprocess.run([sys.executable, __file__, "--step", "prepare", "--one", name, "--vnets", str(n),
                        "--folder", prepared], check=True, env=env)
    runs: list[dict[str, Any]] = []
    for i in range(repeat):
        folder = f"{prepared}-{i}"
        shutil.copytree(prepared, folder)
        out = subprocess.run([sys.executable, __file__, "--step", "measure", "--one", name, "--vnets", str(n),
                              "--folder", folder], check=True, capture_output=True, text=True, env=env).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
        shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(prepared, ignore_errors=True)
    result = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, float):
            result[key] = statistics.median(r[key] for r in runs)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vnets", type=int, default=20000)
    parser.add_argument("--only", default=",".join(SCENARIOS))
    parser.add_argument("--repeat", type=int, default=1, help="runs per scenario; each figure is their median")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        prepare, measure = RUNNERS[args.one]
        if args.step == "prepare":
            assert prepare is not None
            prepare(args.vnets, args.folder)
        else:
            print(json.dumps(measure(args.vnets, args.folder)))
        return 0
    runs = f", median of {args.repeat} runs" if args.repeat > 1 else ""
    print(f"| what ({args.vnets:,} VNets{runs}) | measured |")
    print("|---|---|")
    for name in args.only.split(","):
        r = run_one(name, args.vnets, args.repeat)
        if name in ("event-opens", "event-closes"):
            what = ("an event that opens pairs" if name == "event-opens"
                    else "an event that closes pairs (a connection deleted)")
            moved = "opened" if name == "event-opens" else "closed"
            for label in ("cold", "warm"):
                peak = f"; peak {r['peak_mb']:.0f} MB" if label == "warm" else ""
                print(f"| {what} ({label} process) | {r[label + '_s']:.2f} s, {r[label][0]} Resource Graph queries, "
                      f"{r[label][1]} ARM calls, {r[label][2]:,} pairs {moved}{peak} |")
        elif name == "event-after-warmup":
            print(f"| an event that opens pairs (new instance, warmed first) | {r['s']:.2f} s, {r['calls'][0]} "
                  f"Resource Graph queries, {r['calls'][1]} ARM calls, {r['calls'][2]:,} pairs opened (the warm-up "
                  f"itself: {r['warm_up_s']:.2f} s) |")
        elif name == "event-settles":
            print(f"| an event that makes pairs pending (a gateway Updating; cold process: the whole copy parsed) | "
                  f"{r['cold_s']:.2f} s, {r['cold'][0]} Resource Graph queries, {r['cold'][1]} ARM calls, "
                  f"{r['cold'][2]:,} pairs pending |")
        elif name == "event-unchanged":
            print(f"| an event that changes nothing (fake ARM) | cold {r['cold_s']:.2f} s, warm {r['warm_s']:.2f} s, "
                  f"{r['calls'][0]} Resource Graph queries, {r['calls'][1]} ARM calls ({', '.join(r['outcomes'])}) |")
            print(f"| an event that changes nothing (offline snapshot reader) | {r['offline_s']:.2f} s |")
        elif name == "large-change":
            print(f"| a large change, cold process ({r['opened']:,} opened / {r['closed']:,} closed) | "
                  f"{r['s']:.2f} s ({r['cpu_s']:.2f} s CPU), peak {r['peak_mb']:.0f} MB (of which "
                  f"{r['inputs_mb']:.0f} MB the generated inputs); head {r['head_kb']:.1f} KB, projection "
                  f"{r['projection_mb']:.1f} MB |")
        elif name == "large-change-warm":
            print(f"| a large change, warm process ({r['opened']:,} opened / {r['closed']:,} closed) | "
                  f"{r['s']:.2f} s ({r['cpu_s']:.2f} s CPU), peak {r['peak_mb']:.0f} MB (baseline run "
                  f"{r['baseline_mb']:.0f} MB) |")
        elif name == "reconcile-1500":
            print(f"| a reconcile over {r['subscriptions']:,} subscriptions | {r['outcome']} in {r['s']:.1f} s: "
                  f"{r['queries']} queries in batches of {r['batches']} subscriptions, paced {r['waited_s']:.1f} s, "
                  f"{r['throttled']} answered 429 |")
        elif name == "burst-50":
            print(f"| a burst of 50 events on 8 threads | {r['s']:.1f} s, outcomes {r['outcomes']}, "
                  f"{r['graph']} Resource Graph queries, {r['arm']} ARM calls, {r['throttled']} answered 429 |")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
