"""Why two VNets are (or are not) an ER-transit pair: the routes that carry it, or every missing condition (pure).

The conditions mirror DESIGN.md "Transit rules" and DOMAIN.md; `compute_pairs` stays the one judge of openness.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.core.escape import terminal_lines
from shared.core.model import Gateway, PairSet, ResourceId, Topology, VirtualNetwork
from shared.core.transit import WAN_GATEWAY, Endpoint, compute_pairs, endpoints_of


class VnetLookupError(ValueError):
    """A VNet named on the command line that is not in the topology, or whose name is ambiguous."""


@dataclass(frozen=True, slots=True)
class Carrier:
    """One route carrying an open pair: `gateways` is (A's gateway, B's gateway)."""

    circuit: ResourceId
    gateways: tuple[ResourceId, ResourceId]
    pending: bool
    warnings: tuple[str, ...]
    why: str = ""  # in words: what lets this route carry the pair


@dataclass(frozen=True, slots=True)
class RouteAttempt:
    """A gateway of A and a gateway of B on one circuit, with what that route lacks."""

    gateways: tuple[ResourceId, ResourceId]
    missing: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CircuitAttempt:
    """A circuit both sides could share: what the circuit itself lacks, and each gateway pair's gaps."""

    circuit: ResourceId
    missing: tuple[str, ...]
    routes: tuple[RouteAttempt, ...]


@dataclass(frozen=True, slots=True)
class Explanation:
    a: ResourceId
    b: ResourceId
    open: bool
    carriers: tuple[Carrier, ...] = ()
    missing: tuple[str, ...] = ()  # every missing condition, flat and de-duplicated, in text order
    reasons: tuple[str, ...] = ()  # the conditions that hold whatever the circuit (no common circuit, ...)
    circuits: tuple[CircuitAttempt, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def status(self) -> str:
        if not self.open:
            return "closed"
        return "pending" if all(c.pending for c in self.carriers) else "open"

    def to_json(self) -> dict[str, Any]:
        return {
            "vnets": [self.a.value, self.b.value],
            "open": self.open,
            "status": self.status,
            "carriers": [{"circuit": c.circuit.value, "gateways": [g.value for g in c.gateways],
                          "pending": c.pending, "warnings": list(c.warnings), "why": c.why} for c in self.carriers],
            "missing": list(self.missing),
            "circuits": [{"circuit": ca.circuit.value, "missing": list(ca.missing),
                          "routes": [{"gateways": [g.value for g in r.gateways], "missing": list(r.missing),
                                      "why": _route_why(ca, r)} for r in ca.routes]} for ca in self.circuits],
            "warnings": list(self.warnings),
            "text": self.text(),
        }

    def text(self) -> str:
        head = f"{self.a.name} <-> {self.b.name}"
        if self.open:
            lines = [f"{head}: open ER-transit pair" + (" (pending: a resource is still settling)"
                                                        if self.status == "pending" else "")]
            for c in self.carriers:
                ga, gb = c.gateways
                lines.append(f"- via circuit {c.circuit.name}: {ga.name} <-> {gb.name}"
                             + (" (pending)" if c.pending else "") + (f": {c.why}" if c.why else ""))
            lines += [f"warning: {w}" for w in self.warnings]
            return terminal_lines(lines)  # names are others' text: no injected line, ANSI or runner command
        lines = [f"{head}: not an ER-transit pair"]
        lines += [f"- {r}" for r in self.reasons]
        for ca in self.circuits:
            lines += [f"- via circuit {ca.circuit.name}: {m}" for m in ca.missing]
            for r in ca.routes:
                ga, gb = r.gateways
                lines.append(f"- via circuit {ca.circuit.name}, {ga.name} <-> {gb.name}: " + _route_why(ca, r))
        lines += [f"warning: {w}" for w in self.warnings]
        return terminal_lines(lines)


def _route_why(ca: CircuitAttempt, route: RouteAttempt) -> str:
    """What keeps one considered route closed, in words (never an empty reason)."""
    if route.missing:
        return "; ".join(route.missing)
    if ca.missing:
        return f"both gateways would carry it, but circuit {ca.circuit.name} cannot (above)"
    return "no missing condition found on this route (please report this)"


def _carrier_why(e1: Endpoint, e2: Endpoint) -> str:
    """Why a route carries the pair, in words (DESIGN.md transit rules)."""
    kinds = {e1.kind, e2.kind}
    if kinds == {WAN_GATEWAY}:
        return "Virtual WAN hubs of different (or unknown) Virtual WANs sharing the circuit"
    if WAN_GATEWAY in kinds:
        vnet_side, wan_side = (e1, e2) if e2.kind == WAN_GATEWAY else (e2, e1)
        return (f"{vnet_side.id.name} allows Virtual WAN traffic ({_flag(vnet_side.allow_wan)}) and "
                f"{wan_side.id.name} allows non-Virtual WAN traffic ({_flag(wan_side.allow_wan)})")
    return (f"both gateways allow remote VNet traffic ({e1.id.name} {_flag(e1.allow_vnet)}, {e2.id.name} "
            f"{_flag(e2.allow_vnet)})")


def _flag(value: bool | None) -> str:
    return "not reported, assumed allowed" if value is None else "true" if value else "false"


def resolve_vnet(topology: Topology, text: str) -> ResourceId:
    """A VNet by id (case-insensitive) or by name when the name is unique; VnetLookupError otherwise."""
    wanted = text.strip()
    if wanted.startswith("/"):
        rid = ResourceId.parse(wanted)
        if rid in topology.vnets:
            return next(v for v in topology.vnets if v == rid)
        raise VnetLookupError(f"VNet {wanted} is not in the snapshot")
    matches = sorted(v for v in topology.vnets if v.name.lower() == wanted.lower())
    if not matches:
        raise VnetLookupError(f"no VNet named {wanted!r} in the snapshot")
    if len(matches) > 1:
        raise VnetLookupError(f"VNet name {wanted!r} is ambiguous: " + ", ".join(m.value for m in matches)
                              + "; give the id")
    return matches[0]


@dataclass(slots=True)
class _Candidate:
    """A gateway a VNet could sit behind, with the membership conditions it does not meet."""

    gateway: ResourceId
    kind: str
    membership: list[str]
    gateway_missing: list[str]
    circuits: list[ResourceId]
    allow_vnet: bool | None = None
    allow_wan: bool | None = None
    virtual_wan: ResourceId | None = None


def _peering_gaps(local: VirtualNetwork | None, local_id: ResourceId, remote: ResourceId, *,
                  spoke_side: bool) -> list[str]:
    """What keeps one side of a hub-spoke peering from gateway transit (spoke: useRemoteGateways; hub: allow...)."""
    if local is None or not local.present:
        return [f"{local_id.name} is not in the snapshot (its peering to {remote.name} is unknown)"]
    side = next((p for p in local.peerings if p.remote_vnet == remote), None)
    if side is None:
        return [f"{local_id.name} has no peering to {remote.name}"]
    gaps = []
    if spoke_side and not side.use_remote_gateways:
        gaps.append(f"{local_id.name}'s peering to {remote.name} does not use remote gateways")
    if not spoke_side and not side.allow_gateway_transit:
        gaps.append(f"{local_id.name}'s peering to {remote.name} does not allow gateway transit")
    if not side.connected:
        gaps.append(f"{local_id.name}'s peering to {remote.name} is {side.peering_state}, not Connected")
    return gaps


@dataclass(frozen=True, slots=True)
class ExplainIndex:
    """What every explanation of one topology reads: the gateways in id order and their circuit links. Made once
    when many pairs are explained (explain_index), rather than sorting the estate for each VNet."""

    by_home: Mapping[ResourceId, tuple[Gateway, ...]]  # the ExpressRoute gateways in each VNet
    peered_from: Mapping[ResourceId, frozenset[ResourceId]]  # VNet -> the VNets with a peering to it
    links: Mapping[ResourceId, list[ResourceId]]


def explain_index(topology: Topology) -> ExplainIndex:
    links: dict[ResourceId, list[ResourceId]] = {}
    for conn in sorted(topology.connections.values(), key=lambda c: c.id):
        if conn.is_expressroute and conn.gateway is not None and conn.circuit is not None:
            links.setdefault(conn.gateway, []).append(conn.circuit)
    by_home: dict[ResourceId, list[Gateway]] = {}
    for gw in topology.gateways.values():
        if gw.is_expressroute and gw.vnet is not None:
            by_home.setdefault(gw.vnet, []).append(gw)
    peered_from: dict[ResourceId, set[ResourceId]] = {}
    for v in topology.vnets.values():
        for p in v.peerings:
            peered_from.setdefault(p.remote_vnet, set()).add(v.id)
    return ExplainIndex({h: tuple(g) for h, g in by_home.items()},
                        {v: frozenset(s) for v, s in peered_from.items()}, links)


def _candidates(topology: Topology, vnet: ResourceId, index: ExplainIndex) -> list[_Candidate]:
    out: list[_Candidate] = []
    own = topology.vnets.get(vnet)
    links = index.links
    # Only the gateways in the VNet itself or in a VNet peered with it (either way) can be its candidates.
    homes = {vnet, *(p.remote_vnet for p in (own.peerings if own is not None else ())),
             *index.peered_from.get(vnet, ())}
    for gw in sorted((g for h in homes for g in index.by_home.get(h, ())), key=lambda g: g.id):
        home = gw.vnet
        assert home is not None  # by_home holds gateways with a VNet only
        if home == vnet:
            membership: list[str] = []
        else:
            hub = topology.vnets.get(home)
            peered = (own is not None and any(p.remote_vnet == home for p in own.peerings)) or (
                hub is not None and any(p.remote_vnet == vnet for p in hub.peerings))
            if not peered:
                continue
            membership = _peering_gaps(own, vnet, home, spoke_side=True)
            membership += _peering_gaps(hub, home, vnet, spoke_side=False)
        gaps = [f"{gw.id.name} adminState is {gw.admin_state}"] if gw.disabled else []
        out.append(_Candidate(gateway=gw.id, kind="vnetGateway", membership=membership, gateway_missing=gaps,
                              circuits=list(dict.fromkeys(links.get(gw.id, []))),
                              allow_vnet=gw.allow_remote_vnet_traffic, allow_wan=gw.allow_virtual_wan_traffic))
    for wgw in sorted(topology.wan_gateways.values(), key=lambda g: g.id):
        if wgw.hub is None:
            continue
        if not any(hc.hub == wgw.hub and hc.remote_vnet == vnet for hc in topology.hub_connections.values()):
            continue
        hub_res = topology.hubs.get(wgw.hub)
        out.append(_Candidate(gateway=wgw.id, kind=WAN_GATEWAY, membership=[], gateway_missing=[],
                              circuits=sorted(wgw.circuits), allow_wan=wgw.allow_non_virtual_wan_traffic,
                              virtual_wan=hub_res.virtual_wan if hub_res is not None else None))
    return out


def _flag_gaps(ga: _Candidate, gb: _Candidate) -> list[str]:
    if ga.kind == WAN_GATEWAY and gb.kind == WAN_GATEWAY:
        if ga.virtual_wan is not None and ga.virtual_wan == gb.virtual_wan:
            return [f"{ga.gateway.name} and {gb.gateway.name} serve hubs of the same Virtual WAN "
                    f"{ga.virtual_wan.name}: they reach each other over the Virtual WAN backbone, not ExpressRoute"]
        return []
    if ga.kind != WAN_GATEWAY and gb.kind != WAN_GATEWAY:
        return [f"{g.gateway.name} allowRemoteVnetTraffic is false" for g in (ga, gb) if g.allow_vnet is False]
    gaps = []
    for g in (ga, gb):
        flag = "allowNonVirtualWanTraffic" if g.kind == WAN_GATEWAY else "allowVirtualWanTraffic"
        if g.allow_wan is False:
            gaps.append(f"{g.gateway.name} {flag} is false")
    return gaps


def _circuit_gaps(topology: Topology, circuit: ResourceId) -> list[str]:
    res = topology.circuits.get(circuit)
    if res is None or res.usable:
        return []
    gaps = []
    if (res.service_provider_state or "").lower() != "provisioned":
        gaps.append(f"circuit {circuit.name} serviceProviderProvisioningState is "
                    f"{res.service_provider_state or 'not reported'}, not Provisioned")
    if not res.enabled:
        gaps.append(f"circuit {circuit.name} circuitProvisioningState is {res.circuit_provisioning_state}, "
                    "not Enabled")
    if res.peerings_reported and res.private_peering_state is None:
        gaps.append(f"circuit {circuit.name} has no AzurePrivatePeering")
    elif res.peerings_reported and (res.private_peering_state or "").lower() != "enabled":
        gaps.append(f"circuit {circuit.name} private peering state is {res.private_peering_state}, not Enabled")
    return gaps


def _names(ids: Iterable[ResourceId]) -> str:
    names = [i.name for i in sorted(set(ids))]
    return ", ".join(names) if names else "no circuit"


def explain_pair(topology: Topology, a: ResourceId, b: ResourceId, *, pairs: PairSet | None = None,
                 endpoints: Mapping[ResourceId, Endpoint] | None = None,
                 index: ExplainIndex | None = None) -> Explanation:
    """Whether A and B form an ER-transit pair; if so what carries it, if not every condition that is missing.

    `pairs`, `endpoints` and `index` (explain_index) may be passed when already computed for `topology`
    (explaining many pairs).
    """
    pairs = pairs if pairs is not None else compute_pairs(topology)
    key = (a.key, b.key) if a.key < b.key else (b.key, a.key)
    endpoints = endpoints if endpoints is not None else endpoints_of(topology)
    pair = pairs.pairs.get(key)
    if pair is not None:
        carriers = []
        for route in pair.routes:
            g1, g2 = route.gateways
            ordered = (g1, g2) if a in endpoints[g1].domain and b in endpoints[g2].domain else (g2, g1)
            carriers.append(Carrier(route.circuit, ordered, route.pending, route.warnings,
                                    _carrier_why(endpoints[ordered[0]], endpoints[ordered[1]])))
        return Explanation(a=a, b=b, open=True, carriers=tuple(carriers), warnings=pair.warnings)

    reasons: list[str] = []
    if a == b:
        reasons.append(f"{a.name} and {b.name} are the same VNet")
        return Explanation(a=a, b=b, open=False, missing=tuple(reasons), reasons=tuple(reasons))
    shared = sorted(ep.id for ep in endpoints.values() if a in ep.domain and b in ep.domain)
    for gid in shared:
        reasons.append(f"{a.name} and {b.name} are both behind {gid.name}: VNets behind one gateway reach each "
                       "other through the hub, not through ExpressRoute")
    index = index if index is not None else explain_index(topology)
    cands = {v: _candidates(topology, v, index) for v in (a, b)}
    for v in (a, b):
        if not cands[v]:
            reasons.append(f"{v.name} is not behind any ExpressRoute gateway (none in the VNet, no peering to a "
                           "VNet that has one, no Virtual WAN hub connection)")
        for c in cands[v]:
            if not c.circuits:
                reasons.append(f"{c.gateway.name} has no ExpressRoute connection to a circuit")
    reach = {v: {circ for c in cands[v] for circ in c.circuits} for v in (a, b)}
    common = sorted(reach[a] & reach[b])
    if cands[a] and cands[b] and not common:
        reasons.append(f"no common circuit: {a.name} reaches {_names(reach[a])}, {b.name} reaches "
                       f"{_names(reach[b])}")
        for ca in sorted(reach[a]):
            res = topology.circuits.get(ca)
            for cb in sorted(reach[b]):
                other = topology.circuits.get(cb)
                if (res is not None and cb in res.global_reach) or (other is not None and ca in other.global_reach):
                    reasons.append(f"circuits {ca.name} and {cb.name} are joined by Global Reach, which does not "
                                   "carry VNet-to-VNet traffic")
    attempts: list[CircuitAttempt] = []
    for circuit in common:
        routes = []
        for ga in (c for c in cands[a] if circuit in c.circuits):
            for gb in (c for c in cands[b] if circuit in c.circuits):
                if ga.gateway == gb.gateway:
                    gaps = [f"{ga.gateway.name} is the gateway of both sides: one gateway does not carry transit "
                            "between its own VNets"]
                else:
                    gaps = [*ga.membership, *gb.membership, *ga.gateway_missing, *gb.gateway_missing,
                            *_flag_gaps(ga, gb)]
                routes.append(RouteAttempt((ga.gateway, gb.gateway), tuple(dict.fromkeys(gaps))))
        attempts.append(CircuitAttempt(circuit, tuple(_circuit_gaps(topology, circuit)), tuple(routes)))
    if not shared and not any(ca.missing for ca in attempts) and any(not r.missing for ca in attempts
                                                                     for r in ca.routes):
        reasons.append("no missing condition found, yet the transit rules give no pair (please report this)")
    missing = [*reasons, *(m for ca in attempts for m in ca.missing),
               *(m for ca in attempts for r in ca.routes for m in r.missing)]
    return Explanation(a=a, b=b, open=False, missing=tuple(dict.fromkeys(missing)), reasons=tuple(reasons),
                       circuits=tuple(attempts))


def explanation_text(topology: Topology, a: ResourceId, b: ResourceId) -> str:
    """The readable explanation of one pair (what the CLI prints; alerts can append it)."""
    return explain_pair(topology, a, b).text()
