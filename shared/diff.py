"""Old pairs + new pairs (+ both topologies) -> opened / closed, each with its cause (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.model import PairSet, ResourceId, Topology, TransitPair, is_settling
from shared.transit import VNET_GATEWAY, Endpoint, endpoints_of


@dataclass(frozen=True, slots=True)
class Cause:
    """One change of one resource: `ergw-01 allowRemoteVnetTraffic false -> true`."""

    resource: ResourceId
    kind: str
    label: str
    change: str  # modified | added | removed
    prop: str | None = None
    old: Any = None
    new: Any = None

    @property
    def text(self) -> str:
        if self.kind == "unknown":
            return self.label
        if self.change != "modified":
            return f"{self.label} {self.change}"
        shown = "" if self.prop == "peeringState" else f" {self.prop}"
        return f"{self.label}{shown} {_fmt(self.old)} -> {_fmt(self.new)}"

    def to_json(self) -> dict[str, Any]:
        return {"resource": self.resource.value, "name": self.resource.name, "kind": self.kind,
                "change": self.change, "property": self.prop, "old": self.old, "new": self.new, "text": self.text}


def _fmt(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)


@dataclass(frozen=True, slots=True)
class PairChange:
    pair: TransitPair
    causes: tuple[Cause, ...]
    pending: bool
    topology: Topology  # the topology the pair was computed from (for names and prefixes)


@dataclass(frozen=True, slots=True)
class Diff:
    opened: tuple[PairChange, ...]
    closed: tuple[PairChange, ...]

    @property
    def empty(self) -> bool:
        return not self.opened and not self.closed

    def groups(self) -> list[tuple[tuple[Cause, ...], list[PairChange], list[PairChange]]]:
        """Pairs opened or closed by the same causes, in a stable order."""
        grouped: dict[tuple[str, ...], tuple[tuple[Cause, ...], list[PairChange], list[PairChange]]] = {}
        for ch in self.opened:
            grouped.setdefault(tuple(c.text for c in ch.causes), (ch.causes, [], []))[1].append(ch)
        for ch in self.closed:
            grouped.setdefault(tuple(c.text for c in ch.causes), (ch.causes, [], []))[2].append(ch)
        return [grouped[k] for k in sorted(grouped)]


Facets = tuple[str, str, dict[str, Any]]  # (kind, label, the transit-relevant properties)


def facets_of(topology: Topology, rid: ResourceId) -> Facets | None:
    """(kind, label, the transit-relevant properties) of one resource, or None when it is absent."""
    if (gw := topology.gateways.get(rid)) is not None:
        return "gateway", rid.name, {
            "gatewayType": gw.gateway_type, "allowRemoteVnetTraffic": gw.allow_remote_vnet_traffic,
            "allowVirtualWanTraffic": gw.allow_virtual_wan_traffic, "adminState": gw.admin_state,
            "provisioningState": gw.provisioning_state, "vnet": gw.vnet.name if gw.vnet else None}
    if (conn := topology.connections.get(rid)) is not None:
        return "connection", f"connection {rid.name}", {
            "connectionType": conn.connection_type,
            "virtualNetworkGateway1": conn.gateway.name if conn.gateway else None,
            "peer": conn.circuit.name if conn.circuit else None, "provisioningState": conn.provisioning_state}
    if (circuit := topology.circuits.get(rid)) is not None:
        return "circuit", f"circuit {rid.name}", {
            "serviceProviderProvisioningState": circuit.service_provider_state,
            "circuitProvisioningState": circuit.circuit_provisioning_state,
            "privatePeeringState": circuit.private_peering_state, "provisioningState": circuit.provisioning_state}
    if (vnet := topology.vnets.get(rid)) is not None and vnet.present:
        return "vnet", f"vnet {rid.name}", {"provisioningState": vnet.provisioning_state}
    if (wgw := topology.wan_gateways.get(rid)) is not None:
        return "vwanGateway", f"Virtual WAN gateway {rid.name}", {
            "allowNonVirtualWanTraffic": wgw.allow_non_virtual_wan_traffic,
            "circuits": sorted((c.name for c in wgw.circuits), key=str.lower),
            "provisioningState": wgw.provisioning_state}
    if (hub := topology.hubs.get(rid)) is not None:
        return "hub", f"hub {rid.name}", {"virtualWan": hub.virtual_wan.name if hub.virtual_wan else None}
    if (hc := topology.hub_connections.get(rid)) is not None:
        return "hubConnection", f"hub connection {rid.name}", {
            "remoteVirtualNetwork": hc.remote_vnet.name, "provisioningState": hc.provisioning_state}
    vnet_of_peering = topology.vnets.get(rid.parent())
    if vnet_of_peering is not None:
        for p in vnet_of_peering.peerings:
            if p.id == rid:
                remote = topology.vnets.get(p.remote_vnet)
                remote_name = remote.name if remote is not None else p.remote_vnet.name
                return "peering", f"peering {vnet_of_peering.name} -> {remote_name}", {
                    "allowGatewayTransit": p.allow_gateway_transit, "useRemoteGateways": p.use_remote_gateways,
                    "peeringState": p.peering_state, "provisioningState": p.provisioning_state}
    return None


@dataclass(frozen=True, slots=True)
class _LinkIndex:
    """Who links what in one topology, indexed once: a diff looks up the same gateways for thousands of pairs."""

    connections: Mapping[tuple[ResourceId, ResourceId], tuple[ResourceId, ...]]  # (gateway, circuit) -> connections
    hub_connections: Mapping[tuple[ResourceId, ResourceId], tuple[ResourceId, ...]]  # (hub, VNet) -> hub connections

    @classmethod
    def of(cls, topology: Topology) -> _LinkIndex:
        connections: dict[tuple[ResourceId, ResourceId], list[ResourceId]] = {}
        for conn in topology.connections.values():
            if conn.is_expressroute and conn.gateway is not None and conn.circuit is not None:
                connections.setdefault((conn.gateway, conn.circuit), []).append(conn.id)
        hub_connections: dict[tuple[ResourceId, ResourceId], list[ResourceId]] = {}
        for hc in topology.hub_connections.values():
            hub_connections.setdefault((hc.hub, hc.remote_vnet), []).append(hc.id)
        return cls({k: tuple(v) for k, v in connections.items()}, {k: tuple(v) for k, v in hub_connections.items()})


def _membership(topology: Topology, ep: Endpoint, vnet: ResourceId, index: _LinkIndex) -> list[ResourceId]:
    """The resources that put `vnet` behind the gateway `ep`."""
    if ep.kind == VNET_GATEWAY:
        gw = topology.gateways[ep.id]
        home = gw.vnet
        if home is None or vnet == home:
            return [vnet]
        hub_side = [p.id for p in topology.vnets[home].peerings if p.remote_vnet == vnet]
        spoke = topology.vnets.get(vnet)
        spoke_side = [p.id for p in spoke.peerings if p.remote_vnet == home] if spoke else []
        return [vnet, *hub_side, *spoke_side]
    hub = topology.wan_gateways[ep.id].hub
    return [vnet, *(index.hub_connections.get((hub, vnet), ()) if hub is not None else ())]


def dependencies(topology: Topology, pair: TransitPair, endpoints: Mapping[ResourceId, Endpoint], *,
                 index: _LinkIndex | None = None) -> list[ResourceId]:
    """Every resource whose state the pair depends on, in `topology`."""
    links = index if index is not None else _LinkIndex.of(topology)
    deps: dict[ResourceId, None] = {}
    for route in pair.routes:
        deps[route.circuit] = None
        for gid in route.gateways:
            deps[gid] = None
            ep = endpoints.get(gid)
            if ep is None:
                continue
            if ep.kind == VNET_GATEWAY:
                deps.update(dict.fromkeys(links.connections.get((gid, route.circuit), ())))
            else:
                hub = topology.wan_gateways[gid].hub
                if hub is not None:
                    deps[hub] = None
            for vnet in (pair.a, pair.b):
                if vnet in ep.domain:
                    deps.update(dict.fromkeys(_membership(topology, ep, vnet, links)))
    return list(deps)


def _resource_changes(rid: ResourceId, old: Facets | None, new: Facets | None) -> tuple[Cause, ...]:
    if old is None and new is None:
        return ()
    if old is None:
        assert new is not None
        return (Cause(rid, new[0], new[1], "added"),)
    if new is None:
        return (Cause(rid, old[0], old[1], "removed"),)
    return tuple(Cause(rid, new[0], new[1], "modified", prop, old[2].get(prop), value)
                 for prop, value in new[2].items() if _comparable(old[2].get(prop)) != _comparable(value))


def changes_between(before: Topology, after: Topology, resources: Iterable[ResourceId], *,
                    memo: dict[ResourceId, tuple[Cause, ...]] | None = None) -> tuple[Cause, ...]:
    """The changes of `resources` from `before` to `after`; `memo` remembers them per resource across calls."""
    known = memo if memo is not None else {}
    causes: list[Cause] = []
    for rid in resources:
        if rid not in known:
            known[rid] = _resource_changes(rid, facets_of(before, rid), facets_of(after, rid))
        causes += known[rid]
    # A provisioning-state transition only explains a change when nothing else about the pair changed.
    decisive = [c for c in causes if c.prop != "provisioningState"]
    return tuple(sorted(decisive or causes, key=lambda c: (c.text.lower(), c.resource)))


def _comparable(value: Any) -> Any:
    # ARM ids and enum values are case-insensitive: a reference re-spelled by another reader is not a change.
    if isinstance(value, str):
        return value.lower()
    if isinstance(value, (list, tuple)):
        return [_comparable(v) for v in value]
    return value


def settling_in(topology: Topology, resources: Iterable[ResourceId],
                memo: dict[ResourceId, bool] | None = None) -> bool:
    """Whether any of `resources` is Updating / Creating / Deleting in `topology` (`memo` caches the answers)."""
    memo = {} if memo is None else memo
    for rid in resources:
        if rid not in memo:
            facets = facets_of(topology, rid)
            memo[rid] = facets is not None and is_settling(facets[2].get("provisioningState"))
        if memo[rid]:
            return True
    return False


def diff_pairs(before: PairSet, after: PairSet, *, before_topology: Topology, after_topology: Topology,
               before_endpoints: Mapping[ResourceId, Endpoint] | None = None,
               after_endpoints: Mapping[ResourceId, Endpoint] | None = None) -> Diff:
    """Pairs present only after (opened) or only before (closed), each with the changes that explain it.

    A closed pair is *pending* when a resource it depended on is still settling in `after_topology`.
    `*_endpoints` may be passed when the caller already computed `endpoints_of` for those topologies.
    """
    opened_keys = [k for k in after.pairs if k not in before.pairs]
    closed_keys = [k for k in before.pairs if k not in after.pairs]
    opened: list[PairChange] = []
    closed: list[PairChange] = []
    causes: dict[ResourceId, tuple[Cause, ...]] = {}  # per resource, shared by every pair that depends on it
    if opened_keys:
        endpoints = after_endpoints if after_endpoints is not None else endpoints_of(after_topology)
        index = _LinkIndex.of(after_topology)
        for key in sorted(opened_keys):
            pair = after.pairs[key]
            deps = dependencies(after_topology, pair, endpoints, index=index)
            opened.append(PairChange(pair, _or_unknown(changes_between(before_topology, after_topology, deps,
                                                                       memo=causes)),
                                     pair.pending, after_topology))
    if closed_keys:
        endpoints = before_endpoints if before_endpoints is not None else endpoints_of(before_topology)
        index = _LinkIndex.of(before_topology)
        settling: dict[ResourceId, bool] = {}
        for key in sorted(closed_keys):
            pair = before.pairs[key]
            deps = dependencies(before_topology, pair, endpoints, index=index)
            closed.append(PairChange(pair, _or_unknown(changes_between(before_topology, after_topology, deps,
                                                                       memo=causes)),
                                     settling_in(after_topology, deps, settling), before_topology))
    return Diff(opened=tuple(opened), closed=tuple(closed))


def _or_unknown(causes: tuple[Cause, ...]) -> tuple[Cause, ...]:
    # A pair changed but none of its own resources did: say so rather than inventing a cause.
    return causes or (Cause(ResourceId.parse("/"), "unknown", "no change found on the pair's own resources",
                            "modified", None, None, None),)
