"""Topology -> ER-transit pairs, each with the circuits and gateways that carry it (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from shared.core.collector import collector_paused
from shared.core.model import (
    Gateway,
    PairIndex,
    PairSet,
    ResourceId,
    Route,
    Topology,
    WanGateway,
    is_failed,
    is_settling,
)

VNET_GATEWAY = "vnetGateway"
WAN_GATEWAY = "wanGateway"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A gateway that can carry ER transit, seen from the transit rules.

    domain: VNet -> True when its membership is still settling (a peering or hub connection updating).
    circuits: circuit -> True when the link to it (connection) is still settling.
    member_doubts / link_doubts: warnings on a membership or a circuit link (a Failed peering or connection).
    Ids are spelled as the resources themselves spell them, whatever casing a reference used.
    """

    id: ResourceId
    kind: str
    domain: Mapping[ResourceId, bool]
    circuits: Mapping[ResourceId, bool]
    allow_vnet: bool | None  # VNet gateways: allowRemoteVnetTraffic
    allow_wan: bool | None  # VNet gateways: allowVirtualWanTraffic; WAN gateways: allowNonVirtualWanTraffic
    virtual_wan: ResourceId | None
    settling: bool
    failed: bool
    member_doubts: Mapping[ResourceId, tuple[str, ...]] = field(default_factory=dict)  # VNet -> warnings
    link_doubts: Mapping[ResourceId, tuple[str, ...]] = field(default_factory=dict)  # circuit -> warnings


def spokes_of(topology: Topology, home: ResourceId, warnings: list[str] | None = None) -> dict[ResourceId, bool]:
    """The VNets that use `home`'s gateway through gateway transit -> whether that is still settling."""
    out: dict[ResourceId, bool] = {}
    vnet = topology.vnets.get(home)
    if vnet is None:
        return out
    for hub_side in vnet.peerings:
        if not (hub_side.allow_gateway_transit and hub_side.connected):
            continue
        spoke = topology.vnets.get(hub_side.remote_vnet)
        if spoke is None or not spoke.present:
            if warnings is not None:
                warnings.append(
                    f"{vnet.name} offers gateway transit to {hub_side.remote_vnet.name}, which is not in the "
                    "snapshot; cannot tell whether it uses the gateway"
                )
            continue
        for spoke_side in spoke.peerings:
            if (spoke_side.remote_vnet == home and spoke_side.use_remote_gateways and spoke_side.connected):
                out[spoke.id] = is_settling(hub_side.provisioning_state) or is_settling(
                    spoke_side.provisioning_state)
                break
    return out


def _failed(what: str) -> str:
    return f"{what} is in provisioning state Failed"


def _membership_doubts(topology: Topology, home: ResourceId,
                       spokes: Mapping[ResourceId, bool]) -> dict[ResourceId, tuple[str, ...]]:
    """Spoke -> warnings on the peerings that put it behind `home`'s gateway (Failed, or not in sync)."""
    out: dict[ResourceId, tuple[str, ...]] = {}
    hub = topology.vnets.get(home)
    if hub is None or not spokes:
        return out
    for hub_side in hub.peerings:
        spoke = topology.vnets.get(hub_side.remote_vnet)
        if spoke is None or spoke.id not in spokes:
            continue
        sides = (hub_side, *(q for q in spoke.peerings if q.remote_vnet == home))
        doubts = [_failed(f"peering {p.vnet.name} -> {p.remote_vnet.name}") for p in sides
                  if is_failed(p.provisioning_state)]
        doubts += [f"peering {p.vnet.name} -> {p.remote_vnet.name} is {p.sync_level}, not FullyInSync: the "
                   "prefixes advertised for the spoke may be stale until the peering is synced" for p in sides
                   if p.out_of_sync]
        if doubts:
            out[spoke.id] = tuple(doubts)
    return out


def _vnet_gateway_endpoint(topology: Topology, gw: Gateway, links: Mapping[ResourceId, bool],
                           link_doubts: Mapping[ResourceId, tuple[str, ...]],
                           spokes: dict[ResourceId, dict[ResourceId, bool]], warnings: list[str]) -> Endpoint | None:
    if not gw.is_expressroute or gw.disabled or gw.vnet is None:
        return None
    home = _canonical(topology.vnets, gw.vnet)
    if home not in spokes:
        spokes[home] = spokes_of(topology, home, warnings)
    domain = {home: False, **spokes[home]}
    return Endpoint(
        id=gw.id, kind=VNET_GATEWAY, domain=domain, circuits=links,
        allow_vnet=gw.allow_remote_vnet_traffic, allow_wan=gw.allow_virtual_wan_traffic, virtual_wan=None,
        settling=is_settling(gw.provisioning_state), failed=is_failed(gw.provisioning_state),
        member_doubts=_membership_doubts(topology, home, spokes[home]), link_doubts=link_doubts,
    )


def _wan_gateway_endpoint(topology: Topology, wgw: WanGateway, members: Mapping[ResourceId, dict[ResourceId, bool]],
                          member_doubts: Mapping[ResourceId, dict[ResourceId, tuple[str, ...]]]) -> Endpoint | None:
    if wgw.hub is None:
        return None
    hub = topology.hubs.get(wgw.hub)
    circuits = {_canonical(topology.circuits, c): state for c, state in wgw.circuits.items()}
    return Endpoint(
        id=wgw.id, kind=WAN_GATEWAY, domain=members.get(wgw.hub, {}),
        circuits={c: is_settling(state) for c, state in circuits.items()},
        allow_vnet=None, allow_wan=wgw.allow_non_virtual_wan_traffic,
        virtual_wan=hub.virtual_wan if hub is not None else None,
        settling=is_settling(wgw.provisioning_state), failed=is_failed(wgw.provisioning_state),
        member_doubts=member_doubts.get(wgw.hub, {}),
        link_doubts={c: (_failed(f"Virtual WAN gateway {wgw.id.name} link to circuit {c.name}"),)
                     for c, state in circuits.items() if is_failed(state)},
    )


def _canonical(resources: Mapping[ResourceId, Any], rid: ResourceId) -> ResourceId:
    """The id as the resource itself spells it (references may use another casing)."""
    found = resources.get(rid)
    return found.id if found is not None else rid


def endpoints_of(topology: Topology, warnings: list[str] | None = None) -> dict[ResourceId, Endpoint]:
    """Every gateway that may carry ER transit, with its domain and circuit links."""
    sink = warnings if warnings is not None else []
    links: dict[ResourceId, dict[ResourceId, bool]] = {}
    failed_links: dict[ResourceId, dict[ResourceId, list[str]]] = {}
    healthy_links: set[tuple[ResourceId, ResourceId]] = set()  # a healthy connection makes the link certain
    for conn in topology.connections.values():
        if conn.is_expressroute and conn.gateway is not None and conn.circuit is not None:
            circuit = _canonical(topology.circuits, conn.circuit)
            per_gw = links.setdefault(conn.gateway, {})
            settling = is_settling(conn.provisioning_state)
            # Several connections to one circuit: settled as soon as one of them is.
            per_gw[circuit] = per_gw.get(circuit, True) and settling
            if is_failed(conn.provisioning_state):
                failed_links.setdefault(conn.gateway, {}).setdefault(circuit, []).append(
                    _failed(f"connection {conn.id.name}"))
            else:
                healthy_links.add((conn.gateway, circuit))
    spokes: dict[ResourceId, dict[ResourceId, bool]] = {}
    out: dict[ResourceId, Endpoint] = {}
    for gw in topology.gateways.values():
        link_doubts = {c: tuple(sorted(ws)) for c, ws in failed_links.get(gw.id, {}).items()
                       if (gw.id, c) not in healthy_links}
        ep = _vnet_gateway_endpoint(topology, gw, links.get(gw.id, {}), link_doubts, spokes, sink)
        if ep is not None:
            out[ep.id] = ep
    members: dict[ResourceId, dict[ResourceId, bool]] = {}
    hub_doubts: dict[ResourceId, dict[ResourceId, tuple[str, ...]]] = {}
    for hc in topology.hub_connections.values():
        vnet = _canonical(topology.vnets, hc.remote_vnet)
        members.setdefault(hc.hub, {})[vnet] = is_settling(hc.provisioning_state)
        if is_failed(hc.provisioning_state):
            hub_doubts.setdefault(hc.hub, {})[vnet] = (_failed(f"hub connection {hc.id.name}"),)
    for wgw in topology.wan_gateways.values():
        ep = _wan_gateway_endpoint(topology, wgw, members, hub_doubts)
        if ep is not None:
            out[ep.id] = ep
    return out


def _flag_warning(gateway: ResourceId, flag: str) -> str:
    return (f"{gateway.name}: {flag} not reported; assumed allowed as on gateways created before the 2024 "
            "change")


def route_verdict(e1: Endpoint, e2: Endpoint) -> tuple[bool, list[str]]:
    """Whether two gateways on a shared circuit let their VNets reach each other, and the doubts."""
    warnings: list[str] = []
    if e1.kind == VNET_GATEWAY and e2.kind == VNET_GATEWAY:
        checks = [(e1, "allowRemoteVnetTraffic", e1.allow_vnet), (e2, "allowRemoteVnetTraffic", e2.allow_vnet)]
    elif e1.kind == WAN_GATEWAY and e2.kind == WAN_GATEWAY:
        if e1.virtual_wan is not None and e1.virtual_wan == e2.virtual_wan:
            return False, []  # hubs of one Virtual WAN talk over the WAN backbone, not ExpressRoute
        return True, [f"{e1.id.name} and {e2.id.name}: Virtual WAN hubs of different (or unknown) Virtual WANs "
                      "sharing a circuit; whether they reach each other over ExpressRoute is uncertain"]
    else:
        vnet_side, wan_side = (e1, e2) if e1.kind == VNET_GATEWAY else (e2, e1)
        checks = [(vnet_side, "allowVirtualWanTraffic", vnet_side.allow_wan),
                  (wan_side, "allowNonVirtualWanTraffic", wan_side.allow_wan)]
    for ep, flag, value in checks:
        if value is False:
            return False, []
        if value is None:
            warnings.append(_flag_warning(ep.id, flag))
    return True, warnings


def compute_pairs(topology: Topology) -> PairSet:
    """Every ER-transit pair of the topology (see DESIGN.md, "Transit rules")."""
    # Half a million routes and pairs at 20k VNets, all acyclic: see collector_paused for why the collector waits.
    with collector_paused():
        return _compute_pairs(topology)


def _compute_pairs(topology: Topology) -> PairSet:
    warnings: list[str] = list(topology.warnings)
    endpoints = endpoints_of(topology, warnings)
    by_circuit: dict[ResourceId, list[Endpoint]] = {}
    for ep in sorted(endpoints.values(), key=lambda e: e.id):
        for circuit in ep.circuits:
            by_circuit.setdefault(circuit, []).append(ep)
    member_of: dict[ResourceId, set[ResourceId]] = {}
    for ep in endpoints.values():
        for vnet in ep.domain:
            member_of.setdefault(vnet, set()).add(ep.id)
    # Enterprise topologies have hundreds of thousands of pairs: a pair is one integer made of the ranks of its
    # VNets in key order (cheap to hash, sort and hold); PairIndex makes the TransitPair when it is read.
    vnets = sorted(member_of)
    rank = {v: i for i, v in enumerate(vnets)}
    width = len(vnets)
    members = {ep.id: _members_by_state(ep, rank) for ep in endpoints.values()}

    routes: dict[int, tuple[Route, ...]] = {}
    for circuit_id, eps in sorted(by_circuit.items()):
        circuit_warnings = _circuit_doubts(topology, circuit_id)
        if len(eps) < 2 or circuit_warnings is None:
            continue
        circuit_res = topology.circuits.get(circuit_id)
        circuit_settling = circuit_res is not None and is_settling(circuit_res.provisioning_state)
        for e1, e2 in combinations(eps, 2):
            allowed, doubts = route_verdict(e1, e2)
            if not allowed:
                continue
            route_warnings = (*circuit_warnings, *doubts, *(_failed(f"gateway {e.id.name}") for e in (e1, e2)
                                                            if e.failed),
                              *e1.link_doubts.get(circuit_id, ()), *e2.link_doubts.get(circuit_id, ()))
            base_pending = (circuit_settling or e1.settling or e2.settling or e1.circuits[circuit_id]
                            or e2.circuits[circuit_id])
            # A VNet behind both gateways (two gateways in one hub) pairs with neither side's VNets.
            overlap = any(len(member_of[v]) > 1 for v in (*e1.domain, *e2.domain))
            for (pending_a, doubts_a), ranks_a in members[e1.id].items():
                for (pending_b, doubts_b), ranks_b in members[e2.id].items():
                    one_route = (Route(circuit=circuit_id, gateways=(e1.id, e2.id),
                                       pending=base_pending or pending_a or pending_b,
                                       warnings=route_warnings + doubts_a + doubts_b),)
                    for ra in ranks_a:
                        for rb in ranks_b:
                            if overlap and not member_of[vnets[ra]].isdisjoint(member_of[vnets[rb]]):
                                continue
                            key = ra * width + rb if ra < rb else rb * width + ra
                            known = routes.get(key)
                            routes[key] = one_route if known is None else known + one_route
    warnings += _global_reach_warnings(topology, by_circuit)
    return PairSet(pairs=PairIndex(vnets, routes), warnings=tuple(dict.fromkeys(warnings)), endpoints=endpoints)


def _circuit_doubts(topology: Topology, circuit_id: ResourceId) -> tuple[str, ...] | None:
    """None when the circuit carries nothing; else the warnings every route over it carries."""
    circuit = topology.circuits.get(circuit_id)
    if circuit is None:
        return (f"circuit {circuit_id.name} is not in the snapshot (another subscription?); assumed usable",)
    if not circuit.usable:
        return None
    doubts = []
    if not circuit.peerings_reported:
        doubts.append(f"circuit {circuit_id.name} reports no peerings; private peering assumed enabled")
    if is_failed(circuit.provisioning_state):
        doubts.append(_failed(f"circuit {circuit_id.name}"))
    return tuple(doubts)


def _members_by_state(ep: Endpoint, rank: Mapping[ResourceId, int]) -> dict[tuple[bool, tuple[str, ...]], list[int]]:
    """The ranks of the VNets behind a gateway, grouped by (membership settling, membership warnings)."""
    groups: dict[tuple[bool, tuple[str, ...]], list[int]] = {}
    for vnet, settling in ep.domain.items():
        groups.setdefault((settling, tuple(ep.member_doubts.get(vnet, ()))), []).append(rank[vnet])
    return groups


def _global_reach_warnings(topology: Topology, by_circuit: Mapping[ResourceId, Iterable[Endpoint]]) -> list[str]:
    # Global Reach is configured on one circuit and may show only there: join both directions, report each once.
    links = {tuple(sorted((circuit.id, other))) for circuit in topology.circuits.values()
             for other in circuit.global_reach}
    out: list[str] = []
    for first, second in sorted(links):
        for e1 in by_circuit.get(first, ()):
            for e2 in by_circuit.get(second, ()):
                if e1.id == e2.id or not set(e1.circuits).isdisjoint(e2.circuits):
                    continue
                if route_verdict(e1, e2)[0]:
                    out.append(f"{e1.id.name} ({first.name}) and {e2.id.name} ({second.name}): the circuits "
                               "are joined by Global Reach, which does not carry VNet-to-VNet traffic; not "
                               "counted as a pair")
    return out
