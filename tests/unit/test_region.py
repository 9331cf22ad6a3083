"""A new process's first event that flips a gateway's flags decides from the region of the copy it reaches
(shared.core.region) exactly what it decides from the whole copy: the same pairs opened and closed with the same
documents (causes, explanations, severities), the same warnings, the same committed head.

Two stores start from the same baseline. For each change, a new auditor (a new process: nothing parsed) runs the
event on each: one may take the region, the other (region_path=False) parses the whole copy. The estates are
dense on purpose: spokes behind two hubs, one-sided and failing peerings, gateways without their flags, a circuit
joined to another by Global Reach, and flips in both directions.
"""

from __future__ import annotations

import copy
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import shared.app.auditor as auditor_module
from shared.adapters.store import LocalAuditLog, LocalStateStore
from shared.app.auditor import Auditor, RunTrigger
from shared.core.focus import project
from shared.core.region import RegionIndex, flags_only, key_of
from shared.core.snapshot import parse_resources
from tests import builders as b
from tests.unit.test_event_path_equivalence import Counting, Estate, change

NOW = datetime(2026, 11, 26, 5, 0, tzinfo=UTC)


def estate(rnd: random.Random, *, hubs: int = 9, circuits: int = 4, global_reach: bool = False) -> list[Any]:
    ers = [b.circuit(f"er-{i}") for i in range(circuits)]
    out: list[Any] = list(ers)
    hub_vnets = []
    for h in range(hubs):
        hub = b.vnet(f"hub-{h}", f"10.{h}.0.0/16")
        flags = [rnd.choice([True, True, False, None]) for _ in range(2)]
        gw = b.gateway(f"ergw-{h}", hub, allow_remote=flags[0], allow_wan=flags[1],
                       state=rnd.choice(["Succeeded"] * 6 + ["Updating"]))
        for k, c in enumerate(rnd.sample(range(circuits), rnd.choice((1, 1, 2)))):
            out.append(b.connection(f"conn-{h}-{k}", gw, ers[c]["id"],
                                    state=rnd.choice(["Succeeded"] * 8 + ["Failed"])))
        hub_vnets.append(hub)
        out += [hub, gw]
    for s in range(hubs * 3):
        spoke = b.vnet(f"spoke-{s}", f"10.{100 + s // 250}.{s % 250}.0/24")
        for hub in rnd.sample(hub_vnets, rnd.choice((1, 1, 2))):  # some spokes sit behind two hubs
            sides = rnd.choice([("hub", "spoke")] * 8 + [("hub",), ("spoke",)])  # some peerings one-sided
            if "hub" in sides:
                hub["properties"]["virtualNetworkPeerings"].append(b.peering(
                    hub, spoke, gateway_transit=rnd.random() < 0.9,
                    state=rnd.choice(["Connected"] * 9 + ["Disconnected"]),
                    provisioning=rnd.choice(["Succeeded"] * 9 + ["Failed"])))
            if "spoke" in sides:
                spoke["properties"]["virtualNetworkPeerings"].append(b.peering(
                    spoke, hub, use_remote=rnd.random() < 0.85))
        out.append(spoke)
    if global_reach:
        out.append(b.circuit_global_reach(ers[0], ers[1]))
    return project(out)


def flip(resources: list[Any], rnd: random.Random) -> str:
    """Flip one gateway's flags in place of its copy (true/false/absent, one or both)."""
    gateways = [i for i, r in enumerate(resources) if r["type"].lower().endswith("/virtualnetworkgateways")]
    i = rnd.choice(gateways)
    res = copy.deepcopy(resources[i])
    props = res["properties"]
    for key in rnd.sample(["allowRemoteVnetTraffic", "allowVirtualWanTraffic"], rnd.choice((1, 1, 2))):
        choices = [v for v in (True, False, None) if v != props.get(key)]
        value = rnd.choice(choices)
        if value is None:
            props.pop(key, None)
        else:
            props[key] = value
    resources[i] = res
    return str(res["id"])


def connection_change(resources: list[Any], rnd: random.Random) -> str:
    """Create, delete or change one connection (in place of its copy); its id."""
    connections = [i for i, r in enumerate(resources) if r["type"].lower().endswith("/connections")]
    what = rnd.random()
    if what < 0.35 and connections:
        return str(resources.pop(rnd.choice(connections))["id"])  # deleted: the event's read answers 404
    if what < 0.7 or not connections:
        gateways = [r for r in resources if r["type"].lower().endswith("/virtualnetworkgateways")]
        circuits = [r for r in resources if r["type"].lower().endswith("/expressroutecircuits")]
        gw = rnd.choice(gateways)
        conn = project([b.connection(f"new-{len(resources)}-{rnd.randrange(10**6)}", gw, rnd.choice(circuits)["id"],
                                     state=rnd.choice(["Succeeded"] * 4 + ["Updating", "Failed"]))])[0]
        resources.append(conn)
        return str(conn["id"])
    i = rnd.choice(connections)
    res = copy.deepcopy(resources[i])
    res["properties"]["provisioningState"] = rnd.choice(["Succeeded", "Updating", "Failed"])
    if rnd.random() < 0.1:
        res["properties"].pop("connectionType", None)  # draws a warning of its own: the whole copy decides
    resources[i] = res
    return str(res["id"])


def new_process(folder: Path, reader: Any, *, region: bool) -> Auditor:
    return Auditor(reader=reader, state=LocalStateStore(folder), audit=LocalAuditLog(folder), notifiers=[Counting()],
                   clock=lambda: NOW, region_path=region)


def last_committed(folder: Path) -> dict[str, Any]:
    record = [r for r in LocalAuditLog(folder).records() if r.get("outcome") in ("committed", "no change")][-1]
    return {k: v for k, v in record.items()
            if k not in ("runId", "seq", "prevHash", "hash", "time", "stateSeen", "alertId", "recordedAt")}


def head(folder: Path) -> dict[str, Any]:
    state, _ = LocalStateStore(folder).load()
    assert state is not None
    data = state.to_json()
    for k in ("resources", "outbox", "health", "auditTail", "processedEventIds"):
        data.pop(k, None)
    return data


@pytest.mark.parametrize("seed", range(8))
def test_a_new_process_decides_a_flag_flip_from_its_region_as_from_the_whole_copy(
        tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rnd = random.Random(seed)
    # Sparse enough that a flip's region is a part of the estate (so what it leaves out matters).
    live = Estate(estate(rnd, hubs=24, circuits=8, global_reach=seed % 4 == 3))
    taken: list[bool] = []
    real = Auditor._decide_in_region

    def spy(self: Auditor, *args: Any, **kwargs: Any) -> Any:
        taken.append(True)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(auditor_module.Auditor, "_decide_in_region", spy)
    for side in ("region", "whole"):
        new_process(tmp_path / side, live, region=False).run(RunTrigger(kind="reconcile"))
    moved = 0
    for step in range(30):
        # Mostly flag flips and connection changes (the region's cases), now and then another change (which takes
        # the whole copy).
        what = rnd.random()
        resource_id = (flip(live.resources, rnd) if what < 0.5 else connection_change(live.resources, rnd)
                       if what < 0.85 else change(live.resources, rnd))
        trigger = RunTrigger(kind="event", event_id=f"e-{seed}-{step}", operation="Microsoft.Network/x/write",
                             resource_id=resource_id, caller="someone@contoso.example")
        got = new_process(tmp_path / "region", live, region=True).run(trigger)
        want = new_process(tmp_path / "whole", live, region=False).run(trigger)
        assert (got.outcome, got.opened, got.closed, got.pending) == (
            want.outcome, want.opened, want.closed, want.pending), (step, resource_id)
        assert last_committed(tmp_path / "region") == last_committed(tmp_path / "whole"), (step, resource_id)
        assert head(tmp_path / "region") == head(tmp_path / "whole"), (step, resource_id)
        moved += len(got.opened) + len(got.closed)
    assert moved, "nothing opened or closed: the test would prove nothing"
    if seed % 4 != 3:
        assert len(taken) >= 10, f"the region was taken {len(taken)} times"


def flip_region(copy: list[Any], gateway_id: str, *, closing: bool = True) -> list[Any] | None:
    index = RegionIndex.of(copy)
    return index.region(copy, gateway_id, closing=closing) if index is not None else None


def test_the_region_holds_the_pairs_memberships_and_what_explains_a_closed_pair() -> None:
    rnd = random.Random(11)
    resources = estate(rnd, hubs=40, circuits=12)
    gateway = next(r for r in resources if r["name"] == "ergw-0")
    opening = flip_region(resources, gateway["id"], closing=False)
    closing = flip_region(resources, gateway["id"], closing=True)
    assert opening is not None and closing is not None
    assert {key_of(r["id"]) for r in opening} <= {key_of(r["id"]) for r in closing}
    assert len(closing) < len(resources)  # a region, not the copy
    whole = parse_resources(resources)
    circuits = {c.circuit.key for c in whole.connections.values()
                if c.gateway is not None and c.gateway.key == key_of(gateway["id"]) and c.circuit is not None}
    kept = {key_of(r["id"]) for r in opening}
    hubs = set()
    for connection in whole.connections.values():  # every gateway on the flipped gateway's circuits, and its home
        if connection.circuit is not None and connection.circuit.key in circuits and connection.gateway is not None:
            assert connection.gateway.key in kept
            home = whole.gateways[connection.gateway].vnet
            assert home is not None and home.key in kept
            hubs.add(home.key)
    domains = hubs | {p.remote_vnet.key for h in hubs for p in whole.vnets[next(
        v for v in whole.vnets if v.key == h)].peerings}
    for key in domains:  # each domain VNet with every VNet it peers with, and each gateway homed in one of them
        vnet = next(v for k, v in whole.vnets.items() if k.key == key)
        assert {key, *(p.remote_vnet.key for p in vnet.peerings)} <= kept
        for gw in whole.gateways.values():
            if gw.vnet is not None and gw.vnet.key in {key, *(p.remote_vnet.key for p in vnet.peerings)}:
                assert gw.id.key in kept
    # VNets peering one-sidedly with a domain VNet: only what explains a closed pair needs them.
    one_sided = {v.id.key for v in whole.vnets.values() for p in v.peerings if p.remote_vnet.key in domains}
    assert one_sided <= {key_of(r["id"]) for r in closing}
    assert not one_sided <= kept, "no one-sided peering here: the test would prove nothing"


def test_what_the_region_does_not_follow_takes_the_whole_copy() -> None:
    resources = project([*b.lab((1, 2)), b.virtual_hub("vhub-1", "wan-1")])
    assert RegionIndex.of(resources) is None
    lab = project(b.lab((1, 2)))
    gw = next(r for r in lab if r["name"] == "ergw-01")
    assert flip_region(lab, gw["id"] + "-missing") is None
    reach = project([*b.lab((1, 2)), b.circuit_global_reach(b.circuit("er-lab"), b.circuit("er-other"))])
    assert flip_region(reach, gw["id"]) is None  # its circuit has Global Reach: the flags decide its warnings


def test_only_a_flags_only_change_of_a_gateway_counts_as_a_flip() -> None:
    lab = project(b.lab((1, 2)))
    gw = next(r for r in lab if r["name"] == "ergw-01")
    flipped = copy.deepcopy(gw)
    flipped["properties"]["allowRemoteVnetTraffic"] = not gw["properties"].get("allowRemoteVnetTraffic")
    assert flags_only(gw, flipped)
    assert not flags_only(gw, gw)
    state = copy.deepcopy(flipped)
    state["properties"]["provisioningState"] = "Updating"
    assert not flags_only(gw, state)
    renamed = {**flipped, "tags": {"x": "y"}}
    assert not flags_only(gw, renamed)
    vnet = next(r for r in lab if r["type"].lower().endswith("/virtualnetworks"))
    assert not flags_only(vnet, vnet)


@pytest.mark.parametrize("text", ["/subscriptions/S/resourceGroups/R/providers/X/y/Z ", " /a/B//", "/", "", "ÅB/"])
def test_key_of_is_the_parsed_ids_key(text: str) -> None:
    from shared.core.model import ResourceId

    assert key_of(text) == ResourceId.parse(text).key


def _two_hub_estate(shared_gateway: bool) -> list[Any]:
    """Spokes S and T each behind two hubs: A (er-1) and C (er-2) for S, B (er-1) and D or C (er-2) for T. Flipping
    B's gateway on opens er-1 between them; whether S and T pair at all is decided by their other gateways."""
    er1, er2 = b.circuit("er-1"), b.circuit("er-2")
    out: list[Any] = [er1, er2]
    hubs = {}
    for name, er, allow in (("A", er1, True), ("B", er1, False), ("C", er2, True), ("D", er2, True)):
        hub = b.vnet(f"hub-{name}", f"10.{ord(name)}.0.0/16")
        gw = b.gateway(f"ergw-{name}", hub, allow_remote=allow)
        out += [hub, gw, b.connection(f"conn-{name}", gw, er["id"])]
        hubs[name] = hub
    s, t = b.vnet("spoke-S", "10.200.1.0/24"), b.vnet("spoke-T", "10.200.2.0/24")
    for spoke, names in ((s, ("A", "C")), (t, ("B", "C" if shared_gateway else "D"))):
        for name in names:
            b.hub_and_spoke(hubs[name], spoke)
    return project([*out, s, t])


@pytest.mark.parametrize("shared_gateway", [False, True])
def test_a_pair_with_a_route_over_another_circuit_or_behind_a_shared_gateway_does_not_move(
        tmp_path: Path, shared_gateway: bool) -> None:
    live = Estate(_two_hub_estate(shared_gateway))
    for side in ("region", "whole"):
        new_process(tmp_path / side, live, region=False).run(RunTrigger(kind="reconcile"))
    i = next(i for i, r in enumerate(live.resources) if r["name"] == "ergw-B")
    live.resources[i] = copy.deepcopy(live.resources[i])
    live.resources[i]["properties"]["allowRemoteVnetTraffic"] = True
    trigger = RunTrigger(kind="event", event_id="flip-B", operation="Microsoft.Network/x/write",
                         resource_id=live.resources[i]["id"], caller="someone@contoso.example")
    region = new_process(tmp_path / "region", live, region=True)
    index = RegionIndex.of(live.resources)
    assert index is not None and index.region(live.resources, live.resources[i]["id"]) is not None
    got = region.run(trigger)
    want = new_process(tmp_path / "whole", live, region=False).run(trigger)
    assert (got.opened, got.closed) == (want.opened, want.closed)
    names = {tuple(sorted(v.rsplit("/", 1)[-1] for v in p["vnets"])) for p in got.opened}
    assert ("spoke-S", "spoke-T") not in names  # S and T paired over er-2 already, or share hub C's gateway
    assert head(tmp_path / "region") == head(tmp_path / "whole")


@pytest.mark.parametrize("broken", ["_decide_in_region", "_region"])
def test_a_region_that_fails_leaves_the_decision_to_the_whole_copy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, broken: str) -> None:
    rnd = random.Random(5)
    live = Estate(estate(rnd, hubs=24, circuits=8))
    for side in ("region", "whole"):
        new_process(tmp_path / side, live, region=False).run(RunTrigger(kind="reconcile"))

    def fails(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("an unexpected shape")

    monkeypatch.setattr(auditor_module.Auditor, broken, fails)
    for step in range(6):
        trigger = RunTrigger(kind="event", event_id=f"f-{step}", operation="Microsoft.Network/x/write",
                             resource_id=flip(live.resources, rnd), caller="someone@contoso.example")
        got = new_process(tmp_path / "region", live, region=True).run(trigger)
        want = new_process(tmp_path / "whole", live, region=False).run(trigger)
        assert (got.outcome, got.opened, got.closed, got.pending) == (
            want.outcome, want.opened, want.closed, want.pending)
        assert head(tmp_path / "region") == head(tmp_path / "whole")
    assert "parsing the whole copy" in caplog.text
