"""Builders for ARM-shaped resources (as ARM GET returns them), shared by every test."""

from __future__ import annotations

from typing import Any

SUB = "00000000-0000-0000-0000-000000000001"
RG = "rg-er-lab"

Resource = dict[str, Any]


def rid(kind: str, name: str, *, sub: str = SUB, rg: str = RG) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/{kind}/{name}"


def vnet(name: str, prefix: str, *, sub: str = SUB, rg: str = RG, peerings: list[Resource] | None = None,
         tags: dict[str, str] | None = None, state: str = "Succeeded") -> Resource:
    res: Resource = {
        "id": rid("virtualNetworks", name, sub=sub, rg=rg), "name": name, "type": "Microsoft.Network/virtualNetworks",
        "location": "japaneast",
        "properties": {"provisioningState": state, "addressSpace": {"addressPrefixes": [prefix]},
                       "subnets": [], "virtualNetworkPeerings": peerings or []},
    }
    if tags:
        res["tags"] = tags
    return res


def peering(local: Resource, remote: Resource, *, gateway_transit: bool = False, use_remote: bool = False,
            state: str = "Connected", provisioning: str = "Succeeded", name: str | None = None) -> Resource:
    """A peering of `local` to `remote`; attach it with add_peering (or use it stand-alone)."""
    pname = name or f"to-{remote['name']}"
    return {
        "id": f"{local['id']}/virtualNetworkPeerings/{pname}", "name": pname,
        "type": "Microsoft.Network/virtualNetworks/virtualNetworkPeerings",
        "properties": {"provisioningState": provisioning, "peeringState": state, "allowVirtualNetworkAccess": True,
                       "allowGatewayTransit": gateway_transit, "useRemoteGateways": use_remote,
                       "remoteVirtualNetwork": {"id": remote["id"]},
                       "remoteAddressSpace": remote["properties"]["addressSpace"]},
    }


def hub_and_spoke(hub: Resource, spoke: Resource, **kwargs: Any) -> None:
    """Peer `spoke` to `hub` with gateway transit (both flags, both Connected unless overridden)."""
    hub_state = kwargs.pop("hub_state", "Connected")
    spoke_state = kwargs.pop("spoke_state", "Connected")
    hub["properties"]["virtualNetworkPeerings"].append(
        peering(hub, spoke, gateway_transit=kwargs.pop("gateway_transit", True), state=hub_state))
    spoke["properties"]["virtualNetworkPeerings"].append(
        peering(spoke, hub, use_remote=kwargs.pop("use_remote", True), state=spoke_state))


def gateway(name: str, home: Resource, *, allow_remote: bool | None = False, allow_wan: bool | None = False,
            gateway_type: str = "ExpressRoute", state: str = "Succeeded", admin_state: str | None = None,
            sub: str = SUB, rg: str = RG) -> Resource:
    props: dict[str, Any] = {
        "provisioningState": state, "gatewayType": gateway_type, "sku": {"name": "ErGw1AZ", "tier": "ErGw1AZ"},
        "ipConfigurations": [{"id": rid("virtualNetworkGateways", name, sub=sub, rg=rg) + "/ipConfigurations/default",
                              "name": "default",
                              "properties": {"subnet": {"id": home["id"] + "/subnets/GatewaySubnet"}}}],
    }
    if allow_remote is not None:
        props["allowRemoteVnetTraffic"] = allow_remote
    if allow_wan is not None:
        props["allowVirtualWanTraffic"] = allow_wan
    if admin_state is not None:
        props["adminState"] = admin_state
    return {"id": rid("virtualNetworkGateways", name, sub=sub, rg=rg), "name": name,
            "type": "Microsoft.Network/virtualNetworkGateways", "location": "japaneast", "properties": props}


def connection(name: str, gw: Resource, circuit_id: str, *, connection_type: str = "ExpressRoute",
               state: str = "Succeeded", sub: str = SUB, rg: str = RG) -> Resource:
    return {"id": rid("connections", name, sub=sub, rg=rg), "name": name, "type": "Microsoft.Network/connections",
            "location": "japaneast",
            "properties": {"provisioningState": state, "connectionType": connection_type, "routingWeight": 0,
                           "virtualNetworkGateway1": {"id": gw["id"]}, "peer": {"id": circuit_id}}}


def circuit(name: str, *, provider_state: str = "Provisioned", private_peering: str | None = "Enabled",
            state: str = "Succeeded", global_reach_to: list[str] | None = None, sub: str = SUB,
            rg: str = RG) -> Resource:
    cid = rid("expressRouteCircuits", name, sub=sub, rg=rg)
    peerings = []
    if private_peering is not None:
        connections = [{"name": f"gr-{i}", "properties": {
            "expressRouteCircuitPeering": {"id": f"{cid}/peerings/AzurePrivatePeering"},
            "peerExpressRouteCircuitPeering": {"id": f"{other}/peerings/AzurePrivatePeering"}}}
            for i, other in enumerate(global_reach_to or [])]
        peerings.append({"id": f"{cid}/peerings/AzurePrivatePeering", "name": "AzurePrivatePeering",
                         "properties": {"peeringType": "AzurePrivatePeering", "state": private_peering,
                                        "provisioningState": "Succeeded", "connections": connections}})
    return {"id": cid, "name": name, "type": "Microsoft.Network/expressRouteCircuits", "location": "japaneast",
            "properties": {"provisioningState": state, "circuitProvisioningState": "Enabled",
                           "serviceProviderProvisioningState": provider_state, "peerings": peerings}}


def virtual_hub(name: str, wan: str, *, sub: str = SUB, rg: str = RG) -> Resource:
    return {"id": rid("virtualHubs", name, sub=sub, rg=rg), "name": name, "type": "Microsoft.Network/virtualHubs",
            "location": "japaneast",
            "properties": {"provisioningState": "Succeeded", "virtualWan": {"id": rid("virtualWans", wan, sub=sub,
                                                                                       rg=rg)}}}


def hub_connection(hub: Resource, remote: Resource, *, state: str = "Succeeded") -> Resource:
    name = f"conn-{remote['name']}"
    return {"id": f"{hub['id']}/hubVirtualNetworkConnections/{name}", "name": name,
            "type": "Microsoft.Network/virtualHubs/hubVirtualNetworkConnections",
            "properties": {"provisioningState": state, "remoteVirtualNetwork": {"id": remote["id"]}}}


def wan_gateway(name: str, hub: Resource, circuit_ids: list[str], *, allow_non_wan: bool | None = False,
                state: str = "Succeeded", sub: str = SUB, rg: str = RG) -> Resource:
    gid = rid("expressRouteGateways", name, sub=sub, rg=rg)
    props: dict[str, Any] = {
        "provisioningState": state, "virtualHub": {"id": hub["id"]},
        "expressRouteConnections": [
            {"id": f"{gid}/expressRouteConnections/c{i}", "name": f"c{i}",
             "properties": {"provisioningState": "Succeeded",
                            "expressRouteCircuitPeering": {"id": f"{c}/peerings/AzurePrivatePeering"}}}
            for i, c in enumerate(circuit_ids)],
    }
    if allow_non_wan is not None:
        props["allowNonVirtualWanTraffic"] = allow_non_wan
    return {"id": gid, "name": name, "type": "Microsoft.Network/expressRouteGateways", "location": "japaneast",
            "properties": props}


def lab(enabled: tuple[int, ...] = ()) -> list[Resource]:
    """The article's lab: hubs 10.1/16, 10.2/16, 10.3/16, one ER gateway each, one circuit er-lab.

    `enabled` lists the gateways (1-3) whose allowRemoteVnetTraffic is on.
    """
    er = circuit("er-lab")
    out: list[Resource] = [er]
    for i in (1, 2, 3):
        hub = vnet(f"hub-0{i}", f"10.{i}.0.0/16")
        gw = gateway(f"ergw-0{i}", hub, allow_remote=i in enabled)
        out += [hub, gw, connection(f"conn-0{i}", gw, er["id"])]
    return out


def two_hubs(enabled: bool, *, spokes: int = 32) -> list[Resource]:
    """Two hubs of `spokes` spokes each on one circuit, gw-2 allowing remote VNet traffic: enabling gw-1 opens
    (spokes + 1) ** 2 pairs (a large change in a small estate)."""
    er = circuit("er-big")
    out: list[Resource] = [er]
    for h in (1, 2):
        hub = vnet(f"hub-{h}", f"10.{h}.0.0/16")
        for s in range(spokes):
            spoke = vnet(f"spoke-{h}-{s:02d}", f"10.{h}.{s + 1}.0/24")
            hub_and_spoke(hub, spoke)
            out.append(spoke)
        gw = gateway(f"gw-{h}", hub, allow_remote=enabled or h == 2)
        out += [hub, gw, connection(f"conn-{h}", gw, er["id"])]
    return out


def circuit_global_reach(local: Resource, remote: Resource, *, name: str = "gr") -> Resource:
    """A stand-alone Global Reach connection (`expressRouteCircuits/peerings/connections`) from `local` to `remote`."""
    local_peering = f"{local['id']}/peerings/AzurePrivatePeering"
    return {"id": f"{local_peering}/connections/{name}", "name": name,
            "type": "Microsoft.Network/expressRouteCircuits/peerings/connections",
            "properties": {"provisioningState": "Succeeded", "circuitConnectionStatus": "Connected",
                           "expressRouteCircuitPeering": {"id": local_peering},
                           "peerExpressRouteCircuitPeering": {"id": f"{remote['id']}/peerings/AzurePrivatePeering"}}}


def recase_references(resources: list[Resource], recase: Any = str.upper) -> list[Resource]:
    """A copy of `resources` with every reference (an object holding only an `id`) spelled by `recase`.

    ARM ids are case-insensitive and real snapshots mix casings across references; the resources' own ids are kept.
    """
    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if set(node) == {"id"} and isinstance(node["id"], str):
                return {"id": recase(node["id"])}
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return [walk(r) for r in resources]


def small_topology(hubs: list[dict[str, Any]], *, circuits: int = 2,
                   circuit_states: dict[int, dict[str, Any]] | None = None) -> list[Resource]:
    """Hubs `hub-<i>` with gateway `ergw-<i>` linked (`conn-<i>-<c>`) to circuits `er-<c>`, and spokes `spoke-<i><j>`.

    Each hub spec: allow_remote (bool | None, default True), allow_wan, admin_state, circuits (indexes, default
    (0,)), spokes: [{use_remote, gateway_transit, hub_state, spoke_state}] (default: full gateway transit).
    `circuit_states`: circuit index -> keyword arguments of `circuit` (provider_state, private_peering, ...).
    """
    ers = [circuit(f"er-{c}", **(circuit_states or {}).get(c, {})) for c in range(circuits)]
    out: list[Resource] = list(ers)
    for i, spec in enumerate(hubs, 1):
        hub = vnet(f"hub-{i}", f"10.{i}.0.0/16")
        gw = gateway(f"ergw-{i}", hub, allow_remote=spec.get("allow_remote", True),
                     allow_wan=spec.get("allow_wan", False), admin_state=spec.get("admin_state"))
        out += [hub, gw]
        out += [connection(f"conn-{i}-{c}", gw, ers[c]["id"]) for c in spec.get("circuits", (0,))]
        for j, s in enumerate(spec.get("spokes", ()), 1):
            spoke = vnet(f"spoke-{i}{j}", f"10.{100 + i}.{j}.0/24")
            hub_and_spoke(hub, spoke, **s)
            out.append(spoke)
    return out


def with_state(resources: list[Resource], name: str, provisioning_state: str) -> list[Resource]:
    """`resources` with the one named `name` in another provisioning state (Updating, Deleting, Failed...)."""
    return [{**r, "properties": {**r["properties"], "provisioningState": provisioning_state}} if r["name"] == name
            else r for r in resources]
