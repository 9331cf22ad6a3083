"""The topology and transit-pair value types; frozen, and free of any I/O."""

from __future__ import annotations

import sys
from collections.abc import Callable, ItemsView, Iterable, Iterator, KeysView, Mapping, Sequence, ValuesView
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.core.transit import Endpoint

SETTLING_STATES = frozenset({"updating", "creating", "deleting"})


@dataclass(frozen=True, slots=True, eq=False)
class ResourceId:
    """An ARM resource id: compared case-insensitively, displayed with its original casing.

    Ids are the keys of every map in the core, so equality, hashing and ordering are written by hand on `key`
    alone: the generated ones build a tuple per call, which was a third of a 20k-VNet diff. `key` is interned,
    so the many ids that name one resource share one string (compared by identity, hash computed once).
    """

    key: str = field(repr=False)
    value: str

    @classmethod
    def parse(cls, raw: str) -> ResourceId:
        """The id of `raw` (surrounding blanks and trailing slashes dropped). Built through its slots' own
        setters: a frozen dataclass's __init__ sets each field through object.__setattr__, and a 20k-VNet estate
        parses 107,000 ids (0.06 s of a 0.5 s parse)."""
        text = raw.strip().rstrip("/")
        rid = _NEW(ResourceId)
        _SET_KEY(rid, sys.intern(text.lower()))
        _SET_VALUE(rid, text)
        return rid

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ResourceId):
            return self.key == other.key
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        if isinstance(other, ResourceId):
            return self.key != other.key
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.key)

    def __lt__(self, other: ResourceId) -> bool:
        return self.key < other.key

    def __le__(self, other: ResourceId) -> bool:
        return self.key <= other.key

    def __gt__(self, other: ResourceId) -> bool:
        return self.key > other.key

    def __ge__(self, other: ResourceId) -> bool:
        return self.key >= other.key

    @property
    def name(self) -> str:
        return self.value.rsplit("/", 1)[-1]

    def _segment_after(self, label: str) -> str:
        parts = self.value.split("/")
        for i, part in enumerate(parts[:-1]):
            if part.lower() == label:
                return parts[i + 1]
        return ""

    @property
    def subscription(self) -> str:
        return self._segment_after("subscriptions")

    @property
    def resource_group(self) -> str:
        return self._segment_after("resourcegroups")

    def parent(self, levels: int = 2) -> ResourceId:
        """The id with the last `levels` segments removed (child type + child name by default)."""
        return ResourceId.parse("/".join(self.value.split("/")[:-levels]))

    def __str__(self) -> str:
        return self.value


_NEW = object.__new__
_SET_KEY = ResourceId.__dict__["key"].__set__
_SET_VALUE = ResourceId.__dict__["value"].__set__


def slot_maker(cls: type[Any]) -> Callable[..., Any]:
    """A positional constructor (every field, in order) for a frozen slots dataclass that sets each slot through
    its own setter, as ResourceId.parse does: a frozen dataclass's __init__ goes through object.__setattr__ for
    each field, and a 20k-VNet parse builds 36,000 peerings and 20,000 VNets (0.08 s of a 0.45 s parse). Made
    like dataclasses makes __init__ (generated source); tests/unit/test_model_makers.py checks the objects equal
    (and hash like) those the dataclass's own __init__ makes."""
    names = [f.name for f in fields(cls)]
    scope: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    scope.update({f"_set{i}": cls.__dict__[name].__set__ for i, name in enumerate(names)})
    body = "".join(f"    _set{i}(obj, {name})\n" for i, name in enumerate(names))
    exec(f"def make({', '.join(names)}):\n    obj = _new(_cls)\n{body}    return obj\n", scope)  # noqa: S102
    make: Callable[..., Any] = scope["make"]
    return make


def is_settling(provisioning_state: str | None) -> bool:
    return (provisioning_state or "").lower() in SETTLING_STATES


def is_failed(provisioning_state: str | None) -> bool:
    return (provisioning_state or "").lower() == "failed"


@dataclass(frozen=True, slots=True)
class Peering:
    id: ResourceId
    vnet: ResourceId
    remote_vnet: ResourceId
    allow_gateway_transit: bool
    use_remote_gateways: bool
    peering_state: str
    provisioning_state: str | None
    # peeringSyncLevel (REST VirtualNetworkPeeringLevel: FullyInSync | LocalNotInSync | RemoteNotInSync |
    # LocalAndRemoteNotInSync). Not in sync: an address space changed and the peering was not synced since
    # (Microsoft Learn, "Update the address space for a peered virtual network"), so what the hub's gateway
    # advertises for the spoke may be stale.
    sync_level: str | None = None

    @property
    def connected(self) -> bool:
        return self.peering_state.lower() == "connected"

    @property
    def out_of_sync(self) -> bool:
        """Reported as not in sync (an absent level is no evidence either way)."""
        return self.sync_level is not None and self.sync_level.lower() != "fullyinsync"


@dataclass(frozen=True, slots=True)
class VirtualNetwork:
    id: ResourceId
    address_prefixes: tuple[str, ...]
    location: str
    tags: Mapping[str, str]
    provisioning_state: str | None
    peerings: tuple[Peering, ...] = ()
    present: bool = True  # False: only referenced (e.g. by a gateway), not in the snapshot

    @property
    def name(self) -> str:
        return self.id.name


@dataclass(frozen=True, slots=True)
class Gateway:
    """A VNet gateway (`Microsoft.Network/virtualNetworkGateways`)."""

    id: ResourceId
    gateway_type: str
    vnet: ResourceId | None
    allow_remote_vnet_traffic: bool | None
    allow_virtual_wan_traffic: bool | None
    admin_state: str | None
    provisioning_state: str | None

    @property
    def is_expressroute(self) -> bool:
        return self.gateway_type.lower() == "expressroute"

    @property
    def disabled(self) -> bool:
        return (self.admin_state or "").lower() == "disabled"


@dataclass(frozen=True, slots=True)
class Connection:
    """A `Microsoft.Network/connections` resource."""

    id: ResourceId
    connection_type: str
    gateway: ResourceId | None
    circuit: ResourceId | None
    provisioning_state: str | None

    @property
    def is_expressroute(self) -> bool:
        return self.connection_type.lower() == "expressroute"


@dataclass(frozen=True, slots=True)
class Circuit:
    id: ResourceId
    service_provider_state: str | None
    private_peering_state: str | None  # None: no private peering reported
    peerings_reported: bool
    provisioning_state: str | None
    global_reach: frozenset[ResourceId] = frozenset()
    # circuitProvisioningState (Enabled | Disabled): Microsoft's side of the circuit. Microsoft Learn ("Connect a
    # virtual network to an ExpressRoute circuit", CLI) has users check that a circuit is "provisioned and also
    # enabled" (serviceProviderProvisioningState Provisioned, circuitProvisioningState Enabled). None: not reported.
    circuit_provisioning_state: str | None = None

    @property
    def enabled(self) -> bool:
        """Not reported as Disabled: Microsoft's own state of the circuit (absent on older readers: no evidence)."""
        return self.circuit_provisioning_state is None or self.circuit_provisioning_state.lower() == "enabled"

    @property
    def usable(self) -> bool:
        provisioned = (self.service_provider_state or "").lower() == "provisioned" and self.enabled
        if not self.peerings_reported:
            return provisioned
        return provisioned and (self.private_peering_state or "").lower() == "enabled"


@dataclass(frozen=True, slots=True)
class VirtualHub:
    id: ResourceId
    virtual_wan: ResourceId | None
    provisioning_state: str | None


@dataclass(frozen=True, slots=True)
class HubConnection:
    """A `virtualHubs/hubVirtualNetworkConnections` resource: a VNet attached to a Virtual WAN hub."""

    id: ResourceId
    hub: ResourceId
    remote_vnet: ResourceId
    provisioning_state: str | None


@dataclass(frozen=True, slots=True)
class WanGateway:
    """A Virtual WAN hub's ExpressRoute gateway (`Microsoft.Network/expressRouteGateways`)."""

    id: ResourceId
    hub: ResourceId | None
    allow_non_virtual_wan_traffic: bool | None
    circuits: Mapping[ResourceId, str | None]  # circuit -> provisioning state of its expressRouteConnection
    provisioning_state: str | None


@dataclass(frozen=True, slots=True)
class Topology:
    """Every transit-relevant resource of a snapshot, keyed by id."""

    vnets: Mapping[ResourceId, VirtualNetwork]
    gateways: Mapping[ResourceId, Gateway]
    connections: Mapping[ResourceId, Connection]
    circuits: Mapping[ResourceId, Circuit]
    hubs: Mapping[ResourceId, VirtualHub]
    hub_connections: Mapping[ResourceId, HubConnection]
    wan_gateways: Mapping[ResourceId, WanGateway]
    warnings: tuple[str, ...] = ()
    # What the parser made of each input object (snapshot.parse_resources `previous`): not part of the value.
    memo: Mapping[int, Any] = field(default_factory=dict, compare=False, repr=False)
    memo_source: str = field(default="", compare=False, repr=False)

    def peerings(self) -> dict[ResourceId, Peering]:
        return {p.id: p for v in self.vnets.values() for p in v.peerings}


@dataclass(frozen=True, slots=True)
class Route:
    """One way a pair is carried: two gateways (VNet or Virtual WAN) joined by one circuit."""

    circuit: ResourceId
    gateways: tuple[ResourceId, ResourceId]
    pending: bool
    warnings: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TransitPair:
    """Two VNets that reach each other through ExpressRoute; `a` sorts before `b`."""

    a: ResourceId
    b: ResourceId
    routes: tuple[Route, ...]

    @property
    def key(self) -> tuple[str, str]:
        return (self.a.key, self.b.key)

    @property
    def pending(self) -> bool:
        routes = self.routes
        if len(routes) == 1:  # most pairs (read for each of the 67,000 pairs a large change opens)
            return routes[0].pending
        return all(r.pending for r in routes)

    @property
    def status(self) -> str:
        return "pending" if self.pending else "confirmed"

    @property
    def circuits(self) -> tuple[ResourceId, ...]:
        return tuple(sorted({r.circuit for r in self.routes}))

    @property
    def gateways(self) -> tuple[ResourceId, ...]:
        return tuple(sorted({g for r in self.routes for g in r.gateways}))

    @property
    def warnings(self) -> tuple[str, ...]:
        """Warnings of the routes that decide the pair: a clean confirmed route makes the pair certain."""
        best = [r for r in self.routes if not r.pending] or list(self.routes)
        if any(not r.warnings for r in best):
            return ()
        return tuple(sorted({w for r in best for w in r.warnings}))


# A diff of a large change reads 97,000 pairs out of their indexes: built through their slots (see slot_maker).
_new_pair = slot_maker(TransitPair)


class PairIndex(Mapping[tuple[str, str], TransitPair]):
    """Transit pairs by key, in key order, each TransitPair made when it is read.

    An enterprise topology has hundreds of thousands of pairs and most readers (the diff) look at keys only: a
    pair is kept as the ranks of its two VNets (in key order) and its routes, which is cheap to build and to hold.
    """

    __slots__ = ("_vnets", "_rank", "_routes", "_in_order")

    def __init__(self, vnets: Sequence[ResourceId], routes: Mapping[int, tuple[Route, ...]]) -> None:
        """`vnets` sorted by key; `routes`: rank(a) * len(vnets) + rank(b) -> routes, for rank(a) < rank(b)."""
        self._vnets = tuple(vnets)
        self._rank = {v.key: i for i, v in enumerate(self._vnets)}
        # Put in key order when first read in order: a diff reads only membership (half a million codes to sort).
        self._routes = routes if isinstance(routes, dict) else dict(routes)
        self._in_order = False

    def _ordered(self) -> dict[int, tuple[Route, ...]]:
        if not self._in_order:
            self._routes = {code: self._routes[code] for code in sorted(self._routes)}
            self._in_order = True
        return self._routes

    def _code(self, key: object) -> int | None:
        if not (isinstance(key, tuple) and len(key) == 2):
            return None
        ra, rb = self._rank.get(key[0]), self._rank.get(key[1])
        return None if ra is None or rb is None else ra * len(self._vnets) + rb

    def __getitem__(self, key: tuple[str, str]) -> TransitPair:
        code = self._code(key)
        if code is None or code not in self._routes:
            raise KeyError(key)
        return self.pair_at(code)

    @property
    def vnets(self) -> tuple[ResourceId, ...]:
        """The VNets the codes rank, in key order."""
        return self._vnets

    def codes(self) -> KeysView[int]:
        """The pairs as integer codes (rank(a) * len(vnets) + rank(b)), in key order; a set view."""
        return self._ordered().keys()

    def code_set(self) -> KeysView[int]:
        """The codes as a set view, in no particular order (no sorting)."""
        return self._routes.keys()

    def pair_at(self, code: int) -> TransitPair:
        ra, rb = divmod(code, len(self._vnets))
        pair: TransitPair = _new_pair(self._vnets[ra], self._vnets[rb], self._routes[code])
        return pair

    def codes_in(self, other: PairIndex) -> dict[int, int]:
        """Each of this index's codes -> the same pair's code in `other`'s numbering (-1: a VNet `other` lacks).

        Whether the pair is in `other` is then `other.codes()` membership; both numberings are in key order, so
        the translation keeps the order.
        """
        if self._vnets == other._vnets:
            return {code: code for code in self._ordered()}
        rank = other._rank
        to_other = [rank.get(v.key, -1) for v in self._vnets]
        width, other_width = len(self._vnets), len(other._vnets)
        out: dict[int, int] = {}
        for code in self._ordered():
            ra, rb = divmod(code, width)
            oa, ob = to_other[ra], to_other[rb]
            out[code] = -1 if oa < 0 or ob < 0 else oa * other_width + ob
        return out

    def without(self, keys: Iterable[tuple[str, str]]) -> PairIndex:
        """The same index less some pairs (keys it does not hold are ignored)."""
        drop = {code for key in keys if (code := self._code(key)) is not None}
        return PairIndex(self._vnets, {c: r for c, r in self._ordered().items() if c not in drop})

    def __contains__(self, key: object) -> bool:
        return self._code(key) in self._routes

    def __iter__(self) -> Iterator[tuple[str, str]]:
        width, vnets = len(self._vnets), self._vnets
        for code in self._ordered():
            ra, rb = divmod(code, width)
            yield vnets[ra].key, vnets[rb].key

    def __len__(self) -> int:
        return len(self._routes)

    def routes_by_pair(self) -> Iterator[tuple[ResourceId, ResourceId, tuple[Route, ...]]]:
        """(a, b, routes) of every pair in key order, without making a TransitPair each (readers of all pairs)."""
        width, vnets = len(self._vnets), self._vnets
        for code, routes in self._ordered().items():
            ra, rb = divmod(code, width)
            yield vnets[ra], vnets[rb], routes

    def values(self) -> ValuesView[TransitPair]:
        return _PairValues(self)

    def items(self) -> ItemsView[tuple[str, str], TransitPair]:
        return _PairItems(self)

    def __repr__(self) -> str:
        return f"PairIndex({len(self)} pairs)"


class _PairValues(ValuesView[TransitPair]):
    """Walks the codes directly (the generic view maps every key back to its code)."""

    _mapping: PairIndex

    def __iter__(self) -> Iterator[TransitPair]:
        index = self._mapping
        return map(index.pair_at, index.codes())


class _PairItems(ItemsView[tuple[str, str], TransitPair]):
    _mapping: PairIndex

    def __iter__(self) -> Iterator[tuple[tuple[str, str], TransitPair]]:
        return ((pair.key, pair) for pair in self._mapping.values())


@dataclass(frozen=True, slots=True)
class PairSet:
    pairs: Mapping[tuple[str, str], TransitPair]
    warnings: tuple[str, ...] = ()
    # The gateways the pairs were computed from (transit.endpoints_of), so that readers (diff, views) do not
    # compute them again; empty when the set was not made by compute_pairs.
    endpoints: Mapping[ResourceId, Endpoint] = field(default_factory=dict, compare=False, repr=False)
