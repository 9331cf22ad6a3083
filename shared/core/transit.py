"""Topology -> ER-transit pairs, each with the circuits and gateways that carry it (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from itertools import combinations
from operator import attrgetter
from typing import Any

from shared.core.collector import collector_paused
from shared.core.model import (
    Gateway,
    PairIndex,
    PairSet,
    ResourceId,
    Route,
    Topology,
    TransitPair,
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
                           spokes: dict[ResourceId, tuple[dict[ResourceId, bool], tuple[str, ...]]]
                           ) -> Endpoint | None:
    if not gw.is_expressroute or gw.disabled or gw.vnet is None:
        return None
    home = _canonical(topology.vnets, gw.vnet)
    if home not in spokes:
        found: list[str] = []
        spokes[home] = (spokes_of(topology, home, found), tuple(found))
    domain = {home: False, **spokes[home][0]}
    return Endpoint(
        id=gw.id, kind=VNET_GATEWAY, domain=domain, circuits=links,
        allow_vnet=gw.allow_remote_vnet_traffic, allow_wan=gw.allow_virtual_wan_traffic, virtual_wan=None,
        settling=is_settling(gw.provisioning_state), failed=is_failed(gw.provisioning_state),
        member_doubts=_membership_doubts(topology, home, spokes[home][0]), link_doubts=link_doubts,
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
    endpoints, home_warnings = _endpoints(topology)
    if warnings is not None:
        warnings += _ordered_warnings(topology, endpoints, home_warnings)
    return endpoints


def _links(topology: Topology, only: AbstractSet[ResourceId] | None = None
           ) -> tuple[dict[ResourceId, dict[ResourceId, bool]], dict[ResourceId, dict[ResourceId, tuple[str, ...]]]]:
    """(gateway -> circuit -> link settling, gateway -> circuit -> doubts) of every gateway, or of `only`."""
    links: dict[ResourceId, dict[ResourceId, bool]] = {}
    failed_links: dict[ResourceId, dict[ResourceId, list[str]]] = {}
    healthy_links: set[tuple[ResourceId, ResourceId]] = set()  # a healthy connection makes the link certain
    for conn in topology.connections.values():
        if conn.is_expressroute and conn.gateway is not None and conn.circuit is not None:
            if only is not None and conn.gateway not in only:
                continue
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
    doubts = {gw: {c: tuple(sorted(ws)) for c, ws in per_circuit.items() if (gw, c) not in healthy_links}
              for gw, per_circuit in failed_links.items()}
    return links, doubts


def _endpoints(topology: Topology) -> tuple[dict[ResourceId, Endpoint], dict[ResourceId, tuple[str, ...]]]:
    """(the endpoints, in the topology's order, VNet gateways first; home VNet -> what its spokes warned)."""
    links, link_doubts = _links(topology)
    spokes: dict[ResourceId, tuple[dict[ResourceId, bool], tuple[str, ...]]] = {}
    out: dict[ResourceId, Endpoint] = {}
    for gw in topology.gateways.values():
        ep = _vnet_gateway_endpoint(topology, gw, links.get(gw.id, {}), link_doubts.get(gw.id, {}), spokes)
        if ep is not None:
            out[ep.id] = ep
    out.update(_wan_endpoints(topology))
    return out, {home: found for home, (_, found) in spokes.items()}


def _wan_endpoints(topology: Topology) -> dict[ResourceId, Endpoint]:
    members: dict[ResourceId, dict[ResourceId, bool]] = {}
    hub_doubts: dict[ResourceId, dict[ResourceId, tuple[str, ...]]] = {}
    for hc in topology.hub_connections.values():
        vnet = _canonical(topology.vnets, hc.remote_vnet)
        members.setdefault(hc.hub, {})[vnet] = is_settling(hc.provisioning_state)
        if is_failed(hc.provisioning_state):
            hub_doubts.setdefault(hc.hub, {})[vnet] = (_failed(f"hub connection {hc.id.name}"),)
    out: dict[ResourceId, Endpoint] = {}
    for wgw in topology.wan_gateways.values():
        ep = _wan_gateway_endpoint(topology, wgw, members, hub_doubts)
        if ep is not None:
            out[ep.id] = ep
    return out


def _ordered_warnings(topology: Topology, endpoints: Mapping[ResourceId, Endpoint],
                      home_warnings: Mapping[ResourceId, tuple[str, ...]]) -> list[str]:
    """The spokes' warnings in the order endpoints_of finds them: each home VNet's once, at its first gateway."""
    out: list[str] = []
    seen: set[ResourceId] = set()
    for gw in topology.gateways.values():
        ep = endpoints.get(gw.id)
        if ep is None or ep.kind != VNET_GATEWAY or gw.vnet is None:
            continue
        home = _canonical(topology.vnets, gw.vnet)
        if home not in seen:
            seen.add(home)
            out += home_warnings.get(home, ())
    return out


_ABSENT: Any = object()


def _changed_ids(before: Mapping[ResourceId, Any], after: Mapping[ResourceId, Any]) -> set[ResourceId]:
    # A parse that reused the earlier one shares every unchanged object: `is` settles almost all of them. One
    # lookup per key (ids hash in Python: 20,000 VNets), and the keys `after` lacks only when the counts say so.
    changed: set[ResourceId] = set()
    found = 0
    for key, value in after.items():
        old = before.get(key, _ABSENT)
        if old is _ABSENT:
            changed.add(key)
            continue
        found += 1
        if old is not value and old != value:
            changed.add(key)
    if found != len(before):
        changed.update(key for key in before if key not in after)
    return changed


def _patched_endpoints(before: Topology, before_gws: Gateways, after: Topology
                       ) -> tuple[dict[ResourceId, Endpoint], dict[ResourceId, tuple[str, ...]]] | None:
    """The endpoints of `after` from those of `before`, recomputing only the gateways a change can reach; None
    when the change is of a kind this does not follow (VNets or circuits appearing or disappearing, Virtual WAN
    resources), which the caller then computes in full."""
    if (_changed_ids(before.hubs, after.hubs) or _changed_ids(before.hub_connections, after.hub_connections)
            or _changed_ids(before.wan_gateways, after.wan_gateways)):
        return None
    for old_map, new_map in ((before.vnets, after.vnets), (before.circuits, after.circuits)):
        for rid in _changed_ids(old_map, new_map):
            old, new = old_map.get(rid), new_map.get(rid)
            if old is None or new is None or old.id.value != new.id.value or (
                    getattr(old, "present", True) != getattr(new, "present", True)):
                return None
    dirty = _changed_ids(before.gateways, after.gateways)
    for cid in _changed_ids(before.connections, after.connections):
        dirty.update(c.gateway for c in (before.connections.get(cid), after.connections.get(cid))
                     if c is not None and c.gateway is not None)
    homes: set[ResourceId] = set()
    for vid in _changed_ids(before.vnets, after.vnets):
        homes.add(vid)
        for vnet in (before.vnets.get(vid), after.vnets.get(vid)):
            homes.update(p.remote_vnet for p in (vnet.peerings if vnet is not None else ()))
    if homes:
        dirty.update(gw.id for gw in after.gateways.values() if gw.vnet is not None and gw.vnet in homes)
    links, link_doubts = _links(after, dirty)
    spokes: dict[ResourceId, tuple[dict[ResourceId, bool], tuple[str, ...]]] = {}
    out: dict[ResourceId, Endpoint] = {}
    for gw in after.gateways.values():
        if gw.id in dirty:
            ep = _vnet_gateway_endpoint(after, gw, links.get(gw.id, {}), link_doubts.get(gw.id, {}), spokes)
        else:
            ep = before_gws.endpoints.get(gw.id)
        if ep is not None:
            out[gw.id] = ep
    out.update((gid, ep) for gid, ep in before_gws.endpoints.items() if ep.kind == WAN_GATEWAY)
    home_warnings = dict(before_gws.home_warnings)
    home_warnings.update((home, found) for home, (_, found) in spokes.items())
    return out, home_warnings


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


@dataclass(frozen=True, slots=True)
class Gateways:
    """What the transit rules read of a topology before pairing VNets: its endpoints, the warnings found while
    working them out, which gateways each VNet is behind, and the endpoints on each circuit (sorted by id)."""

    endpoints: Mapping[ResourceId, Endpoint]
    warnings: tuple[str, ...]
    member_of: Mapping[ResourceId, frozenset[ResourceId]]
    by_circuit: Mapping[ResourceId, tuple[Endpoint, ...]]
    home_warnings: Mapping[ResourceId, tuple[str, ...]] = field(default_factory=dict, compare=False, repr=False)


def gateways_of(topology: Topology, *, previous: tuple[Topology, Gateways] | None = None) -> Gateways:
    """`previous`: an earlier topology and its gateways, from which this one differs in a few resources (an
    event's patch); only the gateways those resources can reach are worked out again. The result is the same."""
    patched = _patched_endpoints(*previous, topology) if previous is not None else None
    endpoints, home_warnings = patched if patched is not None else _endpoints(topology)
    warnings = _ordered_warnings(topology, endpoints, home_warnings)
    if patched is not None and previous is not None:
        member_of, by_circuit = _patched_indexes(previous[1], endpoints)
        return Gateways(endpoints=endpoints, warnings=tuple(warnings), member_of=member_of, by_circuit=by_circuit,
                        home_warnings=home_warnings)
    circuit_lists: dict[ResourceId, list[Endpoint]] = {}
    for ep in sorted(endpoints.values(), key=lambda e: e.id):
        for circuit in ep.circuits:
            circuit_lists.setdefault(circuit, []).append(ep)
    members: dict[ResourceId, set[ResourceId]] = {}
    for ep in endpoints.values():
        for vnet in ep.domain:
            members.setdefault(vnet, set()).add(ep.id)
    return Gateways(endpoints=endpoints, warnings=tuple(warnings),
                    member_of={v: frozenset(g) for v, g in members.items()},
                    by_circuit={c: tuple(eps) for c, eps in circuit_lists.items()}, home_warnings=home_warnings)


def _patched_indexes(previous: Gateways, endpoints: Mapping[ResourceId, Endpoint]
                     ) -> tuple[dict[ResourceId, frozenset[ResourceId]], dict[ResourceId, tuple[Endpoint, ...]]]:
    """member_of and by_circuit of `endpoints` from those of `previous`, redone only where an endpoint is not the
    very object `previous` holds (an event's patch recomputes a few): the same as computing them in full (checked by
    tests/unit/test_changed_pairs.py), without a pass over the 20,000 VNets of an enterprise estate."""
    old = previous.endpoints
    moved = [g for g in old.keys() | endpoints.keys() if old.get(g) is not endpoints.get(g)]
    member_of = dict(previous.member_of)
    by_circuit = dict(previous.by_circuit)
    vnets: set[ResourceId] = set()
    circuits: set[ResourceId] = set()
    for g in moved:
        for ep in (old.get(g), endpoints.get(g)):
            if ep is not None:
                vnets.update(ep.domain)
                circuits.update(ep.circuits)
    moved_set = set(moved)
    for vnet in vnets:
        gateways = {g for g in member_of.get(vnet, ()) if g not in moved_set}
        gateways.update(g for g in moved if (ep := endpoints.get(g)) is not None and vnet in ep.domain)
        if gateways:
            member_of[vnet] = frozenset(gateways)
        else:
            member_of.pop(vnet, None)
    for circuit in circuits:
        on = [ep for ep in by_circuit.get(circuit, ()) if ep.id not in moved_set]
        on += [ep for g in moved if (ep := endpoints.get(g)) is not None and circuit in ep.circuits]
        if on:
            by_circuit[circuit] = tuple(sorted(on, key=lambda e: e.id))
        else:
            by_circuit.pop(circuit, None)
    return member_of, by_circuit


def compute_pairs(topology: Topology, *, gateways: Gateways | None = None) -> PairSet:
    """Every ER-transit pair of the topology (see DESIGN.md, "Transit rules").

    `gateways` may be passed when `gateways_of(topology)` is already known.
    """
    # Half a million routes and pairs at 20k VNets, all acyclic: see collector_paused for why the collector waits.
    with collector_paused():
        return _compute_pairs(topology, gateways or gateways_of(topology))


def _pair_warnings(topology: Topology, gws: Gateways) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*topology.warnings, *gws.warnings,
                                *_global_reach_warnings(topology, gws.by_circuit)]))


def _route_base(topology: Topology, circuit_id: ResourceId, e1: Endpoint, e2: Endpoint,
                circuit: tuple[tuple[str, ...] | None, bool] | None = None) -> tuple[bool, tuple[str, ...]] | None:
    """(pending, warnings) shared by every route over `circuit_id` between the VNets of two gateways on it
    (`e1` before `e2` in id order), or None when the circuit or the gateways carry nothing between them.
    `circuit`: _circuit_state(topology, circuit_id), when the caller pairs many gateways on one circuit."""
    circuit_warnings, circuit_settling = circuit if circuit is not None else _circuit_state(topology, circuit_id)
    if circuit_warnings is None:
        return None
    allowed, doubts = route_verdict(e1, e2)
    if not allowed:
        return None
    route_warnings = (*circuit_warnings, *doubts, *(_failed(f"gateway {e.id.name}") for e in (e1, e2) if e.failed),
                      *e1.link_doubts.get(circuit_id, ()), *e2.link_doubts.get(circuit_id, ()))
    pending = (circuit_settling or e1.settling or e2.settling or e1.circuits[circuit_id]
               or e2.circuits[circuit_id])
    return pending, route_warnings


def _circuit_state(topology: Topology, circuit_id: ResourceId) -> tuple[tuple[str, ...] | None, bool]:
    """(the circuit's doubts, or None when it carries nothing; whether it is settling)."""
    circuit_res = topology.circuits.get(circuit_id)
    return (_circuit_doubts(topology, circuit_id),
            circuit_res is not None and is_settling(circuit_res.provisioning_state))


_ID_KEY = attrgetter("key")


def _compute_pairs(topology: Topology, gws: Gateways, only: AbstractSet[ResourceId] | None = None) -> PairSet:
    """The pairs (with `only`: their routes over those circuits alone, all warnings still)."""
    by_circuit = gws.by_circuit
    member_of = gws.member_of
    circuits = sorted(by_circuit if only is None else (c for c in only if c in by_circuit))
    # Enterprise topologies have hundreds of thousands of pairs: a pair is one integer made of the ranks of its
    # VNets in key order (cheap to hash, sort and hold); PairIndex makes the TransitPair when it is read.
    # Sorted on the ids' keys, which is how ResourceId orders itself (C string comparisons, not __lt__ calls).
    if only is None:
        vnets = sorted(member_of, key=_ID_KEY)
    else:
        vnets = sorted({v for c in circuits for ep in by_circuit[c] for v in ep.domain}, key=_ID_KEY)
    rank = {v: i for i, v in enumerate(vnets)}
    width = len(vnets)
    members: dict[ResourceId, dict[tuple[bool, tuple[str, ...]], list[int]]] = {}
    shares: dict[ResourceId, bool] = {}  # gateway -> whether a VNet behind it is behind another gateway too

    routes: dict[int, tuple[Route, ...]] = {}
    add = routes.setdefault
    for circuit_id in circuits:
        eps = by_circuit[circuit_id]
        circuit = _circuit_state(topology, circuit_id)
        if len(eps) < 2 or circuit[0] is None:
            continue
        if all(ep.kind == VNET_GATEWAY for ep in eps):
            # A route needs both ends to allow remote VNet traffic, which gateways since 2024 block by default: the
            # gateways that block it are left out before pairing (route_verdict refuses them; 89,000 pairings of
            # gateways at 20k VNets, 5,600 allowed), which keeps the order of the rest.
            eps = tuple(ep for ep in eps if ep.allow_vnet is not False)
        for e1, e2 in combinations(eps, 2):
            base = _route_base(topology, circuit_id, e1, e2, circuit)
            if base is None:
                continue
            base_pending, route_warnings = base
            for ep in (e1, e2):
                if ep.id not in members:
                    members[ep.id] = _members_by_state(ep, rank)
                    shares[ep.id] = any(len(member_of[v]) > 1 for v in ep.domain)
            # A VNet behind both gateways (two gateways in one hub) pairs with neither side's VNets.
            overlap = shares[e1.id] or shares[e2.id]
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
                            # One hash lookup for a pair seen first (most): setdefault gives back one_route itself.
                            known = add(key, one_route)
                            if known is not one_route:
                                routes[key] = known + one_route
    return PairSet(pairs=PairIndex(vnets, routes), warnings=_pair_warnings(topology, gws), endpoints=gws.endpoints)


def routes_between(topology: Topology, gws: Gateways, a: ResourceId, b: ResourceId, *,
                   skip: AbstractSet[ResourceId] = frozenset()) -> tuple[Route, ...]:
    """The routes compute_pairs gives the pair (a, b), in its order, over circuits not in `skip`; reads only the
    gateways the two VNets are behind (a pair's worth of work, not the estate's)."""
    ga, gb = gws.member_of.get(a), gws.member_of.get(b)
    if not ga or not gb or not ga.isdisjoint(gb):
        return ()  # behind one gateway on both sides: they reach each other through the hub, not ExpressRoute
    found: list[tuple[ResourceId, Endpoint, ResourceId, Endpoint, ResourceId]] = []
    for g1 in ga:
        for g2 in gb:
            x, y = gws.endpoints[g1], gws.endpoints[g2]
            first, first_vnet, second, second_vnet = (x, a, y, b) if x.id < y.id else (y, b, x, a)
            for circuit_id in x.circuits.keys() & y.circuits.keys():
                if circuit_id not in skip:
                    found.append((circuit_id, first, first_vnet, second, second_vnet))
    out: list[Route] = []
    for circuit_id, e1, v1, e2, v2 in sorted(found, key=lambda f: (f[0], f[1].id, f[3].id)):
        base = _route_base(topology, circuit_id, e1, e2)
        if base is None:
            continue
        base_pending, route_warnings = base
        out.append(Route(circuit=circuit_id, gateways=(e1.id, e2.id),
                         pending=base_pending or e1.domain[v1] or e2.domain[v2],
                         warnings=(route_warnings + tuple(e1.member_doubts.get(v1, ()))
                                   + tuple(e2.member_doubts.get(v2, ())))))
    return tuple(out)


def changed_pairs(before: Topology, before_gws: Gateways, after: Topology, after_gws: Gateways, *,
                  also: Iterable[tuple[ResourceId, ResourceId]] = ()) -> tuple[PairSet, PairSet]:
    """The two sides of a diff between topologies that differ in a few resources, without pairing the estate.

    Each side holds, with all their routes, the pairs whose presence differs between the two topologies, and the
    pairs of `also` where that side has them; every other pair is on both sides or on neither. So a diff of the
    two sides is the diff of the whole pair sets, and len(after side) - len(before side) is how much the number
    of pairs changed. Warnings and endpoints are those of the whole topology, as compute_pairs gives them.

    Only circuits whose routes can differ are paired: those of a gateway whose endpoint changed, of a VNet whose
    set of gateways changed, and those whose own resource changed. A pair found on them on one side only is
    checked for a route over the other circuits (identical on both sides) before it counts as a change.
    tests/unit/test_changed_pairs.py checks this against compute_pairs on both topologies.
    """
    with collector_paused():
        e0, e1 = before_gws.endpoints, after_gws.endpoints
        moved_gateways = [g for g in e0.keys() | e1.keys() if e0.get(g) != e1.get(g)]
        touched: set[ResourceId] = set()
        moved_vnets: set[ResourceId] = set()
        for g in moved_gateways:
            for ep in (e0.get(g), e1.get(g)):
                if ep is not None:
                    touched.update(ep.circuits)
                    moved_vnets.update(v for v in ep.domain
                                       if before_gws.member_of.get(v) != after_gws.member_of.get(v))
        for v in moved_vnets:
            for gws in (before_gws, after_gws):
                for g in gws.member_of.get(v, ()):
                    touched.update(gws.endpoints[g].circuits)
        touched.update(c for c in before.circuits.keys() | after.circuits.keys()
                       if before.circuits.get(c) != after.circuits.get(c))
        sides = (_compute_pairs(before, before_gws, touched), _compute_pairs(after, after_gws, touched))
        keys0, keys1 = (_keyed(side.pairs) for side in sides)
        kept: tuple[dict[tuple[str, str], _Keyed], dict[tuple[str, str], _Keyed]] = ({}, {})
        for key in keys0.keys() ^ keys1.keys():
            side = 0 if key in keys0 else 1
            a, b, found = (keys0 if side == 0 else keys1)[key]
            if routes_between(after, after_gws, a, b, skip=touched):
                continue  # also carried over a circuit that is the same on both sides: present before and after
            kept[side][key] = (a, b, found)
        for x, y in also:
            a, b = (x, y) if x.key < y.key else (y, x)
            for side, (topology, gws) in enumerate(((before, before_gws), (after, after_gws))):
                found = routes_between(topology, gws, a, b)
                if found:
                    kept[side][(a.key, b.key)] = (a, b, found)
                else:
                    kept[side].pop((a.key, b.key), None)
        before_side, after_side = (PairSet(pairs=_index(k), warnings=s.warnings, endpoints=s.endpoints)
                                   for k, s in zip(kept, sides, strict=True))
        return before_side, after_side


_Keyed = tuple[ResourceId, ResourceId, tuple[Route, ...]]


def _keyed(pairs: Mapping[tuple[str, str], TransitPair]) -> dict[tuple[str, str], _Keyed]:
    if isinstance(pairs, PairIndex):
        return {(a.key, b.key): (a, b, r) for a, b, r in pairs.routes_by_pair()}
    return {key: (p.a, p.b, p.routes) for key, p in pairs.items()}


def _index(pairs: Mapping[tuple[str, str], _Keyed]) -> PairIndex:
    vnets = sorted({v for a, b, _ in pairs.values() for v in (a, b)})
    rank = {v: i for i, v in enumerate(vnets)}
    width = len(vnets)
    return PairIndex(vnets, {rank[a] * width + rank[b]: routes for a, b, routes in pairs.values()})


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
