"""ARM / Resource Graph JSON -> Topology: the one parser, used for live reads and offline snapshots."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from shared.core.collector import collector_paused
from shared.core.model import (
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
    slot_maker,
)

VNET = "microsoft.network/virtualnetworks"
PEERING = "microsoft.network/virtualnetworks/virtualnetworkpeerings"
GATEWAY = "microsoft.network/virtualnetworkgateways"
CONNECTION = "microsoft.network/connections"
CIRCUIT = "microsoft.network/expressroutecircuits"
CIRCUIT_PEERING = "microsoft.network/expressroutecircuits/peerings"
CIRCUIT_CONNECTION = "microsoft.network/expressroutecircuits/peerings/connections"
CIRCUIT_PEER_CONNECTION = "microsoft.network/expressroutecircuits/peerings/peerconnections"
HUB = "microsoft.network/virtualhubs"
HUB_CONNECTION = "microsoft.network/virtualhubs/hubvirtualnetworkconnections"
WAN_GATEWAY = "microsoft.network/expressroutegateways"
WAN_GATEWAY_CONNECTION = "microsoft.network/expressroutegateways/expressrouteconnections"
TRANSIT_TYPES = frozenset(
    {VNET, PEERING, GATEWAY, CONNECTION, CIRCUIT, CIRCUIT_PEERING, CIRCUIT_CONNECTION, CIRCUIT_PEER_CONNECTION, HUB,
     HUB_CONNECTION, WAN_GATEWAY, WAN_GATEWAY_CONNECTION}
)
# Other spellings of a type seen in real material. The REST specification's HubVirtualNetworkConnectionGet example
# (Azure/azure-rest-api-specs, Microsoft.Network 2024-03-01) gives a hub connection the id
# `.../virtualHubs/<hub>/virtualHubVnetConnections/<name>` and no `type`.
TYPE_ALIASES = {"microsoft.network/virtualhubs/virtualhubvnetconnections": HUB_CONNECTION}
# Top-level fields of an ARM resource; everything else in a resource printed without `properties` (Azure CLI
# output: `az network vnet show` flattens the properties into the resource) is a property.
_ENVELOPE = frozenset({"id", "name", "type", "location", "tags", "etag", "sku", "zones", "kind", "extendedLocation",
                       "identity", "managedBy", "plan", "systemData", "resourceGroup", "subscriptionId", "tenantId"})


class SnapshotError(ValueError):
    """A snapshot that cannot be read; the message names the file and the position."""


def type_from_id(resource_id: str) -> str | None:
    """`.../providers/Microsoft.Network/virtualNetworks/v/virtualNetworkPeerings/p` -> its resource type.

    None when the id names no provider resource (a subscription, a resource group, an odd number of segments).
    """
    parts = [p for p in resource_id.strip().split("/") if p]
    marks = [i for i, p in enumerate(parts) if p.lower() == "providers"]
    if not marks:
        return None
    rest = parts[marks[-1] + 1:]
    if len(rest) < 3 or len(rest) % 2 == 0:
        return None
    return "/".join([rest[0], *rest[1::2]])


def _unflatten(item: dict[str, Any]) -> dict[str, Any]:
    """A resource printed with its properties at the top level (Azure CLI) in ARM's shape, sub-resources too."""
    if "properties" in item or not any(k not in _ENVELOPE for k in item):
        return item
    props = {k: (_unflatten_list(v) if isinstance(v, list) else v) for k, v in item.items() if k not in _ENVELOPE}
    return {**{k: v for k, v in item.items() if k in _ENVELOPE}, "properties": props}


def _unflatten_list(items: list[Any]) -> list[Any]:
    # Sub-resources (peerings, ipConfigurations, circuit peerings and their connections) carry an `id`.
    return [_unflatten(x) if isinstance(x, dict) and isinstance(x.get("id"), str) else x for x in items]


def _is_directory(p: Path) -> bool:
    try:
        return p.is_dir()
    except OSError:
        return False


def snapshot_files(path: str | Path) -> list[Path]:
    """The files a SNAPSHOT argument names: the file itself, or the `*.json` files of a folder in name order."""
    p = Path(path)
    if not _is_directory(p):
        return [p]
    files = sorted(f for f in p.iterdir() if f.suffix.lower() == ".json" and not _is_directory(f))
    if not files:
        raise SnapshotError(f"{p}: folder holds no .json file")
    return files


def load_snapshot_file(path: str | Path, *, notes: list[str] | None = None) -> list[dict[str, Any]]:
    """The resources of a snapshot: a file (array, ARM `value`, Resource Graph `data`, one ARM GET body), or a
    folder of such files, merged in name order."""
    resources: list[dict[str, Any]] = []
    for p in snapshot_files(path):
        try:
            raw = p.read_bytes()
        except OSError as exc:
            raise SnapshotError(f"{p}: cannot read file: {exc.strerror or exc.__class__.__name__}") from None
        try:
            # orjson parses a 20k-VNet snapshot (36 MB) in a fraction of the standard library's time; whatever it
            # refuses (a BOM, NaN, lone surrogates, bad JSON) goes through the standard library, which judges it
            # and words the error exactly as before.
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise SnapshotError(f"{p}: cannot read file: not UTF-8 text") from None
            try:
                doc = json.loads(text)
            except json.JSONDecodeError as exc:
                raise SnapshotError(f"{p}: not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
        resources += resources_of(doc, source=str(p), notes=notes)
    return resources


def load_snapshots(paths: str | Path | Sequence[str | Path], *,
                   notes: list[str] | None = None) -> list[dict[str, Any]]:
    """The resources of several snapshot files or folders, merged (a resource given twice: the later copy)."""
    if isinstance(paths, str | Path):
        return load_snapshot_file(paths, notes=notes)
    return [r for p in paths for r in load_snapshot_file(p, notes=notes)]


# Where a saved page says more pages exist: `az graph query` output (`skip_token`, the Resource Graph REST answer's
# `$skipToken`) and an ARM list saved with `az rest` (`nextLink`).
_MORE_PAGES = ("skip_token", "$skipToken", "skipToken", "nextLink")


def resources_of(doc: Any, *, source: str = "snapshot", notes: list[str] | None = None) -> list[dict[str, Any]]:
    """The resources of one parsed document, each with a `type` (from its id when absent) and `properties`.

    `notes` receives a warning when the document is one page of several (the rest is missing from the snapshot).
    """
    if isinstance(doc, list):
        items, where = doc, ""
    elif isinstance(doc, dict) and isinstance(doc.get("value"), list):
        items, where = doc["value"], "value"
    elif isinstance(doc, dict) and isinstance(doc.get("data"), list):
        items, where = doc["data"], "data"
    elif isinstance(doc, dict) and isinstance(doc.get("id"), str):
        items, where = [doc], "top level"  # one ARM GET body (`az network ... show`, `az rest`)
    else:
        raise SnapshotError(
            f"{source}: at the top level: expected a JSON array of resources, an object with a 'value' or "
            "'data' array, or one resource (an object with an 'id')"
        )
    if notes is not None and where in ("value", "data"):
        more = next((k for k in _MORE_PAGES if isinstance(doc.get(k), str) and doc[k]), None)
        if more is not None:
            notes.append(f"{source}: its '{more}' says more pages exist; resources on the other pages are missing "
                         "from this snapshot (page to the end: see README, Snapshots)")
    out: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        position = "the top level" if where == "top level" else f"{where}[{i}]" if where else f"[{i}]"
        if not isinstance(item, dict):
            raise SnapshotError(f"{source}: resource at {position} is not an object")
        if not isinstance(item.get("id"), str) or not item["id"].strip():
            raise SnapshotError(f"{source}: resource at {position} has no 'id'")
        if not isinstance(item.get("type"), str) or not item["type"].strip():
            derived = type_from_id(item["id"])
            if derived is None:
                raise SnapshotError(f"{source}: resource at {position} has no 'type', and its id names none")
            item = {**item, "type": derived}
        out.append(_unflatten(item))
    return out


def read_snapshot(path: str | Path | Sequence[str | Path]) -> Topology:
    """The topology of one snapshot file or folder, or of several merged."""
    source = str(path) if isinstance(path, str | Path) else ", ".join(str(p) for p in path)
    notes: list[str] = []
    with collector_paused():  # millions of parsed JSON containers, none garbage: see collector_paused
        resources = load_snapshots(path, notes=notes)
        return parse_resources(resources, source=source, notes=notes)


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


_new_peering = slot_maker(Peering)
_new_vnet = slot_maker(VirtualNetwork)


def _peering(raw: Mapping[str, Any], vnet: ResourceId, source: str, warnings: list[str],
             vnet_ids: Mapping[str, ResourceId]) -> Peering | None:
    # The hottest function of a parse (36,000 peerings at 20k VNets): the common spellings (JSON booleans and
    # strings) are read inline, anything else through the same helpers as elsewhere. `vnet_ids`: the parse's VNet
    # ids by their text; a remote VNet spelled as its own resource spells it is that parsed id (equal to parsing
    # the text again, one lookup instead).
    props = _props(raw)
    ref = props.get("remoteVirtualNetwork")
    text = ref.get("id") if isinstance(ref, dict) else None
    remote = vnet_ids.get(text) if isinstance(text, str) else None
    if remote is None:
        remote = _ref(ref)
    rid = raw.get("id")
    if remote is None or not isinstance(rid, str):
        warnings.append(f"{source}: peering {raw.get('name', '?')} of {vnet.name} has no id or remote VNet; ignored")
        return None
    transit, remote_gateways = props.get("allowGatewayTransit"), props.get("useRemoteGateways")
    state, provisioning, sync = props.get("peeringState"), props.get("provisioningState"), props.get("peeringSyncLevel")
    # Peering's fields in order: id, vnet, remote_vnet, allow_gateway_transit, use_remote_gateways, peering_state,
    # provisioning_state, sync_level.
    peering: Peering = _new_peering(
        ResourceId.parse(rid), vnet, remote,
        transit is True or (transit is not False and _opt_bool(transit) is True),
        remote_gateways is True or (remote_gateways is not False and _opt_bool(remote_gateways) is True),
        (state if isinstance(state, str) else None) or "Unknown",
        provisioning if isinstance(provisioning, str) else None,
        sync if isinstance(sync, str) else None,
    )
    return peering


def _global_reach_refs(connection: Any) -> list[ResourceId]:
    """The circuits a Global Reach connection names, read from either side.

    The REST specification (ExpressRouteCircuitPeeringPropertiesFormat) records Global Reach as `connections`
    (ExpressRouteCircuitConnection) on the circuit where it was configured and as `peerConnections` ("the list of
    peered circuit connections associated with Azure Private Peering for this circuit") on the other. Both name
    `expressRouteCircuitPeering` and `peerExpressRouteCircuitPeering`; which side each names is not something to
    rely on (the spec's own ExpressRouteCircuitConnectionGet example disagrees with its id), so both are read and
    the caller drops the circuit's own id."""
    props = _props(connection) if isinstance(connection, dict) else {}
    refs = (_ref(props.get(k)) for k in ("expressRouteCircuitPeering", "peerExpressRouteCircuitPeering"))
    return [_strip_to(r, "peerings") for r in refs if r is not None]


def _circuit(raw: Mapping[str, Any], rid: ResourceId, extra_gr: Iterable[ResourceId],
             standalone: Sequence[Mapping[str, Any]] = ()) -> Circuit:
    """A circuit; `standalone`: its peerings given as resources of their own (they win over embedded copies)."""
    props = _props(raw)
    peerings = props.get("peerings")
    private_state: str | None = None
    global_reach: set[ResourceId] = set(extra_gr)
    for p in [*_list(peerings), *standalone]:
        if not isinstance(p, dict):
            continue
        pp = _props(p)
        if str(pp.get("peeringType", p.get("name", ""))).lower() == "azureprivatepeering":
            private_state = _opt_str(pp.get("state"))
        # `peeredConnections`: how the Azure CLI prints peerConnections (`az network express-route peering show`).
        for conn in (c for k in ("connections", "peerConnections", "peeredConnections") for c in _list(pp.get(k))):
            global_reach.update(_global_reach_refs(conn))
    global_reach.discard(rid)
    return Circuit(
        id=rid,
        service_provider_state=_opt_str(props.get("serviceProviderProvisioningState")),
        private_peering_state=private_state,
        peerings_reported=isinstance(peerings, list) or bool(standalone),
        provisioning_state=_opt_str(props.get("provisioningState")),
        global_reach=frozenset(global_reach),
        circuit_provisioning_state=_opt_str(props.get("circuitProvisioningState")),
    )


def _not_read(rtype: str) -> bool:
    """A type below one the transit rules read, that they do not read themselves (subnets, authorizations...):
    worth a warning, since a user who gives it apart may expect it to count. Unrelated types stay silent."""
    return any(rtype.startswith(parent + "/") for parent in (VNET, GATEWAY, CONNECTION, CIRCUIT, HUB, WAN_GATEWAY))


class _Parsed:
    """What parse_resources made of one input resource, kept on the Topology so that a parse of a copy patched
    in a few places (the event path) reuses it for every resource object it shares with the earlier input."""

    __slots__ = ("raw", "rtype", "rid", "value", "obj", "warnings")

    def __init__(self, raw: Mapping[str, Any], rtype: str, rid: ResourceId, value: Mapping[str, Any]) -> None:
        self.raw, self.rtype, self.rid, self.value = raw, rtype, rid, value
        self.obj: Any = None  # the VirtualNetwork / Gateway / Connection, once built from `value` alone
        self.warnings: tuple[str, ...] = ()  # what building it warned about


def parse_resources(resources: Iterable[Mapping[str, Any]], *, source: str = "snapshot",
                    notes: Sequence[str] = (), previous: Topology | None = None, reusable: bool = False
                    ) -> Topology:
    """Build a Topology; ids and types match case-insensitively, other types are ignored.

    A resource without `type` takes it from its id. Child resources given apart (VNet peerings, circuit peerings
    and Global Reach connections, Virtual WAN ER connections, hub connections) are merged into their parents.
    Dangling references and resources of a child type the rules do not read become warnings, never errors;
    `notes` (what the loader noticed, e.g. a missing page) lead the warnings.

    `previous`: a topology parsed (with the same `source`) from resource objects that were not mutated since;
    what it made of each object this input shares with it is reused instead of parsed again (a 20k-VNet copy
    patched by one event shares all but a few). The result is the same either way. Only a topology parsed with
    `reusable=True` keeps what it made of each object (and so the objects themselves: a caller that holds its
    input anyway, like the auditor's working copy); others let their input go once parsed.
    """
    warnings: list[str] = list(notes)
    by_type: dict[str, dict[ResourceId, Mapping[str, Any]]] = {t: {} for t in TRANSIT_TYPES}
    earlier: Mapping[int, _Parsed] = previous.memo if previous is not None and previous.memo_source == source else {}
    memo: dict[int, _Parsed] = {}
    entry_of: dict[ResourceId, _Parsed] = {}
    vnet_ids: dict[str, ResourceId] = {}  # each VNet's id by the text it was parsed from (for peerings' remotes)
    seen = 0
    for i, raw in enumerate(resources):
        seen += 1
        hit = earlier.get(id(raw))
        if hit is not None and hit.raw is raw:
            memo[id(raw)] = entry_of[hit.rid] = hit
            by_type[hit.rtype][hit.rid] = hit.value
            continue
        # A plain dict (what JSON gives) is checked without the Mapping ABC's slower isinstance.
        is_map = type(raw) is dict or isinstance(raw, Mapping)
        rtype_raw = raw.get("type") if is_map else None
        if is_map and isinstance(raw.get("id"), str) and not isinstance(rtype_raw, str):
            rtype_raw = type_from_id(raw["id"])
        if not is_map or not isinstance(raw.get("id"), str) or not isinstance(rtype_raw, str):
            raise SnapshotError(f"{source}: resource at [{i}] is not an object with an 'id' and a 'type'")
        lowered = rtype_raw.lower()
        rtype = TYPE_ALIASES.get(lowered, lowered)
        if rtype in by_type:
            rid = ResourceId.parse(raw["id"])
            if rtype == VNET:
                vnet_ids[raw["id"]] = rid
            value = raw if "properties" in raw else _unflatten(dict(raw))
            by_type[rtype][rid] = value
            memo[id(raw)] = entry_of[rid] = _Parsed(raw, rtype, rid, value)
        elif _not_read(rtype):
            warnings.append(f"{source}: {rtype_raw} {raw['id'].rstrip('/').rsplit('/', 1)[-1]} is not read by the "
                            "transit rules; ignored")
    if seen and not any(by_type.values()):
        warnings.append(f"{source}: none of its {seen} resource(s) is of a type the transit rules read (VNets, "
                        "gateways, connections, circuits, Virtual WAN hubs and gateways): no pair can be found")

    standalone_peerings: dict[ResourceId, list[Mapping[str, Any]]] = {}
    for pid, raw in by_type[PEERING].items():
        standalone_peerings.setdefault(pid.parent(), []).append(raw)

    vnets: dict[ResourceId, VirtualNetwork] = {}
    for vid, raw in by_type[VNET].items():
        apart = standalone_peerings.pop(vid, [])
        entry = entry_of.get(vid)
        if entry is not None and entry.obj is not None and not apart and entry.value is raw:
            vnets[vid] = entry.obj
            warnings += entry.warnings
            continue
        props = _props(raw)
        merged: dict[ResourceId, Peering] = {}
        start = len(warnings)
        for p in [*_list(props.get("virtualNetworkPeerings")), *apart]:
            if isinstance(p, dict) and (peering := _peering(p, vid, source, warnings, vnet_ids)) is not None:
                merged[peering.id] = peering
        space = props.get("addressSpace")
        prefixes = space.get("addressPrefixes") if isinstance(space, dict) else None
        tags = raw.get("tags")
        # VirtualNetwork's fields in order: id, address_prefixes, location, tags, provisioning_state, peerings, present.
        vnets[vid] = _new_vnet(
            vid,
            tuple(map(str, prefixes)) if isinstance(prefixes, list) else (),
            str(raw.get("location", "")),
            {str(k): str(v) for k, v in tags.items()} if isinstance(tags, dict) else {},
            _opt_str(props.get("provisioningState")),
            tuple(merged.values()) if len(merged) < 2 else tuple(sorted(merged.values(), key=lambda x: x.id)),
            True,
        )
        if entry is not None and not apart and entry.value is raw:  # built from the resource alone: reusable
            entry.obj, entry.warnings = vnets[vid], tuple(warnings[start:])
    for vid, raws in standalone_peerings.items():
        warnings.append(f"{source}: peering(s) {', '.join(str(r.get('name')) for r in raws)} belong to VNet "
                        f"{vid.name}, which is not in the snapshot; ignored")

    gateways: dict[ResourceId, Gateway] = {}
    for gid, raw in by_type[GATEWAY].items():
        gateway: Gateway = _reused(entry_of.get(gid), lambda: _gateway(gid, raw))  # noqa: B023 (called at once)
        home = gateway.vnet
        gateways[gid] = gateway
        if not gateway.gateway_type:
            warnings.append(f"{source}: gateway {gid.name} reports no gatewayType; not counted as ExpressRoute")
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
        connection: Connection = _reused(entry_of.get(cid), lambda: _connection(cid, raw))  # noqa: B023
        connections[cid] = connection
        if not connection.connection_type:
            warnings.append(f"{source}: connection {cid.name} reports no connectionType; not counted as ExpressRoute")
        if not connection.is_expressroute:
            continue
        if connection.gateway is None or connection.circuit is None:
            warnings.append(f"{source}: connection {cid.name} lacks virtualNetworkGateway1 or peer; ignored")
        elif connection.gateway not in gateways:
            warnings.append(f"{source}: connection {cid.name} refers to gateway {connection.gateway.name}, which is "
                            "not in the snapshot; ignored")

    circuit_gr: dict[ResourceId, set[ResourceId]] = {}
    for ccid, raw in [*by_type[CIRCUIT_CONNECTION].items(), *by_type[CIRCUIT_PEER_CONNECTION].items()]:
        owner = ccid.parent(4)
        for other in _global_reach_refs(raw):  # recorded on both circuits, so that either one alone shows it
            circuit_gr.setdefault(owner, set()).add(other)
            circuit_gr.setdefault(other, set()).add(owner)
    circuit_peerings: dict[ResourceId, list[Mapping[str, Any]]] = {}
    for cpid, raw in by_type[CIRCUIT_PEERING].items():
        circuit_peerings.setdefault(cpid.parent(), []).append(raw)
    circuits = {cid: _circuit(raw, cid, circuit_gr.get(cid, ()), circuit_peerings.pop(cid, ()))
                for cid, raw in by_type[CIRCUIT].items()}
    for cid, raws in circuit_peerings.items():
        warnings.append(f"{source}: circuit peering(s) {', '.join(str(r.get('name')) for r in raws)} belong to "
                        f"circuit {cid.name}, which is not in the snapshot; ignored")

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
        if hcid.parent() not in hubs:
            warnings.append(f"{source}: hub connection {hcid.name} belongs to hub {hcid.parent().name}, which is "
                            "not in the snapshot; its VNet is behind no Virtual WAN gateway here")

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
    for wid, raws in wan_conn_by_gateway.items():
        warnings.append(f"{source}: ExpressRoute connection(s) {', '.join(str(r.get('name')) for r in raws)} "
                        f"belong to Virtual WAN gateway {wid.name}, which is not in the snapshot; ignored")

    return Topology(
        vnets=vnets, gateways=gateways, connections=connections, circuits=circuits, hubs=hubs,
        hub_connections=hub_connections, wan_gateways=wan_gateways, warnings=tuple(warnings),
        memo=memo if reusable else {}, memo_source=source,
    )


def _reused(entry: _Parsed | None, build: Callable[[], Any]) -> Any:
    """What an earlier parse built from the same resource object, else `build()` (kept for the next parse)."""
    if entry is not None and entry.obj is not None:
        return entry.obj
    made = build()
    if entry is not None:
        entry.obj = made
    return made


def _gateway(gid: ResourceId, raw: Mapping[str, Any]) -> Gateway:
    props = _props(raw)
    home: ResourceId | None = None
    for ipc in _list(props.get("ipConfigurations")):
        subnet = _ref(_props(ipc).get("subnet")) if isinstance(ipc, dict) else None
        if subnet is not None:
            home = _strip_to(subnet, "subnets")
            break
    return Gateway(
        id=gid,
        gateway_type=_opt_str(props.get("gatewayType")) or "",
        vnet=home,
        allow_remote_vnet_traffic=_opt_bool(props.get("allowRemoteVnetTraffic")),
        allow_virtual_wan_traffic=_opt_bool(props.get("allowVirtualWanTraffic")),
        admin_state=_opt_str(props.get("adminState")),
        provisioning_state=_opt_str(props.get("provisioningState")),
    )


def _connection(cid: ResourceId, raw: Mapping[str, Any]) -> Connection:
    props = _props(raw)
    peer = _ref(props.get("peer"))
    return Connection(
        id=cid,
        connection_type=_opt_str(props.get("connectionType")) or "",
        gateway=_ref(props.get("virtualNetworkGateway1")),
        circuit=_strip_to(peer, "peerings") if peer is not None else None,
        provisioning_state=_opt_str(props.get("provisioningState")),
    )


# What the parser reads of each type: the rest of a resource (subnets, SKUs, BGP settings...) never changes a pair.
_REF = {"id": True}
_PEERING_PROPS = {"remoteVirtualNetwork": _REF, "allowGatewayTransit": True, "useRemoteGateways": True,
                  "peeringState": True, "peeringSyncLevel": True, "provisioningState": True}
_GLOBAL_REACH_PROPS = {"expressRouteCircuitPeering": _REF, "peerExpressRouteCircuitPeering": _REF}
_CIRCUIT_PEERING_PROPS = {"peeringType": True, "state": True,
                          "connections": [{"properties": _GLOBAL_REACH_PROPS}],
                          "peerConnections": [{"properties": _GLOBAL_REACH_PROPS}],
                          "peeredConnections": [{"properties": _GLOBAL_REACH_PROPS}]}
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
    CIRCUIT: {"serviceProviderProvisioningState": True, "circuitProvisioningState": True, "provisioningState": True,
              "peerings": [{"name": True, "properties": _CIRCUIT_PEERING_PROPS}]},
    CIRCUIT_PEERING: _CIRCUIT_PEERING_PROPS,
    CIRCUIT_CONNECTION: _GLOBAL_REACH_PROPS,
    CIRCUIT_PEER_CONNECTION: _GLOBAL_REACH_PROPS,
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


_ABSENT: Any = object()


def _compiled(spec: Any) -> Callable[[Any], Any] | None:
    """_prune(value, spec) as a function made once per spec (None: keep the value as it is). A reconcile projects
    every resource of the estate (165,000 objects at 20k VNets): an object's function is generated as straight-line
    code, one lookup per key the spec keeps, in the spec's order (the keys are this module's own constants), which
    is twice as fast as a loop over the spec. tests/unit/test_projection.py checks it against _prune."""
    if spec is True:
        return None
    if isinstance(spec, dict):
        scope: dict[str, Any] = {"_absent": _ABSENT, "_dict": dict}
        lines = ["def prune_dict(value):", "    if not isinstance(value, _dict):", "        return value",
                 "    out = {}"]
        for i, (key, sub) in enumerate(spec.items()):
            inner_fn = _compiled(sub)
            scope[f"_f{i}"] = inner_fn
            lines += [f"    v = value.get({key!r}, _absent)", "    if v is not _absent:",
                      f"        out[{key!r}] = {'v' if inner_fn is None else f'_f{i}(v)'}"]
        exec("\n".join([*lines, "    return out", ""]), scope)  # noqa: S102 (keys are constants of this module)
        prune_dict: Callable[[Any], Any] = scope["prune_dict"]
        return prune_dict
    inner = _compiled(spec[0])

    def prune_list(value: Any) -> Any:
        if not isinstance(value, list):
            return value
        return list(value) if inner is None else [inner(v) for v in value]
    return prune_list


_PRUNE: dict[str, Callable[[Any], Any]] = {t: f for t, spec in _PROPERTIES.items()
                                           if (f := _compiled(spec)) is not None}


def transit_projection(resources: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The transit-relevant part of each resource (still ARM-shaped; `parse_resources` reads it the same way).

    Used to keep the committed topology small and its digest blind to changes that cannot open or close a path.
    """
    out: list[dict[str, Any]] = []
    for raw in resources:
        rtype = str(raw.get("type") or type_from_id(str(raw.get("id", ""))) or "").lower()
        rtype = TYPE_ALIASES.get(rtype, rtype)
        if rtype not in _PROPERTIES:
            continue
        if "properties" not in raw:
            raw = _unflatten(dict(raw))
        kept = {k: raw[k] for k in ("id", "name", "type", "location", "tags") if k in raw}
        kept.setdefault("type", rtype)
        if "properties" in raw:
            kept["properties"] = _PRUNE[rtype](raw["properties"])
        out.append(kept)
    return out
