"""`transit.changed_pairs` (the event path's diff sides) agrees with `compute_pairs` on both whole topologies.

The event path pairs only the circuits an event can have moved; these tests compare what it finds with the pairs
of both topologies computed in full, on generated topologies and generated changes (flags, states, links, spokes,
circuits, Virtual WAN gateways), on unrelated topologies, and on VNets behind two gateways at once.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.core.model import PairSet, ResourceId
from shared.core.snapshot import parse_resources
from shared.core.transit import changed_pairs, compute_pairs, gateways_of, routes_between
from tests.builders import Resource, hub_connection
from tests.unit.test_diff_reference import mutated
from tests.unit.test_parse_reuse import odd, patched
from tests.unit.test_properties import TopologySpec, render, topology_specs

CHANGED_SETTINGS = settings(max_examples=120, deadline=None)


def check(before: list[Resource], after: list[Resource], *, seed: int = 0) -> tuple[PairSet, PairSet]:
    t0, t1 = parse_resources(before), parse_resources(after)
    g0, g1 = gateways_of(t0), gateways_of(t1)
    full0, full1 = compute_pairs(t0), compute_pairs(t1)
    keys0, keys1 = set(full0.pairs), set(full1.pairs)

    side0, side1 = changed_pairs(t0, g0, t1, g1)
    assert set(side1.pairs) == keys1 - keys0  # opened, and nothing else
    assert set(side0.pairs) == keys0 - keys1  # closed, and nothing else
    for side, full in ((side0, full0), (side1, full1)):
        for key, pair in side.pairs.items():
            assert pair == full.pairs[key], key  # every route, in compute_pairs' order
        assert side.warnings == full.warnings

    # Pairs asked for by name (the committed deviations) are on each side that has them, with all their routes.
    vnets = sorted({*t0.vnets, *t1.vnets})
    rnd = random.Random(seed)
    also = [(p.a, p.b) for p in rnd.sample(list(full0.pairs.values()), min(3, len(full0.pairs)))]
    also += [(p.a, p.b) for p in rnd.sample(list(full1.pairs.values()), min(3, len(full1.pairs)))]
    also += [(x, y) for x, y in (rnd.sample(vnets, 2) for _ in range(5)) if len(vnets) >= 2]
    asked0, asked1 = changed_pairs(t0, g0, t1, g1, also=also)
    assert len(asked1.pairs) - len(asked0.pairs) == len(full1.pairs) - len(full0.pairs)
    for a, b in also:
        key = (a.key, b.key) if a.key < b.key else (b.key, a.key)
        for side, full in ((asked0, full0), (asked1, full1)):
            assert (key in side.pairs) == (key in full.pairs)
            if key in full.pairs:
                assert side.pairs[key] == full.pairs[key]
    for full, topology, gws in ((full0, t0, g0), (full1, t1, g1)):
        for pair in full.pairs.values():
            assert routes_between(topology, gws, pair.a, pair.b) == pair.routes
    return side0, side1


@CHANGED_SETTINGS
@given(topology_specs(), st.data())
def test_the_sides_of_a_few_changes_agree_with_the_whole_pair_sets(spec: TopologySpec, data: st.DataObject) -> None:
    check(render(spec), render(data.draw(mutated(spec))), seed=data.draw(st.integers(0, 100)))


@settings(max_examples=60, deadline=None)
@given(topology_specs(), topology_specs())
def test_the_sides_of_unrelated_topologies_agree_with_the_whole_pair_sets(a: TopologySpec, b: TopologySpec) -> None:
    check(render(a), render(b))


def _behind_two_gateways(resources: list[Resource], hub: int) -> list[Resource]:
    """hub-<hub> (which has its own gateway) also connected to vhub-0: its VNets sit behind two gateways."""
    by_name = {r.get("name"): r for r in resources}
    if f"hub-{hub}" not in by_name or "vhub-0" not in by_name:
        return resources
    return [*resources, hub_connection(by_name["vhub-0"], by_name[f"hub-{hub}"])]


@CHANGED_SETTINGS
@given(topology_specs(), st.data())
def test_vnets_behind_two_gateways_agree_with_the_whole_pair_sets(spec: TopologySpec, data: st.DataObject) -> None:
    hub = data.draw(st.integers(0, len(spec.hubs) - 1))
    after = render(data.draw(mutated(spec)))
    # The second gateway appears, disappears, or stays while other things change.
    shape = data.draw(st.sampled_from(["appears", "disappears", "stays"]))
    before = render(spec)
    if shape in ("disappears", "stays"):
        before = _behind_two_gateways(before, hub)
    if shape in ("appears", "stays"):
        after = _behind_two_gateways(after, hub)
    check(before, after)


def test_a_flag_flip_on_one_hub_pairs_only_its_circuit() -> None:
    from benchmarks.bench_transit import generate

    before, _ = generate(2000)
    gateways = [r for r in before if r["type"].lower().endswith("/virtualnetworkgateways")]
    flip = next(g for g in gateways if not g["properties"]["allowRemoteVnetTraffic"])
    after = [r if r is not flip else {**r, "properties": {**r["properties"], "allowRemoteVnetTraffic": True}}
             for r in before]
    side0, side1 = check(before, after)
    assert len(side0.pairs) == 0 and len(side1.pairs) > 0
    assert all(flip["name"] in {g.name for g in p.gateways} for p in side1.pairs.values())
    assert ResourceId.parse(flip["id"]) in {g for p in side1.pairs.values() for g in p.gateways}


# -- every kind of change, one at a time, on dense topologies (hypothesis alone rarely hits a decisive one) -------

KINDS = ("allow_remote", "allow_wan", "state", "admin", "drop_link", "link_state", "spoke", "drop_spoke",
         "circuit_provider", "circuit_state", "circuit_peering", "wan_flag", "wan_state", "second_gateway",
         "add_link", "dangling")


def dense_spec(rnd: random.Random) -> TopologySpec:
    from tests.unit.test_properties import CircuitSpec, HubSpec, SpokeSpec, WanHubSpec

    circuits = [CircuitSpec("Provisioned", "Enabled", "Succeeded", True) for _ in range(3)]
    hubs = [HubSpec(allow_remote=rnd.random() < 0.8, allow_wan=rnd.random() < 0.8, gateway_type="ExpressRoute",
                    admin_state=None, state=rnd.choice(["Succeeded"] * 5 + ["Updating"]),
                    links=[(c, "ExpressRoute", "Succeeded") for c in rnd.sample(range(3), rnd.choice((1, 2)))],
                    spokes=[SpokeSpec(True, True, "Connected", "Connected") for _ in range(rnd.randint(0, 3))])
            for _ in range(6)]
    wan = [WanHubSpec(wan=w, allow_non_wan=True, state="Succeeded", circuits=rnd.sample(range(3), 2), vnets=2)
           for w in ("wan-a", "wan-b")]
    return TopologySpec(circuits=circuits, hubs=hubs, wan_hubs=wan)


def changed(spec: TopologySpec, kind: str, rnd: random.Random) -> TopologySpec:
    import copy

    out = copy.deepcopy(spec)
    hub = rnd.choice(out.hubs)
    circuit = rnd.choice(out.circuits)
    wan = rnd.choice(out.wan_hubs)
    if kind == "allow_remote":
        hub.allow_remote = not hub.allow_remote
    elif kind == "allow_wan":
        hub.allow_wan = not hub.allow_wan
    elif kind == "state":
        hub.state = "Updating" if hub.state == "Succeeded" else "Succeeded"
    elif kind == "admin":
        hub.admin_state = "Disabled"
    elif kind == "drop_link":
        hub.links.pop()
    elif kind == "link_state":
        hub.links[0] = (hub.links[0][0], hub.links[0][1], rnd.choice(["Updating", "Failed"]))
    elif kind == "spoke" and hub.spokes:
        hub.spokes[0].use_remote = False
    elif kind == "drop_spoke" and hub.spokes:
        hub.spokes.pop()
    elif kind == "circuit_provider":
        circuit.provider_state = "NotProvisioned"
    elif kind == "circuit_state":
        circuit.state = "Updating"
    elif kind == "circuit_peering":
        circuit.private_peering = "Disabled"
    elif kind == "wan_flag":
        wan.allow_non_wan = False
    elif kind == "wan_state":
        wan.state = "Updating"
    elif kind == "add_link":
        hub.links.append((rnd.choice([c for c in range(3) if c not in {k for k, _, _ in hub.links}] or [0]),
                          "ExpressRoute", "Succeeded"))
    return out


def dangling(resources: list[Resource], hub: int) -> list[Resource]:
    """hub-<hub> offers gateway transit to a VNet that is not in the snapshot (the spokes then warn)."""
    out = []
    for r in resources:
        if r.get("name") == f"hub-{hub}":
            r = {**r, "properties": {**r["properties"], "virtualNetworkPeerings": [
                *r["properties"]["virtualNetworkPeerings"],
                {"id": r["id"] + "/virtualNetworkPeerings/to-gone", "name": "to-gone",
                 "properties": {"remoteVirtualNetwork": {"id": r["id"].rsplit("/", 1)[0] + "/gone"},
                                "allowGatewayTransit": True, "peeringState": "Connected"}}]}}
        out.append(r)
    return out


def shaped(kind: str, seed: int, before: list[Resource], after: list[Resource]) -> tuple[list[Resource],
                                                                                          list[Resource]]:
    if kind == "second_gateway":
        shape = seed % 3
        before = _behind_two_gateways(before, seed % 6) if shape != 0 else before
        after = _behind_two_gateways(after, seed % 6) if shape != 1 else after
    elif kind == "dangling":
        before, after = (dangling(before, seed % 6), after) if seed % 2 else (before, dangling(after, seed % 6))
    return before, after


def test_every_kind_of_change_agrees_with_the_whole_pair_sets() -> None:
    decisive = dict.fromkeys(KINDS, 0)
    for kind in KINDS:
        for seed in range(12):
            rnd = random.Random(seed)
            spec = dense_spec(rnd)
            before, after = shaped(kind, seed, render(spec), render(changed(spec, kind, rnd)))
            side0, side1 = check(before, after, seed=seed)
            decisive[kind] += bool(len(side0.pairs) or len(side1.pairs))
    # Each kind opened or closed pairs in some of its cases, so each was tested where it matters.
    quiet = ("state", "circuit_state", "wan_state", "link_state", "dangling")  # pending or warnings only
    assert all(decisive[k] for k in KINDS if k not in quiet), decisive


# -- gateways_of(previous=...): only the gateways a change can reach are worked out again ---------------------------

def check_patched_gateways(before: list[Resource], after: list[Resource]) -> None:
    t0 = parse_resources(before, source="live read", reusable=True)
    g0 = gateways_of(t0)
    t1 = parse_resources(patched(before, after), source="live read", previous=t0)
    full, incremental = gateways_of(t1), gateways_of(t1, previous=(t0, g0))
    assert incremental == full
    assert incremental.warnings == full.warnings
    assert list(incremental.endpoints) == list(full.endpoints)


@CHANGED_SETTINGS
@given(topology_specs(), st.data(), st.sampled_from(["plain", "odd", "apart before", "apart after"]))
def test_gateways_patched_from_the_previous_topology_equal_those_computed_in_full(spec: TopologySpec,
                                                                                  data: st.DataObject,
                                                                                  shape: str) -> None:
    before, after = render(spec), render(data.draw(mutated(spec)))
    if shape != "plain":
        before, after = odd(before, apart=shape == "apart before"), odd(after, apart=shape == "apart after")
    check_patched_gateways(before, after)


def test_gateways_patched_for_every_kind_of_change_equal_those_computed_in_full() -> None:
    for kind in KINDS:
        for seed in range(12):
            rnd = random.Random(seed)
            spec = dense_spec(rnd)
            check_patched_gateways(*shaped(kind, seed, render(spec), render(changed(spec, kind, rnd))))


def test_a_vnet_leaving_one_of_its_two_gateways_opens_a_pair_over_a_circuit_that_gateway_is_not_on() -> None:
    """v and x both sit behind hub H's gateway (on er-1) and each behind a Virtual WAN hub of its own (on er-2):
    behind one gateway together, they pair on no route. When v stops using H's gateway, v and x pair over er-2,
    a circuit H's gateway is not on: it must be paired although only H's gateway's endpoint changed."""
    from tests import builders as b

    def estate(v_uses_hub: bool) -> list[Resource]:
        er1, er2 = b.circuit("er-1"), b.circuit("er-2")
        hub = b.vnet("hub-h", "10.0.0.0/16")
        v, x = b.vnet("spoke-v", "10.1.0.0/24"), b.vnet("spoke-x", "10.2.0.0/24")
        b.hub_and_spoke(hub, v, use_remote=v_uses_hub)
        b.hub_and_spoke(hub, x)
        gw = b.gateway("ergw-h", hub, allow_remote=True, allow_wan=True)
        out = [er1, er2, hub, v, x, gw, b.connection("conn-h", gw, er1["id"])]
        for name, wan, member in (("vhub-0", "wan-a", v), ("vhub-1", "wan-b", x)):
            vhub = b.virtual_hub(name, wan)
            out += [vhub, b.hub_connection(vhub, member),
                    b.wan_gateway(f"wgw-{name}", vhub, [er2["id"]], allow_non_wan=True)]
        return out

    side0, side1 = check(estate(True), estate(False))
    assert {(p.a.name, p.b.name) for p in side1.pairs.values()} >= {("spoke-v", "spoke-x")}
