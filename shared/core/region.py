"""The region of a working copy that decides the pairs a gateway's flag flip, or a change of one of its
connections, can move (pure: no I/O).

A new process's first event would otherwise parse the whole committed copy (20,000 VNets: 0.3-0.45 s) and work
out every gateway's endpoint (0.15 s) before pairing the one or two circuits the event touched. When an event only
flips a VNet gateway's traffic flags, or creates, deletes or changes one connection of a gateway, that gateway's
endpoint keeps its VNets, so (transit.changed_pairs) the pairs that can move are those over the circuits it
reaches (before or after), and a pair found there on one side only is checked for a route over the other circuits
of the gateways its two VNets are behind. What those steps read is held by:

- every gateway with a connection to one of the changed gateway's circuits, the home VNet of each and every VNet
  that home peers with (the gateway's domain is its home and the spokes among those peers);
- for each VNet of those domains, every VNet it peers with (and, when the flip can close a pair, every VNet that
  peers with it: what `explain` reads of a closed pair's VNets), and every gateway homed in one of them or in the
  VNet itself (its memberships: a VNet is behind a gateway only if it peers with that gateway's home), again with
  each such gateway's home and all of that home's peers;
- every connection of those gateways, and every circuit of the copy with its peerings and Global Reach links.

Each endpoint the transit rules work out from that region is the endpoint they work out from the whole copy, and
each VNet of the paired domains is behind the same gateways. `RegionIndex.of` returns None for a copy it does not
follow (Virtual WAN resources, or VNet peerings given apart from their VNets); the caller then parses the whole
copy. tests/unit/test_region.py checks decisions made through the region against decisions made on the whole copy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from shared.core.focus import top_level_id
from shared.core.snapshot import (
    CIRCUIT,
    CONNECTION,
    GATEWAY,
    HUB,
    HUB_CONNECTION,
    PEERING,
    TYPE_ALIASES,
    VNET,
    WAN_GATEWAY,
    WAN_GATEWAY_CONNECTION,
    _list,
    _opt_bool,
    _props,
    parse_resources,
    type_from_id,
)

JsonDict = dict[str, Any]

FLAGS = ("allowRemoteVnetTraffic", "allowVirtualWanTraffic")
# Not followed here: Virtual WAN membership comes from hubs and their connections, and a peering given apart
# changes its VNet's peerings; a copy holding any of these is parsed whole.
_NOT_FOLLOWED = frozenset({HUB, HUB_CONNECTION, WAN_GATEWAY, WAN_GATEWAY_CONNECTION, PEERING})


def key_of(resource_id: str) -> str:
    """The key ResourceId.parse gives `resource_id` (its comparison form), without building the id."""
    return resource_id.strip().rstrip("/").lower()


def _type_of(raw: Mapping[str, Any]) -> str:
    rtype = raw.get("type")
    if not isinstance(rtype, str):
        rtype = type_from_id(str(raw.get("id", ""))) or ""
    lowered = rtype.lower()
    return TYPE_ALIASES.get(lowered, lowered)


def flags_only(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """Whether `after` is the VNet gateway `before` with only its traffic flags changed (at least one)."""
    if _type_of(before) != GATEWAY or _type_of(after) != GATEWAY:
        return False
    if {k: v for k, v in before.items() if k != "properties"} != {k: v for k, v in after.items() if k != "properties"}:
        return False
    old, new = before.get("properties"), after.get("properties")
    if not isinstance(old, dict) or not isinstance(new, dict):
        return False
    rest_old = {k: v for k, v in old.items() if k not in FLAGS}
    rest_new = {k: v for k, v in new.items() if k not in FLAGS}
    return rest_old == rest_new and old != new


def _peers(raw: Mapping[str, Any] | None) -> list[str]:
    """The keys of every VNet `raw` (a VNet) names as a peering's remote, read as the parser reads them (a peering
    object whose remoteVirtualNetwork holds a non-blank string id)."""
    if raw is None:
        return []
    out: list[str] = []
    for peering in _list(_props(raw).get("virtualNetworkPeerings")):
        if isinstance(peering, dict):
            remote = _props(peering).get("remoteVirtualNetwork")
            text = remote.get("id") if isinstance(remote, dict) else None
            if isinstance(text, str) and text.strip():
                out.append(key_of(text))
    return out


def closes(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """Whether the flip can close a pair: a flag that was not false becomes false (a route needs neither gateway's
    flag false; an absent flag counts as allowed)."""
    old, new = _props(before), _props(after)
    return any(_opt_bool(new.get(f)) is False and _opt_bool(old.get(f)) is not False for f in FLAGS)


def connection_reach(versions: Sequence[Mapping[str, Any]]) -> tuple[str, list[str]] | None:
    """(the gateway, the circuits) that one connection's versions (before and/or after a change) name, read as the
    parser reads them; None when they are not connections, or do not name one and the same gateway."""
    if not versions or any(_type_of(v) != CONNECTION for v in versions):
        return None
    parsed = [next(iter(parse_resources([v], source="region").connections.values()), None) for v in versions]
    gateways = [c.gateway for c in parsed if c is not None and c.gateway is not None]
    if len(gateways) != len(versions) or len({g.key for g in gateways}) != 1:
        return None
    return gateways[0].value, [c.circuit.value for c in parsed if c is not None and c.circuit is not None]


class RegionIndex:
    """What `region` reads of a copy besides its VNets' own peerings: each gateway's home and connections, each
    circuit's gateways, which circuits have Global Reach, and each resource's key in copy order. A flags-only flip
    changes none of it, so the index of a copy serves the copy a flip makes of it too (`region` takes the copy)."""

    __slots__ = ("_keys", "_vnets", "_gateways", "_circuits_of", "_gateways_on", "_connections_of", "_home",
                 "_homed_in", "_global_reach")

    def __init__(self, copy: Sequence[JsonDict]) -> None:
        self._vnets: dict[str, JsonDict] = {}
        small: list[JsonDict] = []  # gateways, connections, circuits and their children: parsed (a few thousand)
        self._keys: list[str | None] = []  # each resource's key; None: a circuit or its child (always kept)
        for raw in copy:
            rtype = raw.get("type")
            if not isinstance(rtype, str) or not rtype.islower() or rtype in TYPE_ALIASES:
                rtype = _type_of(raw)
            if rtype in _NOT_FOLLOWED:
                raise _NotFollowed(rtype)
            key: str | None = key_of(str(raw.get("id", "")))
            if rtype == VNET:
                self._vnets[str(key)] = raw
            elif rtype == CIRCUIT or rtype.startswith(CIRCUIT + "/"):
                small.append(raw)
                key = None
            elif rtype in (GATEWAY, CONNECTION):
                small.append(raw)
            self._keys.append(key)
        parsed = parse_resources(small, source="region")
        self._gateways = frozenset(g.key for g in parsed.gateways)
        self._circuits_of: dict[str, set[str]] = {}
        self._gateways_on: dict[str, set[str]] = {}
        self._connections_of: dict[str, set[str]] = {}
        for connection in parsed.connections.values():
            if connection.gateway is None:
                continue
            self._connections_of.setdefault(connection.gateway.key, set()).add(connection.id.key)
            if connection.circuit is not None:
                self._circuits_of.setdefault(connection.gateway.key, set()).add(connection.circuit.key)
                self._gateways_on.setdefault(connection.circuit.key, set()).add(connection.gateway.key)
        self._global_reach = frozenset(c.id.key for c in parsed.circuits.values() if c.global_reach)
        self._home: dict[str, str] = {g.id.key: g.vnet.key for g in parsed.gateways.values() if g.vnet is not None}
        self._homed_in: dict[str, set[str]] = {}
        for gateway, vnet in self._home.items():
            self._homed_in.setdefault(vnet, set()).add(gateway)

    @classmethod
    def of(cls, copy: Sequence[JsonDict]) -> RegionIndex | None:
        """The index of `copy`; None when it holds what `region` does not follow (Virtual WAN resources, or VNet
        peerings given apart from their VNets)."""
        try:
            return cls(copy)
        except _NotFollowed:
            return None

    def _peers_of(self, keys: Iterable[str]) -> set[str]:
        return {peer for key in keys for peer in _peers(self._vnets.get(key))}

    def region(self, copy: Sequence[JsonDict], gateway_id: str, *, closing: bool = True, vnets: Iterable[str] = (),
               named: Iterable[str] = (), circuits: Iterable[str] = ()) -> list[JsonDict] | None:
        """The resources of `copy` (this index's copy, or one a flags-only flip made of it; in its order) that
        decide the pairs a change of `gateway_id`'s flags or connections can move (see the module's docstring).
        None when the copy lacks the gateway, or one of the circuits it reaches is joined to another by Global
        Reach (the gateway's flags and links then decide the Global Reach warnings, which are the estate's).

        `circuits`: circuits the gateway reaches besides those of its connections in `copy` (a new connection's).
        `closing` (see `closes`): also what explains a closed pair, the VNets that peer one-sidedly with a paired
        VNet (a pass over every VNet's peerings; an opening flip closes nothing). `vnets`: VNets whose pairs are
        read too (the committed pairs still settling), held like the paired domains' VNets; `named`: ids of
        resources read too (what a settling pair names), each held with its top-level resource (a gateway with its
        home, peers and connections)."""
        target = key_of(gateway_id)
        reached = self._circuits_of.get(target, set()) | {key_of(c) for c in circuits}
        if len(copy) != len(self._keys) or target not in self._gateways or not reached.isdisjoint(self._global_reach):
            return None
        home, homed_in = self._home, self._homed_in
        paired = {target} | {g for c in reached for g in self._gateways_on.get(c, ())}
        hubs = {home[g] for g in paired if g in home}
        domains = hubs | self._peers_of(hubs) | {key_of(v) for v in vnets}
        behind = domains | self._peers_of(domains)  # every VNet a domain VNet may be behind: itself and its peers
        if closing:
            behind |= {key for key, raw in self._vnets.items() if not domains.isdisjoint(_peers(raw))}
        tops = {key_of(top) for n in named if (top := top_level_id(n)) is not None}
        gateways = paired | {g for v in behind for g in homed_in.get(v, ())} | (tops & self._gateways)
        homes = {home[g] for g in gateways if g in home}
        keep = behind | homes | self._peers_of(homes) | gateways  # each gateway, its home and all the home's peers
        keep |= {c for g in gateways for c in self._connections_of.get(g, ())} | tops
        return [raw for raw, key in zip(copy, self._keys, strict=True) if key is None or key in keep]


class _NotFollowed(Exception):
    pass
