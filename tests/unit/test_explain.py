"""Explanations: every transit rule of DESIGN.md/DOMAIN.md names its missing condition; open pairs name carriers."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.core.explain import Explanation, VnetLookupError, explain_pair, explanation_text, resolve_vnet
from shared.core.model import ResourceId, Topology
from shared.core.snapshot import parse_resources
from shared.core.transit import compute_pairs
from tests.builders import (
    Resource,
    circuit,
    circuit_global_reach,
    connection,
    gateway,
    hub_connection,
    lab,
    peering,
    small_topology,
    virtual_hub,
    vnet,
    wan_gateway,
)


def explain(resources: list[Resource], a: str, b: str) -> Explanation:
    topology = parse_resources(resources)
    return explain_pair(topology, resolve_vnet(topology, a), resolve_vnet(topology, b))


def closed_with(resources: list[Resource], a: str, b: str) -> list[str]:
    ex = explain(resources, a, b)
    assert not ex.open, ex.text()
    assert ex.missing, "a closed pair must name at least one missing condition"
    return list(ex.missing)


# -- open pairs: the carriers --------------------------------------------------------------------------------------

def test_open_pair_names_the_circuit_and_the_gateways_of_each_side_in_the_order_asked() -> None:
    ex = explain(lab(enabled=(1, 2)), "hub-02", "hub-01")
    assert ex.open and ex.status == "open" and ex.missing == ()
    [carrier] = ex.carriers
    assert carrier.circuit.name == "er-lab"
    assert [g.name for g in carrier.gateways] == ["ergw-02", "ergw-01"]
    assert ex.text() == ("hub-02 <-> hub-01: open ER-transit pair\n- via circuit er-lab: ergw-02 <-> ergw-01: both "
                         "gateways allow remote VNet traffic (ergw-02 true, ergw-01 true)")


def test_open_pair_lists_every_circuit_that_carries_it() -> None:
    resources = small_topology([{"circuits": (0, 1)}, {"circuits": (0, 1)}])
    ex = explain(resources, "hub-1", "hub-2")
    assert sorted(c.circuit.name for c in ex.carriers) == ["er-0", "er-1"]


def test_open_pair_through_spokes_names_the_hub_gateways() -> None:
    resources = small_topology([{"spokes": [{}]}, {"spokes": [{}]}])
    ex = explain(resources, "spoke-11", "spoke-21")
    assert ex.open
    assert [g.name for g in ex.carriers[0].gateways] == ["ergw-1", "ergw-2"]


def test_absent_flag_is_open_with_the_doubt_as_a_warning() -> None:
    ex = explain(small_topology([{"allow_remote": None}, {}]), "hub-1", "hub-2")
    assert ex.open
    assert any("ergw-1: allowRemoteVnetTraffic not reported" in w for w in ex.warnings)
    assert "warning: ergw-1: allowRemoteVnetTraffic not reported" in ex.text()


def test_pair_on_a_settling_connection_is_open_but_pending() -> None:
    resources = small_topology([{}, {}])
    next(r for r in resources if r["name"] == "conn-2-0")["properties"]["provisioningState"] = "Updating"
    ex = explain(resources, "hub-1", "hub-2")
    assert ex.open and ex.status == "pending" and ex.carriers[0].pending
    assert "(pending" in ex.text()


# -- closed pairs: each rule names its missing condition -----------------------------------------------------------

def test_flag_off_on_one_gateway_is_named() -> None:
    assert closed_with(lab(enabled=(1,)), "hub-01", "hub-03") == ["ergw-03 allowRemoteVnetTraffic is false"]


def test_flag_off_on_both_gateways_names_both() -> None:
    assert closed_with(lab(), "hub-01", "hub-02") == ["ergw-01 allowRemoteVnetTraffic is false",
                                                      "ergw-02 allowRemoteVnetTraffic is false"]


def test_text_groups_the_conditions_per_circuit_and_gateway_pair() -> None:
    topology = parse_resources(lab(enabled=(2,)))
    text = explanation_text(topology, resolve_vnet(topology, "hub-01"), resolve_vnet(topology, "hub-02"))
    assert text == ("hub-01 <-> hub-02: not an ER-transit pair\n"
                    "- via circuit er-lab, ergw-01 <-> ergw-02: ergw-01 allowRemoteVnetTraffic is false")


@pytest.mark.parametrize(("spoke_kwargs", "expected"), [
    ({"use_remote": False}, "spoke-11's peering to hub-1 does not use remote gateways"),
    ({"gateway_transit": False}, "hub-1's peering to spoke-11 does not allow gateway transit"),
    ({"spoke_state": "Initiated"}, "spoke-11's peering to hub-1 is Initiated, not Connected"),
    ({"hub_state": "Disconnected"}, "hub-1's peering to spoke-11 is Disconnected, not Connected"),
])
def test_spoke_membership_condition_is_named(spoke_kwargs: dict[str, Any], expected: str) -> None:
    resources = small_topology([{"spokes": [spoke_kwargs]}, {}])
    assert closed_with(resources, "spoke-11", "hub-2") == [expected]


def test_spoke_without_a_peering_back_from_the_hub_is_named() -> None:
    hub1, spoke = vnet("hub1", "10.1.0.0/16"), vnet("spoke1a", "10.11.0.0/16")
    spoke["properties"]["virtualNetworkPeerings"].append(peering(spoke, hub1, use_remote=True))
    hub2 = vnet("hub2", "10.2.0.0/16")
    er = circuit("er-lab")
    gw1, gw2 = gateway("ergw-01", hub1, allow_remote=True), gateway("ergw-02", hub2, allow_remote=True)
    resources = [er, hub1, hub2, spoke, gw1, gw2, connection("c1", gw1, er["id"]), connection("c2", gw2, er["id"])]
    assert closed_with(resources, "spoke1a", "hub2") == ["hub1 has no peering to spoke1a"]


def test_spoke_and_gateway_conditions_are_all_listed_together() -> None:
    resources = small_topology([{"spokes": [{"use_remote": False}]}, {"allow_remote": False}])
    assert closed_with(resources, "spoke-11", "hub-2") == [
        "spoke-11's peering to hub-1 does not use remote gateways", "ergw-2 allowRemoteVnetTraffic is false"]


def test_no_common_circuit_names_what_each_side_reaches() -> None:
    resources = small_topology([{"circuits": (0,)}, {"circuits": (1,)}])
    missing = closed_with(resources, "hub-1", "hub-2")
    assert missing == ["no common circuit: hub-1 reaches er-0, hub-2 reaches er-1"]


def test_no_common_circuit_mentions_global_reach_between_the_circuits() -> None:
    tokyo, osaka = circuit("er-tokyo"), circuit("er-osaka")
    resources: list[Resource] = [tokyo, osaka, circuit_global_reach(tokyo, osaka)]
    for i, er in ((1, tokyo), (2, osaka)):
        hub = vnet(f"hub-{i}", f"10.{i}.0.0/16")
        gw = gateway(f"ergw-{i}", hub, allow_remote=True)
        resources += [hub, gw, connection(f"c{i}", gw, er["id"])]
    missing = closed_with(resources, "hub-1", "hub-2")
    assert missing[0] == "no common circuit: hub-1 reaches er-tokyo, hub-2 reaches er-osaka"
    assert any("Global Reach" in m and "er-tokyo" in m and "er-osaka" in m for m in missing)


def test_vnet_without_any_expressroute_gateway_is_named() -> None:
    resources = [*lab(enabled=(1, 2, 3)), vnet("hub-04", "10.4.0.0/16")]
    missing = closed_with(resources, "hub-01", "hub-04")
    assert missing == ["hub-04 is not behind any ExpressRoute gateway (none in the VNet, no peering to a VNet that "
                       "has one, no Virtual WAN hub connection)"]


def test_vpn_gateway_is_not_an_expressroute_gateway() -> None:
    hub4 = vnet("hub-04", "10.4.0.0/16")
    vpn = gateway("vpngw-04", hub4, gateway_type="Vpn", allow_remote=True)
    resources = [*lab(enabled=(1, 2, 3)), hub4, vpn,
                 connection("s2s", vpn, lab()[0]["id"], connection_type="IPsec")]
    assert "not behind any ExpressRoute gateway" in closed_with(resources, "hub-01", "hub-04")[0]


def test_gateway_without_a_connection_is_named() -> None:
    resources = [r for r in lab(enabled=(1, 2)) if r["name"] != "conn-02"]
    missing = closed_with(resources, "hub-01", "hub-02")
    assert missing[0] == "ergw-02 has no ExpressRoute connection to a circuit"
    assert missing[1] == "no common circuit: hub-01 reaches er-lab, hub-02 reaches no circuit"


def test_non_expressroute_connection_does_not_count_as_a_circuit_link() -> None:
    resources = lab(enabled=(1, 2))
    next(r for r in resources if r["name"] == "conn-02")["properties"]["connectionType"] = "IPsec"
    assert "ergw-02 has no ExpressRoute connection to a circuit" in closed_with(resources, "hub-01", "hub-02")


def test_disabled_gateway_is_named() -> None:
    resources = small_topology([{}, {"admin_state": "Disabled"}])
    assert closed_with(resources, "hub-1", "hub-2") == ["ergw-2 adminState is Disabled"]


@pytest.mark.parametrize(("state", "expected"), [
    ({"provider_state": "NotProvisioned"},
     ["circuit er-0 serviceProviderProvisioningState is NotProvisioned, not Provisioned"]),
    ({"private_peering": "Disabled"}, ["circuit er-0 private peering state is Disabled, not Enabled"]),
    ({"private_peering": None}, ["circuit er-0 has no AzurePrivatePeering"]),
])
def test_unusable_circuit_is_named(state: dict[str, Any], expected: list[str]) -> None:
    resources = small_topology([{}, {}], circuits=1, circuit_states={0: state})
    ex = explain(resources, "hub-1", "hub-2")
    assert not ex.open and list(ex.missing) == expected
    assert ex.circuits[0].missing == tuple(expected) and ex.circuits[0].routes[0].missing == ()
    assert f"- via circuit er-0: {expected[0]}" in ex.text()


def test_hub_and_its_own_spoke_are_one_gateway_domain() -> None:
    resources = small_topology([{"spokes": [{}]}, {}])
    missing = closed_with(resources, "hub-1", "spoke-11")
    assert missing[0] == ("hub-1 and spoke-11 are both behind ergw-1: VNets behind one gateway reach each other "
                          "through the hub, not through ExpressRoute")


def test_same_vnet_twice() -> None:
    assert closed_with(lab(enabled=(1, 2)), "hub-01", "HUB-01") == ["hub-01 and hub-01 are the same VNet"]


# -- Virtual WAN ---------------------------------------------------------------------------------------------------

def wan_setup(*, allow_wan: bool | None = True, allow_non_wan: bool | None = True) -> list[Resource]:
    er = circuit("er-lab")
    hub1 = vnet("hub-01", "10.1.0.0/16")
    gw1 = gateway("ergw-01", hub1, allow_remote=True, allow_wan=allow_wan)
    vhub = virtual_hub("vhub-1", "wan-1")
    member = vnet("vnet-w1", "10.50.0.0/16")
    return [er, hub1, gw1, connection("c1", gw1, er["id"]), vhub, member, hub_connection(vhub, member),
            wan_gateway("vhub-1-ergw", vhub, [er["id"]], allow_non_wan=allow_non_wan)]


def test_vnet_gateway_and_virtual_wan_hub_open_when_both_flags_allow() -> None:
    ex = explain(wan_setup(), "hub-01", "vnet-w1")
    assert ex.open and [g.name for g in ex.carriers[0].gateways] == ["ergw-01", "vhub-1-ergw"]


def test_vnet_gateway_allow_virtual_wan_traffic_off_is_named() -> None:
    assert closed_with(wan_setup(allow_wan=False), "hub-01", "vnet-w1") == [
        "ergw-01 allowVirtualWanTraffic is false"]


def test_virtual_wan_gateway_allow_non_virtual_wan_traffic_off_is_named() -> None:
    assert closed_with(wan_setup(allow_non_wan=False), "vnet-w1", "hub-01") == [
        "vhub-1-ergw allowNonVirtualWanTraffic is false"]


def test_hubs_of_the_same_virtual_wan_are_not_an_er_transit_pair() -> None:
    er = circuit("er-lab")
    resources: list[Resource] = [er]
    for i in (1, 2):
        vhub = virtual_hub(f"vhub-{i}", "wan-1")
        member = vnet(f"vnet-w{i}", f"10.5{i}.0.0/16")
        resources += [vhub, member, hub_connection(vhub, member), wan_gateway(f"vhub-{i}-ergw", vhub, [er["id"]])]
    [missing] = closed_with(resources, "vnet-w1", "vnet-w2")
    assert "same Virtual WAN wan-1" in missing and "vhub-1-ergw and vhub-2-ergw" in missing


# -- JSON and VNet lookup ------------------------------------------------------------------------------------------

def test_json_carries_open_missing_per_circuit_routes_and_the_text() -> None:
    doc = explain(lab(enabled=(1,)), "hub-01", "hub-02").to_json()
    assert doc["open"] is False and doc["status"] == "closed" and doc["carriers"] == []
    assert doc["missing"] == ["ergw-02 allowRemoteVnetTraffic is false"]
    [c] = doc["circuits"]
    assert c["circuit"].endswith("/expressRouteCircuits/er-lab")
    assert c["routes"][0]["gateways"][0].endswith("/ergw-01") and c["routes"][0]["missing"] == doc["missing"]
    assert doc["text"].startswith("hub-01 <-> hub-02: not an ER-transit pair")


def test_resolve_vnet_by_name_or_id_in_any_casing() -> None:
    topology = parse_resources(lab())
    by_name = resolve_vnet(topology, "HUB-01")
    by_id = resolve_vnet(topology, by_name.value.upper())
    assert by_name == by_id and by_id.value.endswith("/virtualNetworks/hub-01")  # the resource's own casing


def test_resolve_vnet_unknown_or_ambiguous_name() -> None:
    topology = parse_resources([*lab(), vnet("hub-01", "10.9.0.0/16", rg="rg-other")])
    with pytest.raises(VnetLookupError, match="ambiguous"):
        resolve_vnet(topology, "hub-01")
    with pytest.raises(VnetLookupError, match="no VNet named 'nope'"):
        resolve_vnet(topology, "nope")
    with pytest.raises(VnetLookupError, match="not in the snapshot"):
        resolve_vnet(topology, "/subscriptions/x/resourceGroups/y/providers/Microsoft.Network/virtualNetworks/z")


# -- property: the explanation agrees with compute_pairs -----------------------------------------------------------

spoke_spec = st.fixed_dictionaries({
    "use_remote": st.booleans(), "gateway_transit": st.booleans(),
    "spoke_state": st.sampled_from(["Connected", "Connected", "Initiated"])})
hub_spec = st.fixed_dictionaries({
    "allow_remote": st.sampled_from([True, False, None]),
    "admin_state": st.sampled_from([None, None, "Enabled", "Disabled"]),
    "circuits": st.sets(st.integers(0, 1), max_size=2).map(tuple),
    "spokes": st.lists(spoke_spec, max_size=2)})
circuit_spec = st.fixed_dictionaries({
    "provider_state": st.sampled_from(["Provisioned", "Provisioned", "NotProvisioned"]),
    "private_peering": st.sampled_from(["Enabled", "Enabled", "Disabled", None])})


@settings(max_examples=60, deadline=None)
@given(hubs=st.lists(hub_spec, min_size=2, max_size=3), c0=circuit_spec, c1=circuit_spec)
def test_explanation_agrees_with_the_transit_rules(hubs: list[dict[str, Any]], c0: dict[str, Any],
                                                   c1: dict[str, Any]) -> None:
    topology: Topology = parse_resources(small_topology(hubs, circuit_states={0: c0, 1: c1}))
    pairs = compute_pairs(topology)
    vnets = sorted(v for v in topology.vnets if topology.vnets[v].present)
    for i, a in enumerate(vnets):
        for b in vnets[i + 1:]:
            ex = explain_pair(topology, a, b)
            key = (a.key, b.key) if a.key < b.key else (b.key, a.key)
            assert ex.open == (key in pairs.pairs)
            if not ex.open:
                assert ex.missing and not any("please report" in m for m in ex.missing), ex.text()
            else:
                assert {c.circuit for c in ex.carriers} == set(pairs.pairs[key].circuits)


def test_explanation_ids_keep_the_resource_casing() -> None:
    ex = explain(lab(enabled=(1, 2)), "hub-01", "hub-02")
    assert ex.a == ResourceId.parse(lab()[1]["id"]) and ex.a.value == lab()[1]["id"]

