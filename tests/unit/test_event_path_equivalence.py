"""An event run (it patches the committed copy and pairs only the circuits the event can move) decides exactly what
a whole-scope read of the same estate decides: the same pairs opened and closed, the same count committed.

Two auditors with their own local stores start from the same baseline; after each change to the live estate, one
gets the change's event (a reader that answers the event's resource, as the ARM reader does), the other a
reconcile (a reader of the whole estate). The adapters below the auditor are plain in-memory readers: what is
compared is the auditor's own event path, on changes of every kind and on long runs of them.
"""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.store import LocalAuditLog, LocalStateStore
from shared.app.auditor import Auditor, RunTrigger
from shared.core.focus import FocusedRead, top_level_id
from tests.builders import Resource
from tests.unit.test_changed_pairs import dense_spec
from tests.unit.test_properties import render


class Estate:
    """The live estate: what ARM would answer."""

    def __init__(self, resources: list[Resource]) -> None:
        self.resources = resources

    def read(self, *, focus_resource_id: str | None = None) -> list[Resource]:
        return copy.deepcopy(self.resources)

    def read_focused(self, resource_id: str, *, known: Any) -> FocusedRead | None:
        top = top_level_id(resource_id)
        if top is None:
            return None
        found = [copy.deepcopy(r) for r in self.resources
                 if r["id"].lower() == top.lower() or r["id"].lower().startswith(top.lower() + "/")]
        return FocusedRead(replace=(top,), resources=tuple(found), calls=1)


class Whole(Estate):
    """The same estate through a reader that can only read the whole scope."""

    read_focused = None  # type: ignore[assignment]


class Counting:
    channel = name = "count"

    def deliver(self, alert: Any, *, alert_id: str) -> None:
        pass


def auditor(folder: Path, reader: Any) -> Auditor:
    return Auditor(reader=reader, state=LocalStateStore(folder), audit=LocalAuditLog(folder), notifiers=[Counting()])


def change(resources: list[Resource], rnd: random.Random) -> str:
    """Change one resource in place of its copy in `resources` (flags, states, a deletion); its id."""
    i = rnd.randrange(len(resources))
    res = copy.deepcopy(resources[i])
    props = res.setdefault("properties", {})
    kind = res["type"].lower()
    what = rnd.random()
    if what < 0.1 and not kind.endswith("virtualnetworks"):
        del resources[i]  # deleted: the event's read answers 404
        return str(res["id"])
    if kind.endswith("virtualnetworkgateways"):
        key = rnd.choice(["allowRemoteVnetTraffic", "allowVirtualWanTraffic", "provisioningState"])
        props[key] = (not props.get(key)) if key != "provisioningState" else rnd.choice(["Succeeded", "Updating"])
    elif kind.endswith("virtualnetworks"):
        for peering in props.get("virtualNetworkPeerings", []):
            p = peering.setdefault("properties", {})
            p["useRemoteGateways"] = rnd.random() < 0.7
            p["peeringState"] = rnd.choice(["Connected", "Connected", "Disconnected"])
    elif kind.endswith("connections") or kind.endswith("hubvirtualnetworkconnections"):
        props["provisioningState"] = rnd.choice(["Succeeded", "Updating", "Failed"])
    elif kind.endswith("expressroutecircuits"):
        props["serviceProviderProvisioningState"] = rnd.choice(["Provisioned", "Provisioned", "NotProvisioned"])
    elif kind.endswith("expressroutegateways"):
        props["allowNonVirtualWanTraffic"] = not props.get("allowNonVirtualWanTraffic")
    else:
        props["provisioningState"] = rnd.choice(["Succeeded", "Updating"])
    resources[i] = res
    return str(res["id"])


def keys(pairs: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(p["vnets"][0].lower(), p["vnets"][1].lower()) for p in pairs}


def deviations(pairs: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {(p["vnets"][0].lower(), p["vnets"][1].lower(), str(p.get("delta"))) for p in pairs}


def committed_counts(folder: Path) -> list[Any]:
    return [r.get("pairs") for r in LocalAuditLog(folder).records() if r.get("outcome") == "committed"]


@pytest.mark.parametrize("seed", range(6))
def test_events_decide_what_a_whole_read_decides(tmp_path: Path, seed: int) -> None:
    rnd = random.Random(seed)
    live = render(dense_spec(rnd))
    by_event, by_read = Estate(copy.deepcopy(live)), Whole(copy.deepcopy(live))
    event_side, read_side = auditor(tmp_path / "event", by_event), auditor(tmp_path / "read", by_read)
    event_side.run(RunTrigger(kind="reconcile"))
    read_side.run(RunTrigger(kind="reconcile"))
    moved = 0
    for step in range(25):
        resource_id = change(by_event.resources, rnd)
        by_read.resources = copy.deepcopy(by_event.resources)
        trigger = RunTrigger(kind="event", event_id=f"e-{seed}-{step}", operation="Microsoft.Network/x/write",
                             resource_id=resource_id, caller="someone@contoso.example")
        got = event_side.run(trigger)
        want = read_side.run(RunTrigger(kind="reconcile"))
        assert keys(got.opened) == keys(want.opened), (step, resource_id)
        assert keys(got.closed) == keys(want.closed), (step, resource_id)
        # What stays committed: the pairs still settling, and how the pair set deviates from the topology's.
        (event_state, _), (read_state, _) = (LocalStateStore(tmp_path / side).load() for side in ("event", "read"))
        assert event_state is not None and read_state is not None
        assert keys(event_state.pending) == keys(read_state.pending), (step, resource_id)
        assert deviations(event_state.pairs) == deviations(read_state.pairs), (step, resource_id)
        assert event_state.topology_digest == read_state.topology_digest
        moved += len(got.opened) + len(got.closed)
    assert committed_counts(tmp_path / "event")[-1] == committed_counts(tmp_path / "read")[-1]
    assert moved, "the changes opened or closed nothing: the test would prove nothing"
