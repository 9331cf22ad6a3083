"""Old pairs + new pairs (+ both topologies) -> opened / closed, each with its cause (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.core.collector import collector_paused
from shared.core.model import PairIndex, PairSet, ResourceId, Route, Topology, TransitPair, is_settling, slot_maker
from shared.core.transit import VNET_GATEWAY, Endpoint, endpoints_of


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


_new_change = slot_maker(PairChange)  # a large change makes 97,000 of them


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


def _changed(new: Mapping[tuple[str, str], TransitPair], old: Mapping[tuple[str, str], TransitPair]
             ) -> list[TransitPair]:
    """The pairs of `new` that `old` lacks, in key order."""
    if isinstance(new, PairIndex) and isinstance(old, PairIndex):
        # On integer codes: a 20k-VNet estate has half a million pairs, and a set difference of ints runs in C.
        present = old.code_set()
        if new.vnets == old.vnets:
            return [new.pair_at(code) for code in sorted(new.code_set() - present)]
        return [new.pair_at(code) for code, there in new.codes_in(old).items() if there not in present]
    return [new[key] for key in sorted(k for k in new if k not in old)]


_Part = tuple[tuple[ResourceId, ...], bool]  # (the resources of a dependency group that changed, any settling)
_UNSEEN: Any = object()
_NO_MEMBERS: dict[str, _Part | None] = {}


class _PairExplainer:
    """The causes (and, for a closed pair, whether it is still settling) of many pairs of one topology.

    A pair's dependencies are its routes' parts (circuit, gateways, their connection or hub) and each VNet's
    membership behind a gateway; thousands of pairs share those parts, so each part is resolved once, to the few
    resources in it that changed (most change nothing), and each set of changed resources to its causes once.
    tests/unit/test_diff_reference.py checks it against a direct reading of the same rules.
    """

    def __init__(self, topology: Topology, endpoints: Mapping[ResourceId, Endpoint], before: Topology,
                 after: Topology) -> None:
        self.topology, self.endpoints, self.before, self.after = topology, endpoints, before, after
        self.index = _LinkIndex.of(topology)
        self.causes: dict[ResourceId, tuple[Cause, ...]] = {}
        self.settling: dict[ResourceId, bool] = {}
        self.parts: dict[tuple[ResourceId, ...], _Part] = {}
        self.route_parts: dict[int, _Part] = {}
        self.member_parts: dict[str, dict[str, _Part | None]] = {}  # gateway key -> VNet key -> part
        # What a routes tuple (shared by every pair between two gateway groups) and one VNet's membership behind
        # its gateways contribute: (changed resources, settling), by the tuple's identity (kept alive by the pairs).
        self.routes_changed: dict[int, tuple[frozenset[ResourceId], bool]] = {}
        self.side_changed: dict[tuple[int, str], tuple[frozenset[ResourceId], bool]] = {}
        self.explained: dict[frozenset[ResourceId], tuple[Cause, ...]] = {}
        self.unknown = (Cause(ResourceId.parse("/"), "unknown", "no change found on the pair's own resources",
                              "modified", None, None, None),)

    def _part(self, rids: tuple[ResourceId, ...]) -> _Part:
        """(the resources of `rids` that changed, whether any of them is settling in `after`)."""
        known = self.parts.get(rids)
        if known is None:
            for rid in rids:
                if rid not in self.causes:
                    same = self._unchanged(rid)
                    if same is not None:
                        self.causes[rid], self.settling[rid] = (), same
                        continue
                    old, new = facets_of(self.before, rid), facets_of(self.after, rid)
                    self.causes[rid] = _resource_changes(rid, old, new)
                    self.settling[rid] = new is not None and is_settling(new[2].get("provisioningState"))
            changed = tuple(rid for rid in rids if self.causes[rid])
            known = self.parts[rids] = (changed, any(self.settling[rid] for rid in rids))
        return known

    def _unchanged(self, rid: ResourceId) -> bool | None:
        """Whether `rid` is settling, when it is a VNet or a VNet's peering that both sides parsed into the very
        same object (the parse reuses what it made of a resource that did not change): then nothing about it
        changed, and its facets need not be compared. None otherwise (a VNet's memberships are most of what a
        large diff looks up: 25,000 at 20k VNets)."""
        vnet = self.after.vnets.get(rid)
        if vnet is not None:
            return is_settling(vnet.provisioning_state) if vnet.present and self.before.vnets.get(rid) is vnet else None
        parent = self.after.vnets.get(rid.parent())
        if parent is None or not parent.present or self.before.vnets.get(parent.id) is not parent:
            return None
        return next((is_settling(p.provisioning_state) for p in parent.peerings if p.id == rid), False)

    def _route(self, route: Route) -> _Part:
        # Routes are shared by every pair between two gateway groups: keyed by identity, kept alive by the index.
        known = self.route_parts.get(id(route))
        if known is None:
            rids: list[ResourceId] = [route.circuit]
            for gid in route.gateways:
                rids.append(gid)
                ep = self.endpoints.get(gid)
                if ep is None:
                    continue
                if ep.kind == VNET_GATEWAY:
                    rids += self.index.connections.get((gid, route.circuit), ())
                elif (hub := self.topology.wan_gateways[gid].hub) is not None:
                    rids.append(hub)
            known = self.route_parts[id(route)] = self._part(tuple(rids))
        return known

    def _member(self, gid: ResourceId, vnet: ResourceId) -> _Part | None:
        ep = self.endpoints.get(gid)
        part = None
        if ep is not None and vnet in ep.domain:
            part = self._part(tuple(_membership(self.topology, ep, vnet, self.index)))
        self.member_parts.setdefault(gid.key, {})[vnet.key] = part
        return part

    def _routes_changed(self, routes: tuple[Route, ...]) -> tuple[frozenset[ResourceId], bool]:
        known = self.routes_changed.get(id(routes))
        if known is None:
            parts = [self.route_parts.get(id(route)) or self._route(route) for route in routes]
            known = self.routes_changed[id(routes)] = (frozenset(rid for rids, _ in parts for rid in rids),
                                                       any(settling for _, settling in parts))
        return known

    def _side_changed(self, routes: tuple[Route, ...], vnet: ResourceId) -> tuple[frozenset[ResourceId], bool]:
        """What `vnet`'s membership behind the gateways of `routes` contributes."""
        key = (id(routes), vnet.key)
        known = self.side_changed.get(key)
        if known is None:
            parts = []
            for route in routes:
                for gid in route.gateways:
                    part = self.member_parts.get(gid.key, _NO_MEMBERS).get(vnet.key, _UNSEEN)
                    if part is _UNSEEN:
                        part = self._member(gid, vnet)
                    if part is not None:
                        parts.append(part)
            known = self.side_changed[key] = (frozenset(rid for rids, _ in parts for rid in rids),
                                              any(settling for _, settling in parts))
        return known

    def explain(self, pair: TransitPair) -> tuple[tuple[Cause, ...], bool]:
        """(the pair's causes, or the one "unknown" cause; whether a resource it depends on is settling)."""
        # The hot loop of a large diff (once per changed pair): what the pair's routes and each of its VNets
        # contribute is worked out once per routes tuple (and VNet), so a pair costs three lookups and a union.
        routes = pair.routes
        r, a, b = self._routes_changed(routes), self._side_changed(routes, pair.a), self._side_changed(routes, pair.b)
        changed = r[0]  # most pairs' VNets changed nothing: no new set to make and hash
        if a[0]:
            changed = changed | a[0]
        if b[0]:
            changed = changed | b[0]
        settling = r[1] or a[1] or b[1]
        causes = self.explained.get(changed)
        if causes is None:
            found = [c for rid in changed for c in self.causes[rid]]
            # A provisioning-state transition only explains a change when nothing else about the pair changed.
            decisive = [c for c in found if c.prop != "provisioningState"]
            causes = self.explained[changed] = tuple(sorted(decisive or found,
                                                            key=lambda c: (c.text.lower(), c.resource)))
        return causes or self.unknown, settling


def _endpoints(given: Mapping[ResourceId, Endpoint] | None, pairs: PairSet, topology: Topology
               ) -> Mapping[ResourceId, Endpoint]:
    """The endpoints of `topology`: as given, as compute_pairs kept them, or computed (once per run at most)."""
    if given is not None:
        return given
    return pairs.endpoints if pairs.endpoints else endpoints_of(topology)


def diff_pairs(before: PairSet, after: PairSet, *, before_topology: Topology, after_topology: Topology,
               before_endpoints: Mapping[ResourceId, Endpoint] | None = None,
               after_endpoints: Mapping[ResourceId, Endpoint] | None = None) -> Diff:
    """Pairs present only after (opened) or only before (closed), each with the changes that explain it.

    A closed pair is *pending* when a resource it depended on is still settling in `after_topology`.
    `*_endpoints` may be passed when the caller already computed `endpoints_of` for those topologies; else the
    ones compute_pairs kept on the pair sets are used.
    """
    with collector_paused():
        opened_pairs = _changed(after.pairs, before.pairs)
        closed_pairs = _changed(before.pairs, after.pairs)
        opened: list[PairChange] = []
        closed: list[PairChange] = []
        if opened_pairs:
            endpoints = _endpoints(after_endpoints, after, after_topology)
            explainer = _PairExplainer(after_topology, endpoints, before_topology, after_topology)
            for pair in opened_pairs:
                causes, _ = explainer.explain(pair)
                opened.append(_new_change(pair, causes, pair.pending, after_topology))
        if closed_pairs:
            endpoints = _endpoints(before_endpoints, before, before_topology)
            explainer = _PairExplainer(before_topology, endpoints, before_topology, after_topology)
            for pair in closed_pairs:
                causes, settling = explainer.explain(pair)
                closed.append(_new_change(pair, causes, settling, before_topology))
        return Diff(opened=tuple(opened), closed=tuple(closed))
