"""ARM / Resource Graph JSON -> Topology: the one parser, used for live reads and offline snapshots."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from shared.collector import collector_paused
from shared.model import (
    Circuit,
    Connection,
    Gateway,
    HubConnection,
    Peering,
    ResourceId,
    Topology,
    VirtualHub,
    VirtualNetwork,
    WanGateway,
)

VNET = "microsoft.network/virtualnetworks"
PEERING = "microsoft.network/virtualnetworks/virtualnetworkpeerings"
GATEWAY = "microsoft.network/virtualnetworkgateways"
CONNECTION = "microsoft.network/connections"
CIRCUIT = "microsoft.network/expressroutecircuits"
CIRCUIT_CONNECTION = "microsoft.network/expressroutecircuits/peerings/connections"
HUB = "microsoft.network/virtualhubs"
HUB_CONNECTION = "microsoft.network/virtualhubs/hubvirtualnetworkconnections"
WAN_GATEWAY = "microsoft.network/expressroutegateways"
WAN_GATEWAY_CONNECTION = "microsoft.network/expressroutegateways/expressrouteconnections"
TRANSIT_TYPES = frozenset(
    {VNET, PEERING, GATEWAY, CONNECTION, CIRCUIT, CIRCUIT_CONNECTION, HUB, HUB_CONNECTION, WAN_GATEWAY,
     WAN_GATEWAY_CONNECTION}
)


class SnapshotError(ValueError):
    """A snapshot that cannot be read; the message names the file and the position."""


def load_snapshot_file(path: str | Path) -> list[dict[str, Any]]:
    """The resources of a snapshot file (array, ARM `value` or Resource Graph `data`)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise SnapshotError(f"{p}: cannot read file: {exc.strerror or exc.__class__.__name__}") from None
    except UnicodeDecodeError:
        raise SnapshotError(f"{p}: cannot read file: not UTF-8 text") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SnapshotError(f"{p}: not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    return resources_of(doc, source=str(p))


def resources_of(doc: Any, *, source: str = "snapshot") -> list[dict[str, Any]]:
    if isinstance(doc, list):
        items, where = doc, ""
    elif isinstance(doc, dict) and isinstance(doc.get("value"), list):
        items, where = doc["value"], "value"
    elif isinstance(doc, dict) and isinstance(doc.get("data"), list):
        items, where = doc["data"], "data"
    else:
        raise SnapshotError(
            f"{source}: at the top level: expected a JSON array of resources or an object with a 'value' or "
            "'data' array"
        )
    for i, item in enumerate(items):
        position = f"{where}[{i}]" if where else f"[{i}]"
        if not isinstance(item, dict):
            raise SnapshotError(f"{source}: resource at {position} is not an object")
        for key in ("id", "type"):
            if not isinstance(item.get(key), str) or not item[key].strip():
                raise SnapshotError(f"{source}: resource at {position} has no '{key}'")
    return items


def read_snapshot(path: str | Path) -> Topology:
    with collector_paused():  # millions of parsed JSON containers, none garbage: see collector_paused
        return parse_resources(load_snapshot_file(path), source=str(path))


def _props(resource: Mapping[str, Any]) -> Mapping[str, Any]:
    props = resource.get("properties")
    return props if isinstance(props, dict) else {}


def _ref(value: Any) -> ResourceId | None:
    """The id inside an ARM reference object ({"id": ...})."""
    if isinstance(value, dict) and isinstance(value.get("id"), str) and value["id"].strip():
        return ResourceId.parse(value["id"])
    return None


def _list(value: Any) -> list[Any]:
    """A JSON array, or nothing when the field is absent or of another type (never a crash on odd input)."""
    return value if isinstance(value, list) else []


def _opt_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _strip_to(rid: ResourceId, marker: str) -> ResourceId:
    """`<parent>/<marker>/...` -> `<parent>` (e.g. a subnet id to its VNet id)."""
    parts = rid.value.split("/")
    for i, part in enumerate(parts):
        if part.lower() == marker:
            return ResourceId.parse("/".join(parts[:i]))
    return rid


def _peering(raw: Mapping[str, Any], vnet: ResourceId, source: str, warnings: list[str]) -> Peering | None:
    props = _props(raw)
    remote = _ref(props.get("remoteVirtualNetwork"))
    rid = raw.get("id")
    if remote is None or not isinstance(rid, str):
        warnings.append(f"{source}: peering {raw.get('name', '?')} of {vnet.name} has no id or remote VNet; ignored")
        return None
    return Peering(
        id=ResourceId.parse(rid),
        vnet=vnet,
        remote_vnet=remote,
        allow_gateway_transit=_opt_bool(props.get("allowGatewayTransit")) is True,
        use_remote_gateways=_opt_bool(props.get("useRemoteGateways")) is True,
        peering_state=_opt_str(props.get("peeringState")) or "Unknown",
        provisioning_state=_opt_str(props.get("provisioningState")),
    )


def _circuit(raw: Mapping[str, Any], rid: ResourceId, extra_gr: Iterable[ResourceId]) -> Circuit:
    props = _props(raw)
    peerings = props.get("peerings")
    private_state: str | None = None
    global_reach: set[ResourceId] = set(extra_gr)
    for p in _list(peerings):
        if not isinstance(p, dict):
            continue
        pp = _props(p)
        if str(pp.get("peeringType", p.get("name", ""))).lower() == "azureprivatepeering":
            private_state = _opt_str(pp.get("state"))
        for conn in _list(pp.get("connections")):
            other = _ref(_props(conn).get("peerExpressRouteCircuitPeering")) if isinstance(conn, dict) else None
            if other is not None:
                global_reach.add(_strip_to(other, "peerings"))
    global_reach.discard(rid)
    return Circuit(
        id=rid,
        service_provider_state=_opt_str(props.get("serviceProviderProvisioningState")),
        private_peering_state=private_state,
        peerings_reported=isinstance(peerings, list),
        provisioning_state=_opt_str(props.get("provisioningState")),
        global_reach=frozenset(global_reach),
    )


def parse_resources(resources: Iterable[Mapping[str, Any]], *, source: str = "snapshot") -> Topology:
    """Build a Topology; ids and types match case-insensitively, other types are ignored.

    Dangling references become warnings on the topology, never errors.
    """
    warnings: list[str] = []
    by_type: dict[str, dict[ResourceId, Mapping[str, Any]]] = {t: {} for t in TRANSIT_TYPES}
    for i, raw in enumerate(resources):
        if not isinstance(raw, Mapping) or not isinstance(raw.get("id"), str) or not isinstance(raw.get("type"), str):
            raise SnapshotError(f"{source}: resource at [{i}] is not an object with an 'id' and a 'type'")
        rtype = raw["type"].lower()
        if rtype in by_type:
            by_type[rtype][ResourceId.parse(raw["id"])] = raw

    standalone_peerings: dict[ResourceId, list[Mapping[str, Any]]] = {}
    for pid, raw in by_type[PEERING].items():
        standalone_peerings.setdefault(pid.parent(), []).append(raw)

    vnets: dict[ResourceId, VirtualNetwork] = {}
    for vid, raw in by_type[VNET].items():
        props = _props(raw)
        merged: dict[ResourceId, Peering] = {}
        for p in [*_list(props.get("virtualNetworkPeerings")), *standalone_peerings.pop(vid, [])]:
            if isinstance(p, dict) and (peering := _peering(p, vid, source, warnings)) is not None:
                merged[peering.id] = peering
        space = props.get("addressSpace")
        prefixes = space.get("addressPrefixes") if isinstance(space, dict) else None
        tags = raw.get("tags")
        vnets[vid] = VirtualNetwork(
            id=vid,
            address_prefixes=tuple(str(x) for x in prefixes) if isinstance(prefixes, list) else (),
            location=str(raw.get("location", "")),
            tags={str(k): str(v) for k, v in tags.items()} if isinstance(tags, dict) else {},
            provisioning_state=_opt_str(props.get("provisioningState")),
            peerings=tuple(sorted(merged.values(), key=lambda x: x.id)),
        )
    for vid, raws in standalone_peerings.items():
        warnings.append(f"{source}: peering(s) {', '.join(str(r.get('name')) for r in raws)} belong to VNet "
                        f"{vid.name}, which is not in the snapshot; ignored")

    gateways: dict[ResourceId, Gateway] = {}
    for gid, raw in by_type[GATEWAY].items():
        props = _props(raw)
        home: ResourceId | None = None
        for ipc in _list(props.get("ipConfigurations")):
            subnet = _ref(_props(ipc).get("subnet")) if isinstance(ipc, dict) else None
            if subnet is not None:
                home = _strip_to(subnet, "subnets")
                break
        gateway = Gateway(
            id=gid,
            gateway_type=_opt_str(props.get("gatewayType")) or "",
            vnet=home,
            allow_remote_vnet_traffic=_opt_bool(props.get("allowRemoteVnetTraffic")),
            allow_virtual_wan_traffic=_opt_bool(props.get("allowVirtualWanTraffic")),
            admin_state=_opt_str(props.get("adminState")),
            provisioning_state=_opt_str(props.get("provisioningState")),
        )
        gateways[gid] = gateway
        if not gateway.is_expressroute:
            continue
        if home is None:
            warnings.append(f"{source}: gateway {gid.name} has no GatewaySubnet in ipConfigurations; it carries "
                            "no transit")
        elif home not in vnets:
            warnings.append(f"{source}: gateway {gid.name} sits in VNet {home.name}, which is not in the snapshot; "
                            "the VNet is used by id only")
            vnets[home] = VirtualNetwork(id=home, address_prefixes=(), location="", tags={},
                                         provisioning_state=None, present=False)

    connections: dict[ResourceId, Connection] = {}
    for cid, raw in by_type[CONNECTION].items():
        props = _props(raw)
        peer = _ref(props.get("peer"))
        conn = Connection(
            id=cid,
            connection_type=_opt_str(props.get("connectionType")) or "",
            gateway=_ref(props.get("virtualNetworkGateway1")),
            circuit=_strip_to(peer, "peerings") if peer is not None else None,
            provisioning_state=_opt_str(props.get("provisioningState")),
        )
        connections[cid] = conn
        if not conn.is_expressroute:
            continue
        if conn.gateway is None or conn.circuit is None:
            warnings.append(f"{source}: connection {cid.name} lacks virtualNetworkGateway1 or peer; ignored")
        elif conn.gateway not in gateways:
            warnings.append(f"{source}: connection {cid.name} refers to gateway {conn.gateway.name}, which is not "
                            "in the snapshot; ignored")

    circuit_gr: dict[ResourceId, set[ResourceId]] = {}
    for ccid, raw in by_type[CIRCUIT_CONNECTION].items():
        other = _ref(_props(raw).get("peerExpressRouteCircuitPeering"))
        if other is not None:
            circuit_gr.setdefault(ccid.parent(4), set()).add(_strip_to(other, "peerings"))
    circuits = {cid: _circuit(raw, cid, circuit_gr.get(cid, ())) for cid, raw in by_type[CIRCUIT].items()}

    hubs: dict[ResourceId, VirtualHub] = {}
    hub_connections: dict[ResourceId, HubConnection] = {}
    for hid, raw in by_type[HUB].items():
        props = _props(raw)
        hubs[hid] = VirtualHub(id=hid, virtual_wan=_ref(props.get("virtualWan")),
                               provisioning_state=_opt_str(props.get("provisioningState")))
        for embedded in _list(props.get("virtualNetworkConnections")):
            if isinstance(embedded, dict) and isinstance(embedded.get("id"), str):
                by_type[HUB_CONNECTION].setdefault(ResourceId.parse(embedded["id"]), embedded)
    for hcid, raw in by_type[HUB_CONNECTION].items():
        props = _props(raw)
        remote = _ref(props.get("remoteVirtualNetwork"))
        if remote is None:
            warnings.append(f"{source}: hub connection {hcid.name} has no remoteVirtualNetwork; ignored")
            continue
        hub_connections[hcid] = HubConnection(id=hcid, hub=hcid.parent(), remote_vnet=remote,
                                              provisioning_state=_opt_str(props.get("provisioningState")))

    wan_conn_by_gateway: dict[ResourceId, list[Mapping[str, Any]]] = {}
    for wcid, raw in by_type[WAN_GATEWAY_CONNECTION].items():
        wan_conn_by_gateway.setdefault(wcid.parent(), []).append(raw)
    wan_gateways: dict[ResourceId, WanGateway] = {}
    for wid, raw in by_type[WAN_GATEWAY].items():
        props = _props(raw)
        links: dict[ResourceId, str | None] = {}
        for conn in [*_list(props.get("expressRouteConnections")), *wan_conn_by_gateway.pop(wid, [])]:
            cprops = _props(conn) if isinstance(conn, dict) else {}
            circuit_peering = _ref(cprops.get("expressRouteCircuitPeering"))
            if circuit_peering is not None:
                links[_strip_to(circuit_peering, "peerings")] = _opt_str(cprops.get("provisioningState"))
        hub = _ref(props.get("virtualHub"))
        wan_gateways[wid] = WanGateway(
            id=wid, hub=hub, allow_non_virtual_wan_traffic=_opt_bool(props.get("allowNonVirtualWanTraffic")),
            circuits=links, provisioning_state=_opt_str(props.get("provisioningState")),
        )
        if hub is not None and hub not in hubs:
            warnings.append(f"{source}: Virtual WAN gateway {wid.name} belongs to hub {hub.name}, which is not in "
                            "the snapshot; its Virtual WAN is unknown")

    return Topology(
        vnets=vnets, gateways=gateways, connections=connections, circuits=circuits, hubs=hubs,
        hub_connections=hub_connections, wan_gateways=wan_gateways, warnings=tuple(warnings),
    )


# What the parser reads of each type: the rest of a resource (subnets, SKUs, BGP settings...) never changes a pair.
_REF = {"id": True}
_PEERING_PROPS = {"remoteVirtualNetwork": _REF, "allowGatewayTransit": True, "useRemoteGateways": True,
                  "peeringState": True, "provisioningState": True}
_CIRCUIT_PEERING_PROPS = {"peeringType": True, "state": True,
                          "connections": [{"properties": {"peerExpressRouteCircuitPeering": _REF}}]}
_HUB_CONNECTION_PROPS = {"remoteVirtualNetwork": _REF, "provisioningState": True}
_WAN_CONNECTION_PROPS = {"expressRouteCircuitPeering": _REF, "provisioningState": True}
_PROPERTIES: dict[str, Any] = {
    VNET: {"addressSpace": {"addressPrefixes": True}, "provisioningState": True,
           "virtualNetworkPeerings": [{"id": True, "name": True, "properties": _PEERING_PROPS}]},
    PEERING: _PEERING_PROPS,
    GATEWAY: {"gatewayType": True, "ipConfigurations": [{"properties": {"subnet": _REF}}],
              "allowRemoteVnetTraffic": True, "allowVirtualWanTraffic": True, "adminState": True,
              "provisioningState": True},
    CONNECTION: {"connectionType": True, "virtualNetworkGateway1": _REF, "peer": _REF, "provisioningState": True},
    CIRCUIT: {"serviceProviderProvisioningState": True, "provisioningState": True,
              "peerings": [{"name": True, "properties": _CIRCUIT_PEERING_PROPS}]},
    CIRCUIT_CONNECTION: {"peerExpressRouteCircuitPeering": _REF},
    HUB: {"virtualWan": _REF, "provisioningState": True,
          "virtualNetworkConnections": [{"id": True, "properties": _HUB_CONNECTION_PROPS}]},
    HUB_CONNECTION: _HUB_CONNECTION_PROPS,
    WAN_GATEWAY: {"virtualHub": _REF, "allowNonVirtualWanTraffic": True, "provisioningState": True,
                  "expressRouteConnections": [{"properties": _WAN_CONNECTION_PROPS}]},
    WAN_GATEWAY_CONNECTION: _WAN_CONNECTION_PROPS,
}


def _prune(value: Any, spec: Any) -> Any:
    if spec is True:
        return value
    if isinstance(spec, dict) and isinstance(value, dict):
        return {k: _prune(value[k], sub) for k, sub in spec.items() if k in value}
    if isinstance(spec, list) and isinstance(value, list):
        return [_prune(v, spec[0]) for v in value]
    return value  # an unexpected shape is kept as it is, so the parser judges it exactly as before


def transit_projection(resources: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The transit-relevant part of each resource (still ARM-shaped; `parse_resources` reads it the same way).

    Used to keep the committed topology small and its digest blind to changes that cannot open or close a path.
    """
    out: list[dict[str, Any]] = []
    for raw in resources:
        rtype = str(raw.get("type", "")).lower()
        if rtype not in _PROPERTIES:
            continue
        kept = {k: raw[k] for k in ("id", "name", "type", "location", "tags") if k in raw}
        if "properties" in raw:
            kept["properties"] = _prune(raw["properties"], _PROPERTIES[rtype])
        out.append(kept)
    return out
