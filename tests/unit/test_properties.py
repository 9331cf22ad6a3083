"""Invariants of the transit core over generated topologies (hypothesis)."""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.core.diff import diff_pairs
from shared.core.model import PairSet, Topology
from shared.core.snapshot import parse_resources
from shared.core.transit import compute_pairs, endpoints_of
from tests.builders import (
    Resource,
    circuit,
    connection,
    gateway,
    hub_and_spoke,
    hub_connection,
    recase_references,
    virtual_hub,
    vnet,
    wan_gateway,
)

FLAG = st.sampled_from([True, False, None])
STATE = st.sampled_from(["Succeeded", "Succeeded", "Succeeded", "Updating", "Failed"])
PEERING_STATE = st.sampled_from(["Connected", "Connected", "Connected", "Initiated", "Disconnected"])
PROPERTY_SETTINGS = settings(max_examples=60, deadline=None)


# -- a topology described as plain data, rendered with the builders ----------------------------------------------

@dataclass
class SpokeSpec:
    gateway_transit: bool
    use_remote: bool
    hub_state: str
    spoke_state: str


@dataclass
class HubSpec:
    allow_remote: bool | None
    allow_wan: bool | None
    gateway_type: str
    admin_state: str | None
    state: str
    links: list[tuple[int, str, str]]  # (circuit index, connection type, provisioning state)
    spokes: list[SpokeSpec]


@dataclass
class WanHubSpec:
    wan: str
    allow_non_wan: bool | None
    state: str
    circuits: list[int]
    vnets: int


@dataclass
class CircuitSpec:
    provider_state: str
    private_peering: str | None
    state: str
    in_snapshot: bool


@dataclass
class TopologySpec:
    circuits: list[CircuitSpec]
    hubs: list[HubSpec]
    wan_hubs: list[WanHubSpec] = field(default_factory=list)


@st.composite
def circuit_specs(draw: st.DrawFn) -> CircuitSpec:
    return CircuitSpec(
        provider_state=draw(st.sampled_from(["Provisioned"] * 4 + ["NotProvisioned"])),
        private_peering=draw(st.sampled_from(["Enabled"] * 4 + ["Disabled", None])),
        state=draw(STATE),
        in_snapshot=draw(st.booleans() | st.just(True)),
    )


@st.composite
def hub_specs(draw: st.DrawFn, n_circuits: int) -> HubSpec:
    link = st.tuples(st.integers(0, n_circuits - 1), st.sampled_from(["ExpressRoute"] * 5 + ["IPsec"]), STATE)
    spoke = st.builds(SpokeSpec, gateway_transit=st.booleans() | st.just(True),
                      use_remote=st.booleans() | st.just(True), hub_state=PEERING_STATE, spoke_state=PEERING_STATE)
    return HubSpec(
        allow_remote=draw(FLAG), allow_wan=draw(FLAG),
        gateway_type=draw(st.sampled_from(["ExpressRoute"] * 6 + ["Vpn"])),
        admin_state=draw(st.sampled_from([None, None, "Enabled", "Disabled"])),
        state=draw(STATE),
        links=draw(st.lists(link, min_size=0, max_size=2)),
        spokes=draw(st.lists(spoke, max_size=2)),
    )


@st.composite
def topology_specs(draw: st.DrawFn) -> TopologySpec:
    circuits = draw(st.lists(circuit_specs(), min_size=1, max_size=3))
    n = len(circuits)
    hubs = draw(st.lists(hub_specs(n), min_size=2, max_size=5))
    wan_hubs = draw(st.lists(st.builds(WanHubSpec, wan=st.sampled_from(["wan-a", "wan-b"]), allow_non_wan=FLAG,
                                       state=STATE, circuits=st.lists(st.integers(0, n - 1), max_size=2),
                                       vnets=st.integers(0, 2)), max_size=2))
    return TopologySpec(circuits=circuits, hubs=hubs, wan_hubs=wan_hubs)


def render(spec: TopologySpec) -> list[Resource]:
    """ARM-shaped resources for a spec (names: er-<i>, hub-<i>, ergw-<i>, spoke-<i><j>, vhub-<i>, ...)."""
    out: list[Resource] = []
    circuit_ids: list[str] = []
    for i, cs in enumerate(spec.circuits):
        er = circuit(f"er-{i}", provider_state=cs.provider_state, private_peering=cs.private_peering, state=cs.state)
        circuit_ids.append(er["id"])
        if cs.in_snapshot:
            out.append(er)
    for h, hs in enumerate(spec.hubs):
        hub = vnet(f"hub-{h}", f"10.{h}.0.0/16")
        gw = gateway(f"ergw-{h}", hub, allow_remote=hs.allow_remote, allow_wan=hs.allow_wan,
                     gateway_type=hs.gateway_type, admin_state=hs.admin_state, state=hs.state)
        out += [hub, gw]
        for k, (c, ctype, state) in enumerate(hs.links):
            out.append(connection(f"conn-{h}-{k}", gw, circuit_ids[c], connection_type=ctype, state=state))
        for s, ss in enumerate(hs.spokes):
            spoke = vnet(f"spoke-{h}{s}", f"10.{h}.{s + 1}.0/24")
            hub_and_spoke(hub, spoke, gateway_transit=ss.gateway_transit, use_remote=ss.use_remote,
                          hub_state=ss.hub_state, spoke_state=ss.spoke_state)
            out.append(spoke)
    for w, ws in enumerate(spec.wan_hubs):
        vh = virtual_hub(f"vhub-{w}", ws.wan)
        out.append(vh)
        for v in range(ws.vnets):
            member = vnet(f"vwan-{w}{v}", f"10.{100 + w}.{v}.0/24")
            out += [member, hub_connection(vh, member)]
        out.append(wan_gateway(f"wgw-{w}", vh, sorted({circuit_ids[c] for c in ws.circuits}),
                               allow_non_wan=ws.allow_non_wan, state=ws.state))
    return out


def pairs_of(resources: list[Resource]) -> tuple[Topology, PairSet]:
    topology = parse_resources(resources)
    return topology, compute_pairs(topology)


def summary(pairs: PairSet) -> dict[tuple[str, str], tuple[Any, ...]]:
    """Everything a reader sees of the pairs, with ids compared case-insensitively."""
    return {key: (p.a.value, p.b.value, tuple(c.key for c in p.circuits), tuple(g.value for g in p.gateways),
                  p.status, tuple(sorted(w.lower() for w in p.warnings)))
            for key, p in pairs.pairs.items()}


# -- invariants ----------------------------------------------------------------------------------------------------

@PROPERTY_SETTINGS
@given(topology_specs())
def test_pairs_are_ordered_never_reflexive_and_join_two_different_gateway_domains(spec: TopologySpec) -> None:
    topology, pairs = pairs_of(render(spec))
    endpoints = endpoints_of(topology)
    for key, p in pairs.pairs.items():
        assert p.a != p.b
        assert key == (p.a.key, p.b.key) and p.a.key < p.b.key
        assert p.routes
        for route in p.routes:
            g1, g2 = (endpoints[g] for g in route.gateways)
            assert g1.id != g2.id
            assert route.circuit in g1.circuits and route.circuit in g2.circuits
            assert (p.a in g1.domain and p.b in g2.domain) or (p.b in g1.domain and p.a in g2.domain)
            shared = [e for e in endpoints.values() if p.a in e.domain and p.b in e.domain]
            assert shared == []  # VNets behind one gateway talk through the hub, never over ER


@PROPERTY_SETTINGS
@given(topology_specs(), st.data())
def test_turning_a_flag_on_never_closes_a_pair_and_off_never_opens_one(spec: TopologySpec, data: st.DataObject
                                                                       ) -> None:
    switches: list[tuple[str, int, str]] = [("hub", i, f) for i in range(len(spec.hubs))
                                            for f in ("allow_remote", "allow_wan")]
    switches += [("wan", i, "allow_non_wan") for i in range(len(spec.wan_hubs))]
    kind, index, flag = data.draw(st.sampled_from(switches))
    off, on = copy.deepcopy(spec), copy.deepcopy(spec)
    target_off = off.hubs[index] if kind == "hub" else off.wan_hubs[index]
    target_on = on.hubs[index] if kind == "hub" else on.wan_hubs[index]
    setattr(target_off, flag, False)
    setattr(target_on, flag, True)
    _, pairs_off = pairs_of(render(off))
    _, pairs_on = pairs_of(render(on))
    assert set(pairs_off.pairs) <= set(pairs_on.pairs)


@PROPERTY_SETTINGS
@given(topology_specs(), st.randoms(use_true_random=False))
def test_result_does_not_depend_on_resource_order(spec: TopologySpec, rnd: random.Random) -> None:
    resources = render(spec)
    shuffled = list(resources)
    rnd.shuffle(shuffled)
    _, before = pairs_of(resources)
    _, after = pairs_of(shuffled)
    assert summary(after) == summary(before)
    assert {w.lower() for w in after.warnings} == {w.lower() for w in before.warnings}


@PROPERTY_SETTINGS
@given(topology_specs(), st.randoms(use_true_random=False))
def test_result_does_not_depend_on_the_casing_of_references(spec: TopologySpec, rnd: random.Random) -> None:
    resources = render(spec)

    def recase(text: str) -> str:
        return rnd.choice([str.upper, str.lower, str.swapcase, str])(text)

    _, before = pairs_of(resources)
    _, after = pairs_of(recase_references(resources, recase))
    assert summary(after) == summary(before)  # VNet ids and gateways as the resources spell them
    assert {w.lower() for w in after.warnings} == {w.lower() for w in before.warnings}


@PROPERTY_SETTINGS
@given(topology_specs())
def test_diff_of_a_topology_with_itself_is_empty(spec: TopologySpec) -> None:
    topology, pairs = pairs_of(render(spec))
    again, pairs_again = pairs_of(render(spec))
    assert diff_pairs(pairs, pairs_again, before_topology=topology, after_topology=again).empty


@PROPERTY_SETTINGS
@given(topology_specs(), topology_specs())
def test_what_opens_one_way_closes_the_other_way(spec_a: TopologySpec, spec_b: TopologySpec) -> None:
    ta, pa = pairs_of(render(spec_a))
    tb, pb = pairs_of(render(spec_b))
    forward = diff_pairs(pa, pb, before_topology=ta, after_topology=tb)
    backward = diff_pairs(pb, pa, before_topology=tb, after_topology=ta)
    assert [c.pair.key for c in forward.opened] == [c.pair.key for c in backward.closed]
    assert [c.pair.key for c in forward.closed] == [c.pair.key for c in backward.opened]
    assert {c.pair.key for c in forward.opened} == set(pb.pairs) - set(pa.pairs)
    assert {c.pair.key for c in forward.closed} == set(pa.pairs) - set(pb.pairs)
    for change in (*forward.opened, *forward.closed):
        assert change.causes  # every change is explained (or says it could not be)


@PROPERTY_SETTINGS
@given(topology_specs(), st.data())
def test_a_single_flag_flip_is_named_as_the_cause(spec: TopologySpec, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(spec.hubs) - 1))
    before, after = copy.deepcopy(spec), copy.deepcopy(spec)
    before.hubs[index].allow_remote, after.hubs[index].allow_remote = False, True
    tb, pb = pairs_of(render(before))
    ta, pa = pairs_of(render(after))
    d = diff_pairs(pb, pa, before_topology=tb, after_topology=ta)
    assert d.closed == ()
    for change in d.opened:
        assert [c.text for c in change.causes] == [f"ergw-{index} allowRemoteVnetTraffic false -> true"]


@settings(max_examples=60, deadline=None)
@given(topology_specs())
def test_the_transit_projection_parses_to_the_same_topology(spec: TopologySpec) -> None:
    from shared.core.snapshot import transit_projection

    resources = render(spec)
    assert parse_resources(transit_projection(resources)) == parse_resources(resources)
