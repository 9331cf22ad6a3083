"""Snapshot reading: every accepted form, case-insensitive ids and types, and clear errors on bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.core.model import ResourceId
from shared.core.snapshot import SnapshotError, load_snapshot_file, parse_resources, read_snapshot, resources_of
from shared.core.transit import compute_pairs
from tests.builders import Resource, circuit, connection, gateway, hub_and_spoke, lab, recase_references, vnet

RESOURCE_GRAPH_ANSWER = Path("/work/shared/fixtures/resource-graph-answer.json")
LAB = Path(__file__).resolve().parents[2] / "examples" / "lab"


def write(tmp_path: Path, doc: Any, name: str = "topology.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def pair_names(resources: list[Resource]) -> set[tuple[str, str]]:
    return {(p.a.name, p.b.name) for p in compute_pairs(parse_resources(resources)).pairs.values()}


# -- accepted forms -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("wrap", [
    pytest.param(lambda rs: rs, id="array"),
    pytest.param(lambda rs: {"value": rs}, id="arm_value"),
    pytest.param(lambda rs: {"count": len(rs), "data": rs, "skip_token": None, "total_records": len(rs)},
                 id="resource_graph_data"),
])
def test_every_snapshot_form_reads_the_same_topology(tmp_path: Path, wrap: Any) -> None:
    topology = read_snapshot(write(tmp_path, wrap(lab(enabled=(1, 2)))))
    assert sorted(v.name for v in topology.vnets.values()) == ["hub-01", "hub-02", "hub-03"]
    assert sorted(g.name for g in topology.gateways) == ["ergw-01", "ergw-02", "ergw-03"]
    assert sorted(c.name for c in topology.connections) == ["conn-01", "conn-02", "conn-03"]
    assert [c.name for c in topology.circuits] == ["er-lab"]
    assert {(p.a.name, p.b.name) for p in compute_pairs(topology).pairs.values()} == {("hub-01", "hub-02")}


def test_resource_graph_answer_reads_hub_spoke_gateway_connection_and_circuit() -> None:
    topology = read_snapshot(RESOURCE_GRAPH_ANSWER)
    assert sorted(v.name for v in topology.vnets.values()) == ["vnet-app", "vnet-hub"]
    hub = next(v for v in topology.vnets.values() if v.name == "vnet-hub")
    assert [p.remote_vnet.name for p in hub.peerings] == ["vnet-app"]
    assert hub.peerings[0].allow_gateway_transit is True
    (gw,) = topology.gateways.values()
    assert gw.is_expressroute and gw.allow_remote_vnet_traffic is True and gw.vnet == hub.id
    (conn,) = topology.connections.values()
    assert conn.is_expressroute and conn.gateway == gw.id
    (er,) = topology.circuits.values()
    assert conn.circuit == er.id and er.usable
    assert topology.warnings == ()


def test_resource_graph_spoke_is_behind_its_hub_gateway() -> None:
    from shared.core.transit import endpoints_of

    topology = read_snapshot(RESOURCE_GRAPH_ANSWER)
    (ep,) = endpoints_of(topology).values()
    assert sorted(v.name for v in ep.domain) == ["vnet-app", "vnet-hub"]


def test_the_lab_examples_read_without_warnings() -> None:
    for step in ("01-baseline", "02-enable-gw2", "03-enable-gw1"):
        topology = read_snapshot(LAB / step / "topology.json")
        assert len(topology.vnets) == 3 and topology.warnings == ()


def test_lower_case_types_are_recognised() -> None:
    resources = lab(enabled=(1, 2))
    for r in resources:
        r["type"] = r["type"].lower()
    assert pair_names(resources) == {("hub-01", "hub-02")}


def test_upper_case_types_are_recognised() -> None:
    resources = lab(enabled=(1, 2))
    for r in resources:
        r["type"] = r["type"].upper()
    assert pair_names(resources) == {("hub-01", "hub-02")}


@pytest.mark.parametrize("recase", [str.upper, str.lower, str.swapcase])
def test_references_match_ids_in_any_casing(recase: Any) -> None:
    resources = lab(enabled=(1, 2))
    hub1, s1 = resources[1], vnet("Spoke-1", "10.11.0.0/16")
    hub_and_spoke(hub1, s1)
    resources.append(s1)
    expected = {("hub-01", "hub-02"), ("hub-02", "Spoke-1")}
    assert pair_names(resources) == expected
    assert pair_names(recase_references(resources, recase)) == expected


def test_resource_id_compares_case_insensitively_and_keeps_its_casing() -> None:
    a = ResourceId.parse("/subscriptions/X/resourceGroups/RG/providers/Microsoft.Network/virtualNetworks/Hub-01/")
    b = ResourceId.parse("/SUBSCRIPTIONS/x/resourcegroups/rg/providers/microsoft.network/virtualnetworks/hub-01")
    assert a == b and hash(a) == hash(b)
    assert a.value.endswith("virtualNetworks/Hub-01") and a.name == "Hub-01"
    assert a.resource_group == "RG" and a.subscription == "X"


def test_embedded_and_stand_alone_peerings_are_both_read() -> None:
    hub, spoke = vnet("hub-01", "10.1.0.0/16"), vnet("spoke-1", "10.11.0.0/16")
    hub_and_spoke(hub, spoke)
    stand_alone = spoke["properties"].pop("virtualNetworkPeerings")
    spoke["properties"]["virtualNetworkPeerings"] = []
    topology = parse_resources([hub, spoke, *stand_alone])
    assert [p.remote_vnet.name for v in topology.vnets.values() if v.name == "spoke-1" for p in v.peerings] == [
        "hub-01"]
    assert [p.remote_vnet.name for v in topology.vnets.values() if v.name == "hub-01" for p in v.peerings] == [
        "spoke-1"]


def test_a_peering_both_embedded_and_stand_alone_is_read_once() -> None:
    hub, spoke = vnet("hub-01", "10.1.0.0/16"), vnet("spoke-1", "10.11.0.0/16")
    hub_and_spoke(hub, spoke)
    duplicate = json.loads(json.dumps(hub["properties"]["virtualNetworkPeerings"][0]))
    duplicate["id"] = duplicate["id"].upper()
    topology = parse_resources([hub, spoke, duplicate])
    assert len(topology.peerings()) == 2


def test_stand_alone_peering_of_a_missing_vnet_is_a_warning() -> None:
    hub, spoke = vnet("hub-01", "10.1.0.0/16"), vnet("spoke-1", "10.11.0.0/16")
    hub_and_spoke(hub, spoke)
    orphan = spoke["properties"]["virtualNetworkPeerings"][0]
    topology = parse_resources([hub, orphan])
    assert any("spoke-1" in w and "not in the snapshot" in w for w in topology.warnings)


def test_resources_of_other_types_are_ignored() -> None:
    resources: list[Resource] = [
        *lab(enabled=(1, 2)),
        {"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1",
         "type": "Microsoft.Compute/virtualMachines", "name": "vm1", "properties": {"hardwareProfile": {}}},
        {"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/publicIPAddresses/pip",
         "type": "Microsoft.Network/publicIPAddresses", "name": "pip"},
    ]
    topology = parse_resources(resources)
    assert len(topology.vnets) == 3 and topology.warnings == ()
    assert pair_names(resources) == {("hub-01", "hub-02")}


def test_resource_without_properties_is_read_with_defaults() -> None:
    topology = parse_resources([{"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/"
                                       "virtualNetworks/bare", "type": "Microsoft.Network/virtualNetworks"}])
    (bare,) = topology.vnets.values()
    assert bare.peerings == () and bare.address_prefixes == ()


@pytest.mark.parametrize(("field", "value"), [
    ("ipConfigurations", 5), ("ipConfigurations", "GatewaySubnet"), ("ipConfigurations", [None, 3]),
    ("allowRemoteVnetTraffic", "yes"), ("adminState", 0), ("gatewayType", ["ExpressRoute"]),
])
def test_a_gateway_with_oddly_typed_properties_does_not_crash(field: str, value: Any) -> None:
    resources = lab(enabled=(1, 2))
    next(r for r in resources if r["name"] == "ergw-01")["properties"][field] = value
    compute_pairs(parse_resources(resources))  # no exception


@pytest.mark.parametrize(("name", "path", "value"), [
    ("er-lab", ("properties", "peerings"), 7),
    ("er-lab", ("properties", "peerings"), [{"properties": {"peeringType": "AzurePrivatePeering", "connections": 3}}]),
    ("er-lab", ("properties", "peerings"), [{"name": "AzurePrivatePeering", "properties": None}]),
    ("er-lab", ("properties", "peerings"), [{"properties": {"connections": [{"properties": 1}, 2]}}]),
    ("hub-01", ("properties", "virtualNetworkPeerings"), {"id": "x"}),
    ("hub-01", ("properties", "virtualNetworkPeerings"), [{"id": 5, "properties": {"remoteVirtualNetwork": "x"}}]),
    ("hub-01", ("properties", "addressSpace"), {"addressPrefixes": "10.1.0.0/16"}),
    ("hub-01", ("tags",), ["not", "a", "map"]),
    ("conn-01", ("properties", "peer"), "er-lab"),
    ("conn-01", ("properties",), None),
])
def test_oddly_typed_fields_do_not_crash(name: str, path: tuple[str, ...], value: Any) -> None:
    resources = lab(enabled=(1, 2))
    node = next(r for r in resources if r["name"] == name)
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    compute_pairs(parse_resources(resources))  # no exception


def test_virtual_wan_shapes_with_odd_types_do_not_crash() -> None:
    from tests.builders import hub_connection, virtual_hub, wan_gateway

    er = circuit("er-lab")
    vh = virtual_hub("vhub-1", "wan-a")
    vh["properties"]["virtualNetworkConnections"] = 4
    w = vnet("vnet-w1", "10.51.0.0/16")
    wgw = wan_gateway("wgw-1", vh, [er["id"]], allow_non_wan=True)
    wgw["properties"]["expressRouteConnections"].append({"properties": 3})
    compute_pairs(parse_resources([er, vh, w, hub_connection(vh, w), wgw]))


# -- bad input ----------------------------------------------------------------------------------------------------

def test_not_json_names_the_file_and_the_position(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('[\n  {"id": "x",\n  oops\n]', encoding="utf-8")
    with pytest.raises(SnapshotError) as err:
        read_snapshot(path)
    message = str(err.value)
    assert str(path) in message and "not JSON" in message and "line 3" in message


def test_empty_file_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_text("", encoding="utf-8")
    with pytest.raises(SnapshotError, match="empty.json: not JSON"):
        load_snapshot_file(path)


def test_non_utf8_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes(b'[{"id": "caf\xe9"}]')
    with pytest.raises(SnapshotError, match="latin1.json: cannot read file"):
        load_snapshot_file(path)


def test_resource_without_id_names_the_file_and_its_position(tmp_path: Path) -> None:
    resources = lab()
    del resources[2]["id"]
    path = write(tmp_path, {"value": resources})
    with pytest.raises(SnapshotError) as err:
        read_snapshot(path)
    assert str(err.value) == f"{path}: resource at value[2] has no 'id'"


def test_resource_without_type_takes_it_from_its_id(tmp_path: Path) -> None:
    resources = lab(enabled=(1, 2))
    for r in resources:
        del r["type"]
    assert pair_names(load_snapshot_file(write(tmp_path, {"value": resources}))) == {("hub-01", "hub-02")}


def test_resource_without_type_whose_id_names_none_is_refused_with_its_position(tmp_path: Path) -> None:
    resources: list[Resource] = [*lab(), {"id": "/subscriptions/s/resourceGroups/rg"}]
    path = write(tmp_path, {"value": resources})
    with pytest.raises(SnapshotError) as err:
        read_snapshot(path)
    assert str(err.value) == f"{path}: resource at value[{len(resources) - 1}] has no 'type', and its id names none"


@pytest.mark.parametrize("blank", ["", "   ", None, 42])
def test_resource_with_blank_or_non_text_id_is_rejected(tmp_path: Path, blank: Any) -> None:
    resources = lab()
    resources[1]["id"] = blank
    path = write(tmp_path, resources)
    with pytest.raises(SnapshotError, match=r"resource at \[1\] has no 'id'"):
        read_snapshot(path)


def test_resource_that_is_not_an_object_names_its_position(tmp_path: Path) -> None:
    path = write(tmp_path, {"data": [lab()[0], "oops"]})
    with pytest.raises(SnapshotError, match=r"resource at data\[1\] is not an object"):
        read_snapshot(path)


def test_unreadable_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.json"
    with pytest.raises(SnapshotError, match="nowhere.json: cannot read file"):
        read_snapshot(missing)


def test_an_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a snapshot", encoding="utf-8")
    with pytest.raises(SnapshotError, match="folder holds no .json file"):
        read_snapshot(tmp_path)


@pytest.mark.parametrize("doc", [{"resources": []}, {"value": {"id": "x"}}, {"data": None}, 42, "text", None])
def test_top_level_without_value_or_data_array_names_the_file_and_the_top_level(tmp_path: Path, doc: Any) -> None:
    path = write(tmp_path, doc)
    with pytest.raises(SnapshotError) as err:
        read_snapshot(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ")
    assert "top level" in message and "'value'" in message and "'data'" in message and "'id'" in message


def test_resources_of_accepts_an_already_parsed_document() -> None:
    assert resources_of({"value": []}) == []
    with pytest.raises(SnapshotError, match="^live: "):
        resources_of({}, source="live")


def test_parse_resources_rejects_a_resource_without_id_with_a_snapshot_error() -> None:
    with pytest.raises(SnapshotError, match="live read"):
        parse_resources([{"type": "Microsoft.Network/virtualNetworks"}], source="live read")


def test_gateway_and_connection_builders_round_trip_through_a_file(tmp_path: Path) -> None:
    er = circuit("er-x")
    hub = vnet("hub-x", "10.9.0.0/16")
    gw = gateway("ergw-x", hub, allow_remote=None)
    topology = read_snapshot(write(tmp_path, [er, hub, gw, connection("conn-x", gw, er["id"])]))
    (g,) = topology.gateways.values()
    assert g.allow_remote_vnet_traffic is None and g.allow_virtual_wan_traffic is False


@pytest.mark.parametrize(("doc", "key"), [
    pytest.param(lambda rs: {"count": len(rs), "data": rs, "skip_token": "ew0KICAiJGlkIjogIjEiLA0K",
                             "total_records": 5000}, "skip_token", id="az_graph_query"),
    pytest.param(lambda rs: {"value": rs, "nextLink": "https://management.azure.com/x?$skiptoken=1"}, "nextLink",
                 id="az_rest_list"),
])
def test_one_page_of_several_reads_with_a_warning_that_pages_are_missing(tmp_path: Path, doc: Any, key: str) -> None:
    path = write(tmp_path, doc(lab(enabled=(1, 2))))
    topology = read_snapshot(path)
    assert len(topology.vnets) == 3
    assert topology.warnings[0].startswith(f"{path}: its '{key}' says more pages exist")
    assert compute_pairs(topology).warnings[0] == topology.warnings[0]


def test_one_arm_get_body_per_file_in_a_folder_and_several_files_read_alike(tmp_path: Path) -> None:
    resources = lab(enabled=(1, 2))
    folder = tmp_path / "snap"
    folder.mkdir()
    for i, r in enumerate(resources):
        write(folder, r, f"{i:02d}-{r['name']}.json")
    (folder / "README.txt").write_text("not read", encoding="utf-8")
    by_folder, by_files = read_snapshot(folder), read_snapshot(sorted(folder.glob("*.json")))
    assert by_folder == by_files == parse_resources(resources)
    assert pair_names(load_snapshot_file(folder)) == {("hub-01", "hub-02")}


def test_a_big_folder_of_single_bodies_with_long_names_reads_like_one_array(tmp_path: Path) -> None:
    long = "x" * 72
    resources: list[Resource] = []
    for i in range(40):
        hub = vnet(f"hub-{i:03d}-{long}", f"10.{i}.0.0/16")
        gw = gateway(f"ergw-{i:03d}-{long}", hub, allow_remote=True)
        resources += [hub, gw, connection(f"conn-{i:03d}-{long}", gw, circuit("er-big")["id"])]
    resources.append(circuit("er-big"))
    folder = tmp_path / "estate"
    folder.mkdir()
    for i, r in enumerate(resources):
        write(folder, r, f"{i:04d}.json")
    from_folder = compute_pairs(read_snapshot(folder))
    assert len(from_folder.pairs) == 40 * 39 // 2
    assert set(from_folder.pairs) == set(compute_pairs(parse_resources(resources)).pairs)
    assert all(len(p.a.name) == 80 for p in from_folder.pairs.values())
