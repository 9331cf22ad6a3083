"""The transit rules of DESIGN.md and DOMAIN.md, one behaviour per test (positive and negative)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from shared.core.diff import Diff, diff_pairs
from shared.core.model import PairSet, TransitPair
from shared.core.snapshot import parse_resources
from shared.core.transit import compute_pairs
from tests.builders import (
    Resource,
    circuit,
    circuit_global_reach,
    connection,
    gateway,
    hub_and_spoke,
    hub_connection,
    lab,
    peering,
    recase_references,
    virtual_hub,
    vnet,
    wan_gateway,
)

FLAG_DOUBT = "not reported; assumed allowed as on gateways created before the 2024 change"


# -- helpers: read a result by names ------------------------------------------------------------------------------

def pairs_of(resources: list[Resource]) -> PairSet:
    return compute_pairs(parse_resources(resources))


def names(pairs: PairSet) -> set[tuple[str, str]]:
    return {(p.a.name, p.b.name) for p in pairs.pairs.values()}


def pair(pairs: PairSet, a: str, b: str) -> TransitPair:
    for p in pairs.pairs.values():
        if {p.a.name, p.b.name} == {a, b}:
            return p
    raise AssertionError(f"no pair {a} <-> {b} in {sorted(names(pairs))}")


def by_name(resources: list[Resource], name: str) -> Resource:
    return next(r for r in resources if r["name"] == name)


def two_hubs(*, allow1: bool | None = True, allow2: bool | None = True) -> list[Resource]:
    """hub-01 and hub-02, each with an ER gateway (ergw-01/02) connected (conn-01/02) to one circuit er-lab."""
    er = circuit("er-lab")
    hub1, hub2 = vnet("hub-01", "10.1.0.0/16"), vnet("hub-02", "10.2.0.0/16")
    gw1 = gateway("ergw-01", hub1, allow_remote=allow1)
    gw2 = gateway("ergw-02", hub2, allow_remote=allow2)
    return [er, hub1, hub2, gw1, gw2, connection("conn-01", gw1, er["id"]), connection("conn-02", gw2, er["id"])]


def hubs_with_spokes(**spoke_kwargs: Any) -> list[Resource]:
    """two_hubs plus spoke-1a behind hub-01 (its peerings shaped by `spoke_kwargs`) and spoke-2a behind hub-02."""
    res = two_hubs()
    hub1, hub2 = by_name(res, "hub-01"), by_name(res, "hub-02")
    s1a, s2a = vnet("spoke-1a", "10.11.0.0/16"), vnet("spoke-2a", "10.21.0.0/16")
    hub_and_spoke(hub1, s1a, **spoke_kwargs)
    hub_and_spoke(hub2, s2a)
    return [*res, s1a, s2a]


def diff_of(before: list[Resource], after: list[Resource]) -> Diff:
    tb, ta = parse_resources(before), parse_resources(after)
    return diff_pairs(compute_pairs(tb), compute_pairs(ta), before_topology=tb, after_topology=ta)


def changed_names(changes: Any) -> set[tuple[str, str]]:
    return {(ch.pair.a.name, ch.pair.b.name) for ch in changes}


# -- both gateways must allow (the seed lab) ----------------------------------------------------------------------

def test_lab_with_every_flag_off_has_no_pair() -> None:
    assert names(pairs_of(lab())) == set()


def test_one_gateway_allowing_opens_no_pair() -> None:
    assert names(pairs_of(lab(enabled=(2,)))) == set()


def test_two_gateways_allowing_pair_exactly_their_hubs_and_the_third_stays_isolated() -> None:
    result = pairs_of(lab(enabled=(1, 2)))
    assert names(result) == {("hub-01", "hub-02")}
    only = pair(result, "hub-01", "hub-02")
    assert [c.name for c in only.circuits] == ["er-lab"]
    assert [g.name for g in only.gateways] == ["ergw-01", "ergw-02"]
    assert only.status == "confirmed"
    assert only.warnings == ()


def test_every_gateway_allowing_pairs_every_hub() -> None:
    assert names(pairs_of(lab(enabled=(1, 2, 3)))) == {
        ("hub-01", "hub-02"), ("hub-01", "hub-03"), ("hub-02", "hub-03")}


def test_pairs_are_ordered_case_insensitively_and_never_pair_a_vnet_with_itself() -> None:
    for p in pairs_of(lab(enabled=(1, 2, 3))).pairs.values():
        assert p.a.key < p.b.key
        assert p.key == (p.a.value.lower(), p.b.value.lower())


# -- ExpressRoute gateways and connections only ------------------------------------------------------------------

def test_vpn_gateway_carries_no_transit_even_when_allowing() -> None:
    res = two_hubs()
    hub2 = by_name(res, "hub-02")
    res = [r for r in res if r["name"] != "ergw-02"]
    vpn = gateway("ergw-02", hub2, allow_remote=True, gateway_type="Vpn")
    res.append(vpn)
    assert names(pairs_of(res)) == set()


def test_gateway_type_is_read_case_insensitively() -> None:
    res = two_hubs()
    by_name(res, "ergw-02")["properties"]["gatewayType"] = "expressroute"
    assert names(pairs_of(res)) == {("hub-01", "hub-02")}


@pytest.mark.parametrize("connection_type", ["IPsec", "Vnet2Vnet", "VPNClient"])
def test_non_expressroute_connection_links_no_circuit(connection_type: str) -> None:
    res = two_hubs()
    by_name(res, "conn-02")["properties"]["connectionType"] = connection_type
    assert names(pairs_of(res)) == set()


def test_expressroute_connection_type_is_read_case_insensitively() -> None:
    res = two_hubs()
    by_name(res, "conn-02")["properties"]["connectionType"] = "expressRoute"
    assert names(pairs_of(res)) == {("hub-01", "hub-02")}


def test_gateway_without_connection_reaches_no_one() -> None:
    res = [r for r in two_hubs() if r["name"] != "conn-02"]
    assert names(pairs_of(res)) == set()


def test_connection_to_circuit_private_peering_id_is_read_as_the_circuit() -> None:
    res = two_hubs()
    conn = by_name(res, "conn-02")
    conn["properties"]["peer"]["id"] += "/peerings/AzurePrivatePeering"
    assert names(pairs_of(res)) == {("hub-01", "hub-02")}


# -- absent / null flags, admin state ----------------------------------------------------------------------------

def test_absent_flag_is_assumed_allowed_with_a_warning_on_the_pair() -> None:
    result = pairs_of(two_hubs(allow1=None))
    only = pair(result, "hub-01", "hub-02")
    assert len(only.warnings) == 1
    assert only.warnings[0].startswith("ergw-01: allowRemoteVnetTraffic ")
    assert FLAG_DOUBT in only.warnings[0]


def test_null_flag_is_assumed_allowed_with_a_warning_on_the_pair() -> None:
    res = two_hubs()
    by_name(res, "ergw-02")["properties"]["allowRemoteVnetTraffic"] = None
    only = pair(pairs_of(res), "hub-01", "hub-02")
    assert any("ergw-02" in w and FLAG_DOUBT in w for w in only.warnings)


def test_reported_flags_put_no_doubt_on_the_pair() -> None:
    assert pair(pairs_of(two_hubs()), "hub-01", "hub-02").warnings == ()


def test_explicit_false_is_not_read_as_absent() -> None:
    assert names(pairs_of(two_hubs(allow1=False))) == set()
    assert names(pairs_of(two_hubs(allow1=None, allow2=False))) == set()


def test_disabled_gateway_carries_nothing() -> None:
    res = two_hubs()
    by_name(res, "ergw-02")["properties"]["adminState"] = "Disabled"
    assert names(pairs_of(res)) == set()


def test_enabled_admin_state_carries_transit() -> None:
    res = two_hubs()
    by_name(res, "ergw-02")["properties"]["adminState"] = "Enabled"
    assert names(pairs_of(res)) == {("hub-01", "hub-02")}


# -- spokes through gateway transit -------------------------------------------------------------------------------

def test_spokes_through_gateway_transit_pair_with_the_other_hub_and_its_spokes() -> None:
    assert names(pairs_of(hubs_with_spokes())) == {
        ("hub-01", "hub-02"), ("hub-01", "spoke-2a"), ("hub-02", "spoke-1a"), ("spoke-1a", "spoke-2a")}


def test_spoke_pair_is_carried_by_both_hub_gateways() -> None:
    p = pair(pairs_of(hubs_with_spokes()), "spoke-1a", "spoke-2a")
    assert [g.name for g in p.gateways] == ["ergw-01", "ergw-02"]


@pytest.mark.parametrize("missing", [
    pytest.param({"use_remote": False}, id="spoke_without_use_remote_gateways"),
    pytest.param({"gateway_transit": False}, id="hub_without_allow_gateway_transit"),
    pytest.param({"hub_state": "Initiated"}, id="hub_peering_initiated"),
    pytest.param({"spoke_state": "Initiated"}, id="spoke_peering_initiated"),
    pytest.param({"hub_state": "Disconnected"}, id="hub_peering_disconnected"),
    pytest.param({"spoke_state": "Disconnected"}, id="spoke_peering_disconnected"),
])
def test_spoke_missing_a_gateway_transit_condition_is_not_behind_the_hub(missing: dict[str, Any]) -> None:
    result = names(pairs_of(hubs_with_spokes(**missing)))
    assert not any("spoke-1a" in p for p in result)
    assert ("hub-01", "hub-02") in result  # the rest of the topology is untouched


def test_spoke_without_use_remote_gateways_is_not_behind_the_hub() -> None:
    assert ("spoke-1a", "spoke-2a") not in names(pairs_of(hubs_with_spokes(use_remote=False)))


def test_spoke_with_only_one_peering_is_not_behind_the_hub() -> None:
    res = hubs_with_spokes()
    s1a = by_name(res, "spoke-1a")
    s1a["properties"]["virtualNetworkPeerings"] = []
    assert not any("spoke-1a" in p for p in names(pairs_of(res)))


def test_spokes_of_one_hub_are_not_a_pair_with_each_other_or_with_their_hub() -> None:
    res = hubs_with_spokes()
    s1b = vnet("spoke-1b", "10.12.0.0/16")
    hub_and_spoke(by_name(res, "hub-01"), s1b)
    result = names(pairs_of([*res, s1b]))
    assert ("spoke-1a", "spoke-1b") not in result
    assert ("hub-01", "spoke-1a") not in result
    assert ("hub-01", "spoke-1b") not in result
    assert ("hub-02", "spoke-2a") not in result
    assert ("spoke-1b", "spoke-2a") in result


def test_peering_state_is_read_case_insensitively() -> None:
    res = hubs_with_spokes()
    for p in by_name(res, "spoke-1a")["properties"]["virtualNetworkPeerings"]:
        p["properties"]["peeringState"] = "connected"
    assert ("spoke-1a", "spoke-2a") in names(pairs_of(res))


# -- circuits -----------------------------------------------------------------------------------------------------

def chain_over_two_circuits(*, global_reach: bool = False) -> list[Resource]:
    """ergw-01 on er-a, ergw-02 on er-a and er-b, ergw-03 on er-b; every gateway allowing."""
    er_b = circuit("er-b")
    er_a = circuit("er-a", global_reach_to=[er_b["id"]] if global_reach else None)
    out: list[Resource] = [er_a, er_b]
    for i, circuits in ((1, [er_a]), (2, [er_a, er_b]), (3, [er_b])):
        hub = vnet(f"hub-0{i}", f"10.{i}.0.0/16")
        gw = gateway(f"ergw-0{i}", hub, allow_remote=True)
        out += [hub, gw, *(connection(f"conn-0{i}-{c['name']}", gw, c["id"]) for c in circuits)]
    return out


def test_gateway_on_two_circuits_does_not_bridge_them() -> None:
    result = pairs_of(chain_over_two_circuits())
    assert names(result) == {("hub-01", "hub-02"), ("hub-02", "hub-03")}
    assert [c.name for c in pair(result, "hub-01", "hub-02").circuits] == ["er-a"]
    assert [c.name for c in pair(result, "hub-02", "hub-03").circuits] == ["er-b"]


def test_pairs_on_several_circuits_are_each_carried_by_their_own_circuit() -> None:
    er_a, er_b = circuit("er-a"), circuit("er-b")
    res: list[Resource] = [er_a, er_b]
    for i, er in ((1, er_a), (2, er_a), (3, er_b), (4, er_b)):
        hub = vnet(f"hub-0{i}", f"10.{i}.0.0/16")
        gw = gateway(f"ergw-0{i}", hub, allow_remote=True)
        res += [hub, gw, connection(f"conn-0{i}", gw, er["id"])]
    result = pairs_of(res)
    assert names(result) == {("hub-01", "hub-02"), ("hub-03", "hub-04")}
    assert [c.name for c in pair(result, "hub-03", "hub-04").circuits] == ["er-b"]


def test_pair_sharing_two_circuits_lists_both() -> None:
    res = two_hubs()
    er_b = circuit("er-b")
    res += [er_b, connection("conn-01b", by_name(res, "ergw-01"), er_b["id"]),
            connection("conn-02b", by_name(res, "ergw-02"), er_b["id"])]
    assert [c.name for c in pair(pairs_of(res), "hub-01", "hub-02").circuits] == ["er-b", "er-lab"]


def test_circuit_not_in_the_snapshot_is_assumed_usable_with_a_warning() -> None:
    res = [r for r in two_hubs() if r["name"] != "er-lab"]
    only = pair(pairs_of(res), "hub-01", "hub-02")
    assert any("er-lab" in w and "not in the snapshot" in w and "assumed usable" in w for w in only.warnings)


@pytest.mark.parametrize("provider_state", ["NotProvisioned", "Provisioning", "Deprovisioning"])
def test_circuit_not_provisioned_carries_nothing(provider_state: str) -> None:
    res = two_hubs()
    by_name(res, "er-lab")["properties"]["serviceProviderProvisioningState"] = provider_state
    assert names(pairs_of(res)) == set()


def test_circuit_with_private_peering_disabled_carries_nothing() -> None:
    res = two_hubs()
    res[0] = circuit("er-lab", private_peering="Disabled")
    assert names(pairs_of(res)) == set()


def test_circuit_without_private_peering_carries_nothing() -> None:
    res = two_hubs()
    res[0] = circuit("er-lab", private_peering=None)  # peerings reported, none private
    assert names(pairs_of(res)) == set()


def test_circuit_reporting_no_peerings_is_assumed_enabled_with_a_warning() -> None:
    res = two_hubs()
    del by_name(res, "er-lab")["properties"]["peerings"]
    only = pair(pairs_of(res), "hub-01", "hub-02")
    assert any("er-lab" in w and "private peering assumed enabled" in w for w in only.warnings)


def test_global_reach_creates_no_pair_but_a_topology_warning() -> None:
    result = pairs_of(chain_over_two_circuits(global_reach=True))
    assert ("hub-01", "hub-03") not in names(result)
    gr = [w for w in result.warnings if "Global Reach" in w]
    assert len(gr) == 1
    assert "ergw-01" in gr[0] and "ergw-03" in gr[0]


def test_global_reach_configured_on_either_circuit_is_reported() -> None:
    res = chain_over_two_circuits()
    er_a = by_name(res, "er-a")
    res[res.index(by_name(res, "er-b"))] = circuit("er-b", global_reach_to=[er_a["id"]])
    result = pairs_of(res)
    assert ("hub-01", "hub-03") not in names(result)
    assert any("Global Reach" in w and "ergw-01" in w and "ergw-03" in w for w in result.warnings)


def test_global_reach_as_a_stand_alone_circuit_connection_is_reported() -> None:
    res = chain_over_two_circuits()
    res.append(circuit_global_reach(by_name(res, "er-a"), by_name(res, "er-b")))
    assert any("Global Reach" in w for w in pairs_of(res).warnings)


def test_global_reach_between_blocked_gateways_is_not_mentioned() -> None:
    res = chain_over_two_circuits(global_reach=True)
    by_name(res, "ergw-03")["properties"]["allowRemoteVnetTraffic"] = False
    assert not any("Global Reach" in w for w in pairs_of(res).warnings)


def test_circuits_without_global_reach_have_no_global_reach_warning() -> None:
    assert not any("Global Reach" in w for w in pairs_of(chain_over_two_circuits()).warnings)


# -- Virtual WAN --------------------------------------------------------------------------------------------------

def vnet_and_wan_hub(*, allow_wan: bool | None = True, allow_non_wan: bool | None = True,
                     allow_remote: bool | None = False) -> list[Resource]:
    """hub-01 (VNet gateway ergw-01) and vnet-w1 attached to Virtual WAN hub vhub-1 (ER gateway wgw-1), one circuit."""
    er = circuit("er-lab")
    hub1 = vnet("hub-01", "10.1.0.0/16")
    gw1 = gateway("ergw-01", hub1, allow_remote=allow_remote, allow_wan=allow_wan)
    vh = virtual_hub("vhub-1", "wan-a")
    w1 = vnet("vnet-w1", "10.51.0.0/16")
    return [er, hub1, gw1, connection("conn-01", gw1, er["id"]), vh, w1, hub_connection(vh, w1),
            wan_gateway("wgw-1", vh, [er["id"]], allow_non_wan=allow_non_wan)]


def test_vnet_gateway_and_wan_hub_allowing_each_other_pair_over_the_circuit() -> None:
    result = pairs_of(vnet_and_wan_hub())
    assert names(result) == {("hub-01", "vnet-w1")}
    assert {g.name for g in pair(result, "hub-01", "vnet-w1").gateways} == {"ergw-01", "wgw-1"}


def test_vnet_gateway_without_allow_virtual_wan_traffic_does_not_reach_the_wan_hub() -> None:
    assert names(pairs_of(vnet_and_wan_hub(allow_wan=False, allow_remote=True))) == set()


def test_wan_hub_without_allow_non_virtual_wan_traffic_does_not_reach_the_vnet_gateway() -> None:
    assert names(pairs_of(vnet_and_wan_hub(allow_non_wan=False))) == set()


def test_absent_virtual_wan_flags_are_assumed_allowed_with_warnings() -> None:
    only = pair(pairs_of(vnet_and_wan_hub(allow_wan=None, allow_non_wan=None)), "hub-01", "vnet-w1")
    assert any("ergw-01" in w and "allowVirtualWanTraffic" in w and FLAG_DOUBT in w for w in only.warnings)
    assert any("wgw-1" in w and "allowNonVirtualWanTraffic" in w and FLAG_DOUBT in w for w in only.warnings)


def test_vnets_of_one_wan_hub_are_not_a_pair() -> None:
    res = vnet_and_wan_hub()
    w2 = vnet("vnet-w2", "10.52.0.0/16")
    res += [w2, hub_connection(by_name(res, "vhub-1"), w2)]
    result = names(pairs_of(res))
    assert ("vnet-w1", "vnet-w2") not in result
    assert {("hub-01", "vnet-w1"), ("hub-01", "vnet-w2")} <= result


def two_wan_hubs(wan1: str, wan2: str) -> list[Resource]:
    er = circuit("er-lab")
    out: list[Resource] = [er]
    for i, wan in ((1, wan1), (2, wan2)):
        vh = virtual_hub(f"vhub-{i}", wan)
        w = vnet(f"vnet-w{i}", f"10.5{i}.0.0/16")
        out += [vh, w, hub_connection(vh, w), wan_gateway(f"wgw-{i}", vh, [er["id"]], allow_non_wan=True)]
    return out


def test_hubs_of_the_same_virtual_wan_are_not_an_er_pair() -> None:
    assert names(pairs_of(two_wan_hubs("wan-a", "wan-a"))) == set()


def test_hubs_of_different_virtual_wans_pair_with_a_warning() -> None:
    only = pair(pairs_of(two_wan_hubs("wan-a", "wan-b")), "vnet-w1", "vnet-w2")
    assert any("Virtual WAN" in w and "uncertain" in w for w in only.warnings)


# -- provisioning states ------------------------------------------------------------------------------------------

def set_state(res: list[Resource], name: str, state: str) -> None:
    by_name(res, name)["properties"]["provisioningState"] = state


def set_peering_state(res: list[Resource], vnet_name: str, state: str) -> None:
    for p in by_name(res, vnet_name)["properties"]["virtualNetworkPeerings"]:
        p["properties"]["provisioningState"] = state


def set_wan_link_state(res: list[Resource], wgw_name: str, state: str) -> None:
    for c in by_name(res, wgw_name)["properties"]["expressRouteConnections"]:
        c["properties"]["provisioningState"] = state


def set_hub_connection_state(res: list[Resource], vnet_name: str, state: str) -> None:
    by_name(res, f"conn-{vnet_name}")["properties"]["provisioningState"] = state


# (scenario, pair to look at, how to put one resource it depends on into a state)
DEPENDENCIES = [
    pytest.param(hubs_with_spokes, ("hub-01", "hub-02"), lambda r, s: set_state(r, "ergw-01", s), id="gateway"),
    pytest.param(hubs_with_spokes, ("hub-01", "hub-02"), lambda r, s: set_state(r, "conn-02", s), id="connection"),
    pytest.param(hubs_with_spokes, ("hub-01", "hub-02"), lambda r, s: set_state(r, "er-lab", s), id="circuit"),
    pytest.param(hubs_with_spokes, ("spoke-1a", "spoke-2a"), lambda r, s: set_peering_state(r, "spoke-1a", s),
                 id="spoke_peering"),
    pytest.param(hubs_with_spokes, ("spoke-1a", "spoke-2a"), lambda r, s: set_peering_state(r, "hub-01", s),
                 id="hub_peering"),
    pytest.param(vnet_and_wan_hub, ("hub-01", "vnet-w1"), lambda r, s: set_hub_connection_state(r, "vnet-w1", s),
                 id="hub_connection"),
    pytest.param(vnet_and_wan_hub, ("hub-01", "vnet-w1"), lambda r, s: set_state(r, "wgw-1", s), id="wan_gateway"),
    pytest.param(vnet_and_wan_hub, ("hub-01", "vnet-w1"), lambda r, s: set_wan_link_state(r, "wgw-1", s),
                 id="wan_gateway_circuit_link"),
]


@pytest.mark.parametrize("state", ["Updating", "Creating", "Deleting", "updating"])
@pytest.mark.parametrize(("scenario", "looked_at", "put"), DEPENDENCIES)
def test_pair_depending_on_a_settling_resource_is_pending(scenario: Any, looked_at: tuple[str, str], put: Any,
                                                          state: str) -> None:
    res = scenario()
    put(res, state)
    assert pair(pairs_of(res), *looked_at).status == "pending"


@pytest.mark.parametrize(("scenario", "looked_at", "put"), DEPENDENCIES)
def test_pair_depending_on_succeeded_resources_is_confirmed(scenario: Any, looked_at: tuple[str, str],
                                                            put: Any) -> None:
    res = scenario()
    put(res, "Succeeded")
    assert pair(pairs_of(res), *looked_at).status == "confirmed"


@pytest.mark.parametrize(("scenario", "looked_at", "put"), DEPENDENCIES)
def test_pair_depending_on_a_failed_resource_carries_a_warning(scenario: Any, looked_at: tuple[str, str],
                                                               put: Any) -> None:
    res = scenario()
    put(res, "Failed")
    p = pair(pairs_of(res), *looked_at)
    assert p.status == "confirmed"
    assert any("Failed" in w for w in p.warnings)


def test_settling_spoke_peering_leaves_the_hub_pair_confirmed() -> None:
    res = hubs_with_spokes()
    set_peering_state(res, "spoke-1a", "Updating")
    result = pairs_of(res)
    assert pair(result, "hub-01", "hub-02").status == "confirmed"
    assert pair(result, "spoke-1a", "hub-02").status == "pending"


def test_pair_with_a_confirmed_route_and_a_pending_route_is_confirmed() -> None:
    res = two_hubs()
    er_b = circuit("er-b", state="Updating")
    res += [er_b, connection("conn-01b", by_name(res, "ergw-01"), er_b["id"]),
            connection("conn-02b", by_name(res, "ergw-02"), er_b["id"])]
    assert pair(pairs_of(res), "hub-01", "hub-02").status == "confirmed"


# -- dangling references ------------------------------------------------------------------------------------------

def test_connection_to_a_missing_gateway_is_a_warning_not_a_crash() -> None:
    res = two_hubs()
    res = [r for r in res if r["name"] != "ergw-02"]
    result = pairs_of(res)
    assert names(result) == set()
    assert any("conn-02" in w and "ergw-02" in w and "not in the snapshot" in w for w in result.warnings)


def test_gateway_whose_vnet_is_missing_is_a_warning_and_its_vnet_still_counts_by_id() -> None:
    res = [r for r in two_hubs() if r["name"] != "hub-02"]
    result = pairs_of(res)
    assert any("ergw-02" in w and "hub-02" in w and "not in the snapshot" in w for w in result.warnings)
    assert names(result) == {("hub-01", "hub-02")}  # never hide a possible path


def test_hub_offering_transit_to_a_missing_spoke_is_a_warning() -> None:
    res = two_hubs()
    hub1 = by_name(res, "hub-01")
    ghost = vnet("spoke-ghost", "10.99.0.0/16")
    hub1["properties"]["virtualNetworkPeerings"].append(peering(hub1, ghost, gateway_transit=True))
    result = pairs_of(res)
    assert names(result) == {("hub-01", "hub-02")}
    assert any("spoke-ghost" in w and "not in the snapshot" in w for w in result.warnings)


def test_wan_gateway_whose_hub_is_missing_is_a_warning_not_a_crash() -> None:
    res = [r for r in vnet_and_wan_hub() if r["name"] != "vhub-1"]
    result = pairs_of(res)
    assert any("wgw-1" in w and "vhub-1" in w for w in result.warnings)


def test_connection_without_gateway_or_peer_is_a_warning() -> None:
    res = two_hubs()
    del by_name(res, "conn-02")["properties"]["peer"]
    result = pairs_of(res)
    assert names(result) == set()
    assert any("conn-02" in w for w in result.warnings)


def test_gateway_without_gateway_subnet_is_a_warning() -> None:
    res = two_hubs()
    by_name(res, "ergw-02")["properties"]["ipConfigurations"] = []
    result = pairs_of(res)
    assert names(result) == set()
    assert any("ergw-02" in w and "GatewaySubnet" in w for w in result.warnings)


# -- ids: case-insensitive, reported in the resource's own casing --------------------------------------------------

def test_references_in_another_casing_still_match() -> None:
    res = hubs_with_spokes()
    by_name(res, "conn-02")["properties"]["virtualNetworkGateway1"]["id"] = by_name(res, "ergw-02")["id"].upper()
    by_name(res, "conn-01")["properties"]["peer"]["id"] = by_name(res, "er-lab")["id"].lower()
    for p in by_name(res, "spoke-1a")["properties"]["virtualNetworkPeerings"]:
        p["properties"]["remoteVirtualNetwork"]["id"] = p["properties"]["remoteVirtualNetwork"]["id"].upper()
    assert names(pairs_of(res)) == names(pairs_of(hubs_with_spokes()))


def test_pair_reports_the_casing_of_the_resources_not_of_references() -> None:
    res = two_hubs()
    for gw in ("ergw-01", "ergw-02"):
        ipc = by_name(res, gw)["properties"]["ipConfigurations"][0]["properties"]["subnet"]
        ipc["id"] = ipc["id"].upper()
    for conn in ("conn-01", "conn-02"):
        by_name(res, conn)["properties"]["peer"]["id"] = by_name(res, "er-lab")["id"].upper()
    only = pair(pairs_of(res), "hub-01", "hub-02")
    assert only.a.value == by_name(res, "hub-01")["id"]
    assert only.b.value == by_name(res, "hub-02")["id"]
    assert [c.value for c in only.circuits] == [by_name(res, "er-lab")["id"]]


# -- diff: causes, groups, pending ---------------------------------------------------------------------------------

def test_enabling_the_second_gateway_opens_the_pair_with_the_flag_as_cause() -> None:
    d = diff_of(lab(enabled=(2,)), lab(enabled=(1, 2)))
    assert changed_names(d.opened) == {("hub-01", "hub-02")}
    assert d.closed == ()
    assert [c.text for c in d.opened[0].causes] == ["ergw-01 allowRemoteVnetTraffic false -> true"]
    assert d.opened[0].pending is False


def test_enabling_one_gateway_alone_opens_nothing() -> None:
    assert diff_of(lab(), lab(enabled=(2,))).empty


def test_diff_of_a_topology_with_itself_is_empty() -> None:
    res = hubs_with_spokes()
    assert diff_of(res, copy.deepcopy(res)).empty


def test_removed_connection_closes_its_pairs_under_one_cause() -> None:
    before = lab(enabled=(1, 2, 3))
    after = [r for r in before if r["name"] != "conn-03"]
    d = diff_of(before, after)
    assert d.opened == ()
    assert changed_names(d.closed) == {("hub-01", "hub-03"), ("hub-02", "hub-03")}
    for ch in d.closed:
        assert [c.text for c in ch.causes] == ["connection conn-03 removed"]
    groups = d.groups()
    assert len(groups) == 1
    causes, opened, closed = groups[0]
    assert [c.text for c in causes] == ["connection conn-03 removed"]
    assert opened == [] and len(closed) == 2


def test_disconnected_peering_is_named_with_its_direction_and_states() -> None:
    before = hubs_with_spokes()
    after = copy.deepcopy(before)
    for p in by_name(after, "spoke-1a")["properties"]["virtualNetworkPeerings"]:
        p["properties"]["peeringState"] = "Disconnected"
    d = diff_of(before, after)
    assert changed_names(d.closed) == {("hub-02", "spoke-1a"), ("spoke-1a", "spoke-2a")}
    for ch in d.closed:
        assert [c.text for c in ch.causes] == ["peering spoke-1a -> hub-01 Connected -> Disconnected"]


def test_pairs_with_different_causes_are_in_different_groups() -> None:
    before = lab(enabled=(1, 2))
    after = copy.deepcopy(lab(enabled=(1, 2, 3)))
    after = [r for r in after if r["name"] != "conn-02"]
    d = diff_of(before, after)
    assert changed_names(d.opened) == {("hub-01", "hub-03")}
    assert changed_names(d.closed) == {("hub-01", "hub-02")}
    texts = sorted(tuple(c.text for c in causes) for causes, _, _ in d.groups())
    assert texts == [("connection conn-02 removed",), ("ergw-03 allowRemoteVnetTraffic false -> true",)]


def test_closed_pair_is_pending_while_a_resource_it_depended_on_is_settling() -> None:
    before = lab(enabled=(1, 2))
    after = lab(enabled=(2,))
    set_state(after, "ergw-01", "Updating")
    d = diff_of(before, after)
    assert changed_names(d.closed) == {("hub-01", "hub-02")}
    assert d.closed[0].pending is True


def test_closed_pair_is_confirmed_when_everything_has_settled() -> None:
    d = diff_of(lab(enabled=(1, 2)), lab(enabled=(2,)))
    assert d.closed[0].pending is False
    assert [c.text for c in d.closed[0].causes] == ["ergw-01 allowRemoteVnetTraffic true -> false"]


def test_opened_pair_is_pending_while_its_connection_is_creating() -> None:
    before = [r for r in lab(enabled=(1, 2)) if r["name"] != "conn-02"]
    after = lab(enabled=(1, 2))
    set_state(after, "conn-02", "Creating")
    d = diff_of(before, after)
    assert changed_names(d.opened) == {("hub-01", "hub-02")}
    assert d.opened[0].pending is True
    assert [c.text for c in d.opened[0].causes] == ["connection conn-02 added"]


def test_disabled_admin_state_is_named_as_the_cause() -> None:
    before = lab(enabled=(1, 2))
    after = copy.deepcopy(before)
    by_name(after, "ergw-02")["properties"]["adminState"] = "Disabled"
    d = diff_of(before, after)
    assert [c.text for c in d.closed[0].causes] == ["ergw-02 adminState null -> Disabled"]


def test_circuit_deprovisioning_is_named_as_the_cause() -> None:
    before = lab(enabled=(1, 2))
    after = copy.deepcopy(before)
    by_name(after, "er-lab")["properties"]["serviceProviderProvisioningState"] = "Deprovisioning"
    d = diff_of(before, after)
    assert [c.text for c in d.closed[0].causes] == [
        "circuit er-lab serviceProviderProvisioningState Provisioned -> Deprovisioning"]



def test_a_reference_spelled_in_another_casing_is_not_a_cause() -> None:
    before = lab(enabled=(2,))
    after = recase_references(lab(enabled=(1, 2)), str.upper)
    d = diff_of(before, after)
    assert [c.text for c in d.opened[0].causes] == ["ergw-01 allowRemoteVnetTraffic false -> true"]


@pytest.mark.parametrize("failed_first", [True, False])
def test_a_healthy_second_connection_to_the_circuit_makes_the_link_certain(failed_first: bool) -> None:
    res = two_hubs()
    extra = connection("conn-02-old", by_name(res, "ergw-02"), by_name(res, "er-lab")["id"], state="Failed")
    res = [extra, *res] if failed_first else [*res, extra]
    assert pair(pairs_of(res), "hub-01", "hub-02").warnings == ()


def test_two_gateways_in_one_hub_never_pair_the_hub_with_itself_or_its_spokes() -> None:
    res = hubs_with_spokes()
    hub1, er = by_name(res, "hub-01"), by_name(res, "er-lab")
    twin = gateway("ergw-01b", hub1, allow_remote=True)
    res += [twin, connection("conn-01b", twin, er["id"])]
    result = pairs_of(res)
    assert names(result) == names(pairs_of(hubs_with_spokes()))
    assert [g.name for g in pair(result, "hub-01", "hub-02").gateways] == ["ergw-01", "ergw-01b", "ergw-02"]


def test_pairs_read_as_a_mapping_in_key_order() -> None:
    result = pairs_of(hubs_with_spokes())
    keys = list(result.pairs)
    assert keys == sorted(keys) and len(result.pairs) == len(keys) == 4
    for key in keys:
        assert key in result.pairs and result.pairs[key].key == key
        assert (key[1], key[0]) not in result.pairs  # one entry per pair, a before b
        assert result.pairs.get((key[1], key[0])) is None
    assert dict(result.pairs) == {p.key: p for p in result.pairs.values()}
    with pytest.raises(KeyError):
        result.pairs["not", "a pair"]
