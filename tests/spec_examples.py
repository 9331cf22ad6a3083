"""Small topologies built from the Azure REST API specification's example responses (real material).

The bodies are stored verbatim in tests/fixtures/azure-rest-api-specs/ (README there names each source). Every
edit made here to link them into a topology is listed in that README; the edits are string replacements on ids and
names, plus the few properties a scenario needs (named in each builder).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

SPEC = Path(__file__).resolve().parent / "fixtures" / "azure-rest-api-specs"
SUB, RG = "subid", "rg1"
NET = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network"

Resource = dict[str, Any]


def body(name: str) -> Any:
    """A stored response body, parsed (a fresh copy on every call)."""
    return json.loads((SPEC / name).read_text(encoding="utf-8"))


def retarget(doc: Any, replacements: dict[str, str]) -> Any:
    """`doc` with every substring replaced in every string (ids, names): how the README's id edits are made."""
    text = json.dumps(doc)
    for old, new in replacements.items():
        text = text.replace(old, new)
    return json.loads(text)


def vnet_id(name: str) -> str:
    return f"{NET}/virtualNetworks/{name}"


def circuit_id(name: str) -> str:
    return f"{NET}/expressRouteCircuits/{name}"


def vnet(name: str, prefix: str) -> Resource:
    """VirtualNetworkGet (test-vnet) renamed; its address prefix set to `prefix`."""
    doc: Resource = retarget(body("VirtualNetworkGet.json"), {"test-vnet": name})
    doc["properties"]["addressSpace"]["addressPrefixes"] = [prefix]
    return doc


def er_gateway(name: str, home: str, *, allow_remote: bool | None = True, allow_wan: bool | None = False) -> Resource:
    """VirtualNetworkGatewayGet (vpngw, a VPN gateway in vnet1) as an ExpressRoute gateway `name` in VNet `home`."""
    doc: Resource = retarget(body("VirtualNetworkGatewayGet.json"), {
        "/vpngw": f"/{name}", '"vpngw"': f'"{name}"', "/virtualNetworks/vnet1/": f"/virtualNetworks/{home}/"})
    props = doc["properties"]
    props["gatewayType"] = "ExpressRoute"
    for flag, value in (("allowRemoteVnetTraffic", allow_remote), ("allowVirtualWanTraffic", allow_wan)):
        if value is None:
            del props[flag]
        else:
            props[flag] = value
    return doc


def er_connection(name: str, gateway: str, circuit: str) -> Resource:
    """VirtualNetworkGatewayConnectionGet (connS2S, IPsec from vpngw) as an ExpressRoute link `gateway` -> `circuit`."""
    doc: Resource = retarget(body("VirtualNetworkGatewayConnectionGet.json"),
                             {"connS2S": name, "/vpngw": f"/{gateway}"})
    props = doc["properties"]
    props["connectionType"] = "ExpressRoute"
    del props["localNetworkGateway2"]
    props["peer"] = {"id": circuit_id(circuit)}
    return doc


def circuits(**edits: dict[str, Any]) -> Resource:
    """ExpressRouteCircuitListBySubscription (circuitName1 Provisioned, circuitName2 NotProvisioned), verbatim
    unless `edits` sets properties of a circuit by name."""
    doc: Resource = body("ExpressRouteCircuitListBySubscription.json")
    for circuit in doc["value"]:
        circuit["properties"].update(edits.get(circuit["name"], {}))
    return doc


def private_peering(circuit: str) -> Resource:
    """The AzurePrivatePeering of ExpressRouteCircuitPeeringList (circuit `circuitName`) moved to `circuit`."""
    return retarget(body("ExpressRouteCircuitPeeringList.json")["value"][1],
                    {"/expressRouteCircuits/circuitName/": f"/expressRouteCircuits/{circuit}/"})


def peering(local: str, remote: str, **props: Any) -> Resource:
    """VirtualNetworkPeeringGet (vnet1/peer -> vnet2, resource group peerTest) as `local` -> `remote` in rg1."""
    doc: Resource = retarget(body("VirtualNetworkPeeringGet.json"),
                             {"/resourceGroups/peerTest/": f"/resourceGroups/{RG}/", "/virtualNetworks/vnet1/": "/@L/",
                              "/virtualNetworks/vnet2": "/@R"})
    doc = retarget(doc, {"/@L/": f"/virtualNetworks/{local}/", "/@R": f"/virtualNetworks/{remote}"})
    doc["properties"].update(props)
    return doc


def global_reach(owner: str, other: str) -> Resource:
    """ExpressRouteCircuitConnectionGet moved onto `owner`'s private peering, joining it to `other`."""
    doc: Resource = copy.deepcopy(body("ExpressRouteCircuitConnectionGet.json"))
    old = "/subscriptions/subid1/resourceGroups/dedharcktinit/providers/Microsoft.Network/expressRouteCircuits/"
    doc["id"] = doc["id"].replace(old + "ExpressRouteARMCircuitA/", circuit_id(owner) + "/")
    doc["properties"]["expressRouteCircuitPeering"]["id"] = circuit_id(owner) + "/peerings/AzurePrivatePeering"
    doc["properties"]["peerExpressRouteCircuitPeering"]["id"] = circuit_id(other) + "/peerings/AzurePrivatePeering"
    return doc


def hubs_files(*, private_peering_apart: bool = True, spoke_sync: str = "FullyInSync") -> dict[str, Any]:
    """Two hub VNets with ExpressRoute gateways on circuitName1, and a spoke behind the first hub.

    vnet1 (10.0.0.0/16, gateway vpngw) <- peering -> vnet2 (12.0.0.0/8, spoke: uses vpngw)
    vnet3 (10.3.0.0/16, gateway vpngw3); connections connS2S (vpngw) and connS2S3 (vpngw3) to circuitName1.
    One file per resource, as `az network ... show` / `az rest` would write them; the circuits as their ARM list.
    """
    files: dict[str, Any] = {
        "vnet1.json": vnet("vnet1", "10.0.0.0/16"),
        "vnet2.json": vnet("vnet2", "12.0.0.0/8"),
        "vnet3.json": vnet("vnet3", "10.3.0.0/16"),
        "vnet1-peer.json": peering("vnet1", "vnet2", allowGatewayTransit=True, peeringState="Connected"),
        "vnet2-peer.json": peering("vnet2", "vnet1", useRemoteGateways=True, peeringState="Connected",
                                   peeringSyncLevel=spoke_sync),
        "vpngw.json": er_gateway("vpngw", "vnet1"),
        "vpngw3.json": er_gateway("vpngw3", "vnet3"),
        "connS2S.json": er_connection("connS2S", "vpngw", "circuitName1"),
        "connS2S3.json": er_connection("connS2S3", "vpngw3", "circuitName1"),
        "circuits.json": circuits(),
    }
    if private_peering_apart:
        files["circuitName1-private-peering.json"] = private_peering("circuitName1")
    return files


def wan_files(*, allow_non_wan: bool = True) -> dict[str, Any]:
    """vnet1 behind ExpressRoute gateway vpngw (allowVirtualWanTraffic), and vnet4 attached to Virtual WAN hub
    virtualHub1 whose ExpressRoute gateway expressRouteGatewayName links circuitName1 through connectionName."""
    wan_gateway: Resource = retarget(body("ExpressRouteGatewayGet.json"), {
        "/resourceGroups/resourceGroupName/providers/Microsoft.Network/virtualHubs/virtualHubName":
            f"/resourceGroups/{RG}/providers/Microsoft.Network/virtualHubs/virtualHub1"})
    wan_gateway["properties"]["allowNonVirtualWanTraffic"] = allow_non_wan
    wan_connection = retarget(body("ExpressRouteConnectionGet.json"), {
        "/resourceGroups/resourceGroupName/providers/Microsoft.Network/expressRouteCircuits/circuitName/":
            f"/resourceGroups/{RG}/providers/Microsoft.Network/expressRouteCircuits/circuitName1/"})
    hub_connection = retarget(body("HubVirtualNetworkConnectionGet.json"),
                              {"/virtualNetworks/vnet1": "/virtualNetworks/vnet4"})
    return {
        "vnet1.json": vnet("vnet1", "10.0.0.0/16"),
        "vnet4.json": vnet("vnet4", "10.4.0.0/16"),
        "vpngw.json": er_gateway("vpngw", "vnet1", allow_remote=False, allow_wan=True),
        "connS2S.json": er_connection("connS2S", "vpngw", "circuitName1"),
        "circuits.json": circuits(),
        "circuitName1-private-peering.json": private_peering("circuitName1"),
        "virtualHub1.json": body("VirtualHubGet.json"),
        "expressRouteGatewayName.json": wan_gateway,
        "connectionName.json": wan_connection,
        "connection1.json": hub_connection,
    }


def write_files(folder: Path, files: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, doc in files.items():
        (folder / name).write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return folder


_EMBEDDED = {"virtualnetworkpeerings": "virtualNetworkPeerings", "peerings": "peerings",
             "expressrouteconnections": "expressRouteConnections"}


def as_arm_holds_it(files: dict[str, Any]) -> list[Resource]:
    """The same resources as ARM and Resource Graph hold them: VNet peerings, circuit peerings and a Virtual WAN
    gateway's ExpressRoute connections inside their parent (ARM GET embeds them), everything else as it is."""
    resources: list[Resource] = []
    for doc in copy.deepcopy(list(files.values())):
        resources += doc["value"] if isinstance(doc, dict) and "value" in doc else [doc]
    parents = {r["id"].lower(): r for r in resources if "type" in r}
    out: list[Resource] = []
    for r in resources:
        parent_id = r["id"].rsplit("/", 2)[0].lower()
        key = _EMBEDDED.get(r["id"].split("/")[-2].lower())
        if key is not None and parent_id in parents:
            parents[parent_id]["properties"].setdefault(key, []).append(r)
        else:
            out.append(r)
    return out
