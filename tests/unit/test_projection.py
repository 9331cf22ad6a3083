"""The committed topology keeps only what the parser reads; parsing the projection gives the same topology."""

from __future__ import annotations

import json
from pathlib import Path

from shared.core.snapshot import parse_resources, resources_of, transit_projection
from tests.builders import circuit, gateway, hub_and_spoke, lab, virtual_hub, vnet, wan_gateway

FIXTURE = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "resource-graph-answer.json"


def same_topology(resources: list[dict]) -> bool:
    return parse_resources(transit_projection(resources)) == parse_resources(resources)


def test_the_lab_and_the_resource_graph_fixture_parse_the_same_after_projection() -> None:
    assert same_topology(lab((1, 2)))
    assert same_topology(resources_of(json.loads(FIXTURE.read_text())))


def test_irrelevant_properties_and_types_are_dropped() -> None:
    hub = vnet("hub", "10.0.0.0/16")
    hub["properties"]["subnets"] = [{"name": "GatewaySubnet", "properties": {"addressPrefix": "10.0.0.0/27"}}]
    gw = gateway("gw", hub)
    gw["properties"]["bgpSettings"] = {"asn": 65515}
    storage = {"id": "/subscriptions/s/resourceGroups/r/providers/Microsoft.Storage/storageAccounts/x",
               "type": "Microsoft.Storage/storageAccounts", "properties": {}}
    projected = transit_projection([hub, gw, storage])
    assert [r["name"] for r in projected] == ["hub", "gw"]
    assert "subnets" not in projected[0]["properties"] and "bgpSettings" not in projected[1]["properties"]
    assert projected[1]["properties"]["allowRemoteVnetTraffic"] is False


def test_virtual_wan_and_spokes_survive_projection() -> None:
    hub, spoke = vnet("hub", "10.0.0.0/16"), vnet("spoke", "10.1.0.0/16")
    hub_and_spoke(hub, spoke)
    er = circuit("er", global_reach_to=["/subscriptions/x/resourceGroups/y/providers/Microsoft.Network/"
                                        "expressRouteCircuits/other"])
    vhub = virtual_hub("vhub", "wan")
    assert same_topology([hub, spoke, er, gateway("gw", hub), vhub, wan_gateway("wgw", vhub, [er["id"]])])


def test_the_compiled_pruners_equal_the_spec_walk_on_any_shape() -> None:
    """snapshot._PRUNE (made once per type) gives what _prune gives, on real shapes and on odd ones."""
    import random

    from benchmarks.bench_transit import generate
    from shared.core.snapshot import _PROPERTIES, _PRUNE, _prune

    before, _ = generate(300)
    rnd = random.Random(5)
    odd: list[object] = [None, 3, "x", [], {}, [1, {"id": 2}], {"id": None, "properties": []},
                         {"addressPrefixes": "10.0.0.0/8"}, [{"properties": "flat"}], {"remoteVirtualNetwork": []}]
    for rtype, spec in _PROPERTIES.items():
        samples: list[object] = [r.get("properties") for r in before if r["type"].lower() == rtype] + odd
        for props in list(samples):
            if isinstance(props, dict):  # the same with one key given an odd value
                for key in props:
                    samples.append({**props, key: rnd.choice(odd)})
        for props in samples:
            assert _PRUNE[rtype](props) == _prune(props, spec)
            # ... key for key in the same order (the stored projection is written unsorted)
            assert json.dumps(_PRUNE[rtype](props)) == json.dumps(_prune(props, spec))
