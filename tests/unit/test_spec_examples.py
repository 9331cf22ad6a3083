"""Real material through the reader and the rules: the REST specification's examples and the docs' CLI output.

Expected answers are written by hand from DESIGN.md's transit rules (see tests/fixtures/azure-rest-api-specs/README).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.core.diff import diff_pairs
from shared.core.explain import explain_pair, resolve_vnet
from shared.core.model import ResourceId, Topology
from shared.core.snapshot import load_snapshot_file, parse_resources, read_snapshot, resources_of, transit_projection
from shared.core.transit import compute_pairs, endpoints_of
from tests.spec_examples import (
    NET,
    SPEC,
    as_arm_holds_it,
    body,
    circuit_id,
    circuits,
    er_connection,
    global_reach,
    hubs_files,
    private_peering,
    retarget,
    vnet_id,
    wan_files,
    write_files,
)

DOCS = SPEC.parent / "azure-docs"


def resources(files: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for doc in files.values() for r in resources_of(doc)]


def topology_of(files: dict[str, Any]) -> Topology:
    return parse_resources(resources(files))


def pair_names(topology: Topology) -> list[tuple[str, str]]:
    return sorted((p.a.name, p.b.name) for p in compute_pairs(topology).pairs.values())


# -- every stored body is a snapshot on its own -------------------------------------------------------------------

@pytest.mark.parametrize("path", sorted([*SPEC.glob("*.json"), *DOCS.glob("az-*.json")]), ids=lambda p: p.name)
def test_every_stored_resource_body_reads_as_a_snapshot_with_a_type_for_each_resource(path: Path) -> None:
    loaded = load_snapshot_file(path)
    assert loaded and all(isinstance(r["type"], str) and r["type"] for r in loaded)
    compute_pairs(parse_resources(loaded))  # no exception


def test_a_peering_body_without_type_is_a_vnet_peering_given_apart() -> None:
    (peering,) = load_snapshot_file(SPEC / "VirtualNetworkPeeringGet.json")
    assert peering["type"] == "Microsoft.Network/virtualNetworks/virtualNetworkPeerings"
    topology = parse_resources([peering])
    assert any("peer" in w and "vnet1" in w and "not in the snapshot" in w for w in topology.warnings)


def test_the_hub_connection_example_without_type_is_read_as_a_hub_connection() -> None:
    topology = read_snapshot(SPEC / "HubVirtualNetworkConnectionGet.json")
    (hc,) = topology.hub_connections.values()
    assert hc.id.name == "connection1" and hc.hub.name == "virtualHub1" and hc.remote_vnet.name == "vnet1"
    assert any("virtualHub1" in w and "not in the snapshot" in w for w in topology.warnings)


def test_an_express_route_connection_given_apart_is_merged_into_its_virtual_wan_gateway() -> None:
    topology = read_snapshot([SPEC / "ExpressRouteGatewayGet.json", SPEC / "ExpressRouteConnectionGet.json"])
    (wgw,) = topology.wan_gateways.values()
    assert wgw.allow_non_virtual_wan_traffic is False
    assert [c.value for c in wgw.circuits] == [
        "/subscriptions/subid/resourceGroups/resourceGroupName/providers/Microsoft.Network/expressRouteCircuits/"
        "circuitName"]
    assert not any("connectionName" in w for w in topology.warnings)


def test_an_express_route_connection_without_its_gateway_is_one_warning_naming_it() -> None:
    topology = read_snapshot(SPEC / "ExpressRouteConnectionGet.json")
    named = [w for w in topology.warnings if "connectionName" in w]
    assert len(named) == 1 and "expressRouteGatewayName" in named[0] and "not in the snapshot" in named[0]


def test_circuit_peerings_given_apart_are_merged_into_their_circuit() -> None:
    alone = read_snapshot(SPEC / "ExpressRouteCircuitGet.json").circuits
    merged = read_snapshot([SPEC / "ExpressRouteCircuitGet.json",
                            SPEC / "ExpressRouteCircuitPeeringList.json"]).circuits
    (c_alone,), (c_merged,) = alone.values(), merged.values()
    assert (c_alone.peerings_reported, c_alone.private_peering_state) == (True, None)  # `peerings: []`
    assert c_merged.private_peering_state == "Enabled" and c_merged.circuit_provisioning_state == "Enabled"
    assert not c_merged.usable  # serviceProviderProvisioningState NotProvisioned in this example


def test_a_microsoft_peering_alone_gives_no_private_peering() -> None:
    topology = read_snapshot([SPEC / "ExpressRouteCircuitGet.json", SPEC / "ExpressRouteCircuitPeeringGet.json"])
    (circuit,) = topology.circuits.values()
    assert circuit.peerings_reported and circuit.private_peering_state is None


def test_circuit_peerings_of_a_circuit_not_in_the_snapshot_are_one_warning_naming_them() -> None:
    topology = read_snapshot(SPEC / "ExpressRouteCircuitPeeringList.json")
    assert topology.circuits == {}
    named = [w for w in topology.warnings if "circuitName" in w]
    assert len(named) == 1 and "MicrosoftPeering" in named[0] and "AzurePrivatePeering" in named[0]


def test_the_vpn_gateway_and_ipsec_connection_examples_carry_no_transit() -> None:
    topology = read_snapshot([SPEC / "VirtualNetworkGatewayGet.json", SPEC / "VirtualNetworkGatewayConnectionGet.json"])
    (gw,) = topology.gateways.values()
    assert not gw.is_expressroute and gw.allow_remote_vnet_traffic is False
    assert endpoints_of(topology) == {} and compute_pairs(topology).pairs == {}


def test_a_child_type_the_rules_do_not_read_gets_one_warning_naming_it_and_no_silent_zero() -> None:
    nat_rule = body("VirtualNetworkGatewayGet.json")["properties"]["natRules"][0]  # given apart, no type
    topology = parse_resources(resources_of(nat_rule))
    assert topology.warnings == (
        "snapshot: Microsoft.Network/virtualNetworkGateways/natRules natRule1 is not read by the transit rules; "
        "ignored",
        "snapshot: none of its 1 resource(s) is of a type the transit rules read (VNets, gateways, connections, "
        "circuits, Virtual WAN hubs and gateways): no pair can be found",
    )


# -- the hub topology (two ExpressRoute gateways on circuitName1, a spoke behind vpngw) -----------------------------

def test_hub_topology_pairs_by_hand() -> None:
    # vpngw's domain: vnet1 and its spoke vnet2; vpngw3's: vnet3; both allow remote VNet traffic on circuitName1.
    topology = topology_of(hubs_files())
    assert pair_names(topology) == [("vnet1", "vnet3"), ("vnet2", "vnet3")]
    pairs = compute_pairs(topology)
    assert pairs.warnings == () and all(p.warnings == () and p.status == "confirmed" for p in pairs.pairs.values())
    assert {g.name for p in pairs.pairs.values() for g in p.gateways} == {"vpngw", "vpngw3"}


def test_without_the_private_peering_the_circuits_empty_peerings_close_every_pair() -> None:
    assert pair_names(topology_of(hubs_files(private_peering_apart=False))) == []


def test_a_peering_not_in_sync_warns_on_the_pairs_it_carries_only() -> None:
    pairs = compute_pairs(topology_of(hubs_files(spoke_sync="RemoteNotInSync"))).pairs.values()
    by_name = {(p.a.name, p.b.name): p.warnings for p in pairs}
    assert by_name == {
        ("vnet1", "vnet3"): (),
        ("vnet2", "vnet3"): ("peering vnet2 -> vnet1 is RemoteNotInSync, not FullyInSync: the prefixes advertised "
                             "for the spoke may be stale until the peering is synced",),
    }


@pytest.mark.parametrize("state", ["Disabled", "disabled"])
def test_a_circuit_not_enabled_is_unusable(state: str) -> None:
    files = hubs_files()
    files["circuits.json"] = circuits(circuitName1={"circuitProvisioningState": state})
    topology = topology_of(files)
    assert pair_names(topology) == []
    vnet1, vnet3 = resolve_vnet(topology, "vnet1"), resolve_vnet(topology, "vnet3")
    assert f"circuit circuitName1 circuitProvisioningState is {state}, not Enabled" in explain_pair(
        topology, vnet1, vnet3).missing


def test_disabling_the_circuit_is_the_cause_of_the_closed_pairs() -> None:
    before = topology_of(hubs_files())
    files = hubs_files()
    files["circuits.json"] = circuits(circuitName1={"circuitProvisioningState": "Disabled"})
    after = topology_of(files)
    diff = diff_pairs(compute_pairs(before), compute_pairs(after), before_topology=before, after_topology=after)
    assert [(c.pair.a.name, c.pair.b.name) for c in diff.closed] == [("vnet1", "vnet3"), ("vnet2", "vnet3")]
    assert {c.text for ch in diff.closed for c in ch.causes} == {
        "circuit circuitName1 circuitProvisioningState Enabled -> Disabled"}


def _global_reach_files(*, recorded_on: str) -> dict[str, Any]:
    files = hubs_files()
    files["circuits.json"] = circuits(circuitName2={"serviceProviderProvisioningState": "Provisioned"})
    files["circuitName2-private-peering.json"] = private_peering("circuitName2")
    files["connS2S3.json"] = er_connection("connS2S3", "vpngw3", "circuitName2")
    other = "circuitName2" if recorded_on == "circuitName1" else "circuitName1"
    files["global-reach.json"] = global_reach(recorded_on, other)
    return files


@pytest.mark.parametrize("recorded_on", ["circuitName1", "circuitName2"])
def test_global_reach_read_from_either_side_makes_no_pair_and_warns_naming_both_circuits(recorded_on: str) -> None:
    pairs = compute_pairs(topology_of(_global_reach_files(recorded_on=recorded_on)))
    assert pairs.pairs == {}
    assert [w for w in pairs.warnings if "Global Reach" in w] == [
        "vpngw (circuitName1) and vpngw3 (circuitName2): the circuits are joined by Global Reach, which does not "
        "carry VNet-to-VNet traffic; not counted as a pair"]


def test_global_reach_recorded_only_on_a_circuit_outside_the_snapshot_is_still_read() -> None:
    files = _global_reach_files(recorded_on="circuitName1")
    gr = files["global-reach.json"]
    gr["id"] = gr["id"].replace(circuit_id("circuitName1"), circuit_id("circuitX"))
    gr["properties"]["expressRouteCircuitPeering"]["id"] = circuit_id("circuitX") + "/peerings/AzurePrivatePeering"
    topology = topology_of(files)
    (c2,) = (c for c in topology.circuits.values() if c.id.name == "circuitName2")
    assert [c.name for c in c2.global_reach] == ["circuitX"]


def test_explain_names_global_reach_when_the_sides_share_no_circuit() -> None:
    topology = topology_of(_global_reach_files(recorded_on="circuitName2"))
    text = explain_pair(topology, resolve_vnet(topology, "vnet1"), resolve_vnet(topology, "vnet3")).text()
    assert "circuits circuitName1 and circuitName2 are joined by Global Reach" in text
    assert all(not line.rstrip().endswith(":") for line in text.splitlines())


# -- explain always says why ------------------------------------------------------------------------------------------

def test_explain_without_private_peering_gives_a_reason_on_every_line() -> None:
    topology = topology_of(hubs_files(private_peering_apart=False))
    text = explain_pair(topology, resolve_vnet(topology, "vnet1"), resolve_vnet(topology, "vnet3")).text()
    assert text == (
        "vnet1 <-> vnet3: not an ER-transit pair\n"
        "- via circuit circuitName1: circuit circuitName1 has no AzurePrivatePeering\n"
        "- via circuit circuitName1, vpngw <-> vpngw3: both gateways would carry it, but circuit circuitName1 "
        "cannot (above)")


@pytest.mark.parametrize(("files", "a", "b"), [
    (hubs_files(), "vnet1", "vnet2"), (hubs_files(), "vnet2", "vnet3"),
    (hubs_files(private_peering_apart=False), "vnet2", "vnet3"), (wan_files(), "vnet1", "vnet4"),
    (wan_files(allow_non_wan=False), "vnet4", "vnet1"),
    (_global_reach_files(recorded_on="circuitName1"), "vnet2", "vnet3"),
])
def test_explain_has_no_reason_line_ending_with_an_empty_colon(files: dict[str, Any], a: str, b: str) -> None:
    topology = topology_of(files)
    ex = explain_pair(topology, resolve_vnet(topology, a), resolve_vnet(topology, b))
    text = ex.text()
    assert len(text.splitlines()) >= 2
    for line in text.splitlines():
        assert not line.rstrip().endswith(":") and ": ;" not in line, line
    doc = ex.to_json()
    assert all(r["why"] for c in doc["circuits"] for r in c["routes"])
    assert all(c["why"] for c in doc["carriers"])


def test_explain_an_open_pair_says_which_flags_let_it_through() -> None:
    topology = topology_of(wan_files())
    ex = explain_pair(topology, resolve_vnet(topology, "vnet1"), resolve_vnet(topology, "vnet4"))
    assert ex.open
    assert ex.text().splitlines()[1] == (
        "- via circuit circuitName1: vpngw <-> expressRouteGatewayName: vpngw allows Virtual WAN traffic (true) and "
        "expressRouteGatewayName allows non-Virtual WAN traffic (true)")


# -- Virtual WAN ----------------------------------------------------------------------------------------------------

def test_virtual_wan_topology_pairs_by_hand() -> None:
    # vpngw allows Virtual WAN traffic, the hub's ER gateway allows non-Virtual WAN traffic, both on circuitName1.
    topology = topology_of(wan_files())
    assert pair_names(topology) == [("vnet1", "vnet4")]
    (pair,) = compute_pairs(topology).pairs.values()
    assert [g.name for g in pair.gateways] == ["expressRouteGatewayName", "vpngw"] and pair.warnings == ()
    assert pair_names(topology_of(wan_files(allow_non_wan=False))) == []


# -- shapes: one body, CLI output, folder, projection ------------------------------------------------------------------

def test_docs_cli_output_of_a_circuit_and_its_private_peering_reads_as_arm_shape() -> None:
    circuit = json.loads((DOCS / "az-network-express-route-show.json").read_text(encoding="utf-8"))
    peering = json.loads((DOCS / "az-network-express-route-peering-show.json").read_text(encoding="utf-8"))
    # the docs print the peering under another subscription than its circuit: join them (fixtures README)
    peering = retarget(peering, {"abcdef12-3456-7890-abcd-ef1234567890": "81ab786c-56eb-4a4d-bb5f-f60329772466"})
    (c,) = parse_resources([*resources_of(circuit), *resources_of(peering)]).circuits.values()
    assert (c.service_provider_state, c.circuit_provisioning_state, c.private_peering_state) == (
        "Provisioned", "Enabled", "Enabled")
    assert c.usable
    (flat,) = resources_of(circuit)
    assert flat["properties"]["serviceProviderProvisioningState"] == "Provisioned" and flat["name"] == "MyCircuit"


def test_cli_flattened_resources_give_the_same_pairs_as_arm_bodies() -> None:
    def flatten(resource: dict[str, Any]) -> dict[str, Any]:
        """What `az network ... show` prints: the properties hoisted to the top level, sub-resources too."""
        out = {k: v for k, v in resource.items() if k != "properties"}
        for key, value in resource.get("properties", {}).items():
            out[key] = [flatten(x) if isinstance(x, dict) and "properties" in x else x for x in value] if isinstance(
                value, list) else value
        return out

    arm = as_arm_holds_it(hubs_files())
    flat = [flatten(r) for r in arm]
    assert pair_names(parse_resources(resources_of(flat))) == [("vnet1", "vnet3"), ("vnet2", "vnet3")]
    assert transit_projection(resources_of(flat)) == transit_projection(resources_of(arm))


def test_a_folder_of_bodies_and_the_same_resources_as_arm_holds_them_give_the_same_pairs(tmp_path: Path) -> None:
    folder = write_files(tmp_path / "hubs", hubs_files())
    merged = parse_resources(as_arm_holds_it(hubs_files()))
    assert pair_names(read_snapshot(folder)) == pair_names(merged) == [("vnet1", "vnet3"), ("vnet2", "vnet3")]


def test_the_projection_keeps_what_the_new_fields_decide() -> None:
    files = hubs_files(spoke_sync="RemoteNotInSync")
    files["circuits.json"] = circuits(circuitName1={"circuitProvisioningState": "Disabled"})
    full = resources(files)
    assert parse_resources(transit_projection(full)) == parse_resources(full)


def test_ids_of_the_builders_point_where_the_readme_says() -> None:
    topology = topology_of(hubs_files())
    assert ResourceId.parse(vnet_id("vnet2")) in topology.vnets
    assert {g.vnet.name for g in topology.gateways.values() if g.vnet} == {"vnet1", "vnet3"}
    assert NET.startswith("/subscriptions/subid/resourceGroups/rg1/")


def test_global_reach_the_cli_prints_as_peered_connections_is_read() -> None:
    circuit = json.loads((DOCS / "az-network-express-route-show.json").read_text(encoding="utf-8"))
    peering = json.loads((DOCS / "az-network-express-route-peering-show.json").read_text(encoding="utf-8"))
    peering = retarget(peering, {"abcdef12-3456-7890-abcd-ef1234567890": "81ab786c-56eb-4a4d-bb5f-f60329772466"})
    gr = body("ExpressRouteCircuitConnectionGet.json")  # printed by the CLI: its properties at the top level
    peering["peeredConnections"] = [{**{k: v for k, v in gr.items() if k != "properties"}, **gr["properties"]}]
    (c,) = parse_resources([*resources_of(circuit), *resources_of(peering)]).circuits.values()
    assert sorted(x.name for x in c.global_reach) == ["dedharcktlocal", "dedharcktremote"]


def test_a_gateway_or_connection_without_its_type_field_is_a_warning_not_a_silent_zero() -> None:
    gw, conn = body("VirtualNetworkGatewayGet.json"), body("VirtualNetworkGatewayConnectionGet.json")
    del gw["properties"]["gatewayType"], conn["properties"]["connectionType"]
    topology = parse_resources([*resources_of(gw), *resources_of(conn)])
    assert topology.warnings == (
        "snapshot: gateway vpngw reports no gatewayType; not counted as ExpressRoute",
        "snapshot: connection connS2S reports no connectionType; not counted as ExpressRoute",
    )
