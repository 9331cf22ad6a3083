"""Live topology reader: one Resource Graph query for the scope, ARM GETs for what Resource Graph lacks or lags.

Any failed or partial part raises IncompleteReadError, so a failed read never looks like a closed path.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.resourcegraph import ResourceGraphClient
from azure.mgmt.resourcegraph.models import QueryRequest, QueryRequestOptions

from shared.focus import MAX_EVENT_ARM_CALLS, FocusedRead, unknown_references
from shared.ports import IncompleteReadError, JsonDict

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

logger = logging.getLogger(__name__)

VIRTUAL_NETWORKS = "microsoft.network/virtualnetworks"
VIRTUAL_NETWORK_GATEWAYS = "microsoft.network/virtualnetworkgateways"
CONNECTIONS = "microsoft.network/connections"
EXPRESS_ROUTE_CIRCUITS = "microsoft.network/expressroutecircuits"
EXPRESS_ROUTE_GATEWAYS = "microsoft.network/expressroutegateways"
VIRTUAL_HUBS = "microsoft.network/virtualhubs"
HUB_VIRTUAL_NETWORK_CONNECTIONS = "microsoft.network/virtualhubs/hubvirtualnetworkconnections"

RELEVANT_TYPES = frozenset(
    {
        VIRTUAL_NETWORKS,
        VIRTUAL_NETWORK_GATEWAYS,
        CONNECTIONS,
        EXPRESS_ROUTE_CIRCUITS,
        EXPRESS_ROUTE_GATEWAYS,
        VIRTUAL_HUBS,
        HUB_VIRTUAL_NETWORK_CONNECTIONS,
    }
)
_SUBSCRIPTION_ROW = "microsoft.resources/subscriptions"

# One constant query (nothing is ever interpolated into it). Resource Graph's `resources` table has no
# virtualHubs/hubVirtualNetworkConnections (absent from its supported-types reference), so hub connections come
# from ARM, one list per hub. Resource Graph answers from the requested subscriptions the identity can read and
# silently leaves out the others (no error, resultTruncated false); only when none is readable does the query fail
# (400 BadRequest "at least one subscription eligible", or 403). The ResourceContainers leg returns one row per
# readable subscription; a requested subscription without its row makes the read incomplete.
TOPOLOGY_QUERY = """\
resources
| where type in~ ('microsoft.network/virtualnetworks', 'microsoft.network/virtualnetworkgateways',
    'microsoft.network/connections', 'microsoft.network/expressroutecircuits',
    'microsoft.network/expressroutegateways', 'microsoft.network/virtualhubs')
| project id, name, type, location, subscriptionId, resourceGroup, properties
| union (resourcecontainers
    | where type =~ 'microsoft.resources/subscriptions'
    | project id, name, type, location, subscriptionId, resourceGroup, properties)
| order by id asc"""

_MAX_PAGES = 1000

NetworkClientFactory = Callable[[str], NetworkManagementClient]


def default_credential(client_id: str | None = None) -> TokenCredential:
    """DefaultAzureCredential, built on demand (never at import); `client_id` picks a user-assigned identity."""
    from azure.identity import DefaultAzureCredential

    if client_id:
        return DefaultAzureCredential(managed_identity_client_id=client_id)
    return DefaultAzureCredential()


@dataclass(frozen=True, slots=True)
class ReadCalls:
    """Service calls made by one read (SDK operations, not counting the SDK's own retries)."""

    resource_graph: int = 0
    arm: int = 0


@dataclass(frozen=True, slots=True)
class _Target:
    """What to GET to refresh the event's resource: the resource itself, or its parent for a child."""

    resource_id: str
    subscription_id: str
    resource_group: str
    kind: str
    names: tuple[str, ...]


# Child resources that ARM embeds in the parent's GET (peerings in a VNet, circuit peerings, ER connections in a
# Virtual WAN ER gateway) are refreshed by re-reading the parent; a hub connection by re-reading its hub (its
# connections are then listed from ARM like every hub's).
_PARENT_OF_CHILD = {
    ("virtualnetworks", "virtualnetworkpeerings"): "virtualnetworks",
    ("expressroutecircuits", "peerings"): "expressroutecircuits",
    ("expressroutegateways", "expressrouteconnections"): "expressroutegateways",
    ("virtualhubs", "hubvirtualnetworkconnections"): "virtualhubs",
}
_GETTERS: dict[str, Callable[[NetworkManagementClient, str, str], Any]] = {
    "virtualnetworks": lambda c, rg, n: c.virtual_networks.get(rg, n),
    "virtualnetworkgateways": lambda c, rg, n: c.virtual_network_gateways.get(rg, n),
    "connections": lambda c, rg, n: c.virtual_network_gateway_connections.get(rg, n),
    "expressroutecircuits": lambda c, rg, n: c.express_route_circuits.get(rg, n),
    "expressroutegateways": lambda c, rg, n: c.express_route_gateways.get(rg, n),
    "virtualhubs": lambda c, rg, n: c.virtual_hubs.get(rg, n),
}


class ResourceGraphTopologyReader:
    """TopologyReader over Azure Resource Graph (the scope) and ARM (the event's resource, hub connections)."""

    def __init__(
        self,
        credential: TokenCredential,
        subscriptions: Sequence[str],
        *,
        base_url: str | None = None,
        connection_verify: str | bool | None = None,
        retry_total: int | None = None,
        read_timeout: float | None = None,
        page_size: int = 1000,
        network_client_factory: NetworkClientFactory | None = None,
    ) -> None:
        if isinstance(subscriptions, str):
            raise TypeError("subscriptions must be a sequence of subscription ids, not one string")
        unique: dict[str, str] = {}
        for sub in subscriptions:
            if not isinstance(sub, str) or not sub.strip():
                raise ValueError("every subscription id must be a non-empty string")
            unique.setdefault(sub.strip().lower(), sub.strip())
        if not unique:
            raise ValueError("at least one subscription id is needed")
        if not 1 <= page_size <= 1000:
            raise ValueError("page_size must be between 1 and 1000 (Resource Graph's limit)")
        self._credential = credential
        self._subscriptions = list(unique.values())
        self._page_size = page_size
        options: dict[str, Any] = {
            "connection_verify": connection_verify,
            "retry_total": retry_total,
            "read_timeout": read_timeout,
        }
        self._client_options = {k: v for k, v in options.items() if v is not None}
        self._base_url = base_url
        self._network_client_factory = network_client_factory or self._network_client
        self._graph: ResourceGraphClient | None = None
        self._network: dict[str, NetworkManagementClient] = {}
        self.last_read_calls = ReadCalls()
        self._per_thread = threading.local()  # one reader serves concurrent invocations: count calls per read

    @property
    def _calls(self) -> dict[str, int]:
        calls: dict[str, int] = self._per_thread.calls
        return calls

    @property
    def subscriptions(self) -> list[str]:
        return list(self._subscriptions)

    def read(self, *, focus_resource_id: str | None = None) -> list[JsonDict]:
        """Every relevant resource of the scope, sorted by id; IncompleteReadError when any part failed."""
        self._per_thread.calls = {"resource_graph": 0, "arm": 0}
        try:
            resources = self._query_graph()
            if focus_resource_id:
                self._refresh_focus(focus_resource_id, resources)
            self._add_hub_connections(resources)
        finally:
            self.last_read_calls = ReadCalls(**self._calls)
        logger.info(
            "topology read: %s resources, %s Resource Graph and %s ARM calls",
            len(resources),
            self.last_read_calls.resource_graph,
            self.last_read_calls.arm,
        )
        return [resources[k] for k in sorted(resources)]

    def read_focused(self, resource_id: str, *, known: Callable[[str], bool]) -> FocusedRead | None:
        """The event path: ARM GETs of the event's resource (its parent for a child, its connections for a hub),
        then of a resource it newly references, at most MAX_EVENT_ARM_CALLS calls and no Resource Graph query.

        404 means deleted. A failed call raises IncompleteReadError. None: not a type this reader can read alone
        (the caller then reads the whole scope). `known(id_lower)` says whether the working copy holds an id.
        """
        target = _focus_target(resource_id)
        if target is None:
            return None
        self._per_thread.calls = {"resource_graph": 0, "arm": 0}
        try:
            if not self._watched(target.subscription_id):
                logger.warning("event resource %s is outside the watched subscriptions; not read", resource_id)
                return FocusedRead(warnings=(f"event resource {resource_id} is outside the watched subscriptions; "
                                             "not read",))
            replace = [target.resource_id]
            found = self._read_target(target)
            warnings: list[str] = []
            for ref in unknown_references(found, known, replace):
                ref_target = _focus_target(ref)
                if ref_target is None or not self._watched(ref_target.subscription_id):
                    continue  # outside the scope: the parser reports it as a dangling reference
                if self._calls["arm"] + (2 if ref_target.kind == "virtualhubs" else 1) > MAX_EVENT_ARM_CALLS:
                    warnings.append(f"{ref} is new to the working copy and was not read within this event's budget "
                                    "of ARM calls; the next reconcile reads it")
                    continue
                replace.append(ref_target.resource_id)
                found += self._read_target(ref_target)
            return FocusedRead(replace=tuple(replace), resources=tuple(found), warnings=tuple(warnings),
                               calls=self._calls["arm"])
        finally:
            self.last_read_calls = ReadCalls(**self._calls)
            logger.info("event read of %s: %s ARM calls", resource_id, self.last_read_calls.arm)

    def _watched(self, subscription_id: str) -> bool:
        return subscription_id.lower() in {s.lower() for s in self._subscriptions}

    def _read_target(self, target: _Target) -> list[JsonDict]:
        """ARM's copy of the target (a hub with its connections); [] when ARM answers 404."""
        client = self._network_client_factory(target.subscription_id)
        self._calls["arm"] += 1
        try:
            model = _GETTERS[target.kind](client, target.resource_group, target.names[0])
        except ResourceNotFoundError:
            logger.info("resource %s is gone (404)", target.resource_id)
            return []
        except AzureError as exc:
            raise _get_failed(target, exc) from exc
        found = [_to_arm_json(model, target.subscription_id, target.resource_group)]
        if target.kind == "virtualhubs":
            self._calls["arm"] += 1
            try:
                found += [_to_arm_json(c, target.subscription_id, target.resource_group)
                          for c in client.hub_virtual_network_connections.list(target.resource_group, target.names[0])]
            except AzureError as exc:
                raise IncompleteReadError(
                    f"listing connections of hub {target.resource_id} failed: {_describe(exc)}") from exc
        return found

    # -- Resource Graph ----------------------------------------------------------------------------------------
    def _query_graph(self) -> dict[str, JsonDict]:
        graph = self._graph_client()
        rows: list[Any] = []
        total: int | None = None
        skip_token: str | None = None
        for _ in range(_MAX_PAGES):
            request = QueryRequest(
                subscriptions=self._subscriptions,
                query=TOPOLOGY_QUERY,
                options=QueryRequestOptions(skip_token=skip_token, top=self._page_size, result_format="objectArray"),
            )
            self._calls["resource_graph"] += 1
            try:
                response = graph.resources(request)
            except AzureError as exc:
                detail = _describe(exc)
                # None of the subscriptions is readable (see TOPOLOGY_QUERY): each is named in the health alert.
                none_readable = getattr(exc, "status_code", None) in (400, 403) and "subscription" in detail.lower()
                raise IncompleteReadError(
                    f"Resource Graph query failed: {detail}",
                    unreadable=dict.fromkeys(self._subscriptions, NO_READER) if none_readable else None,
                ) from exc
            if str(getattr(response.result_truncated, "value", response.result_truncated)).lower() == "true":
                raise IncompleteReadError("Resource Graph truncated the answer (resultTruncated=true)")
            page: Any = response.data  # objectArray: a JSON array (the SDK types it as a JSON object)
            if not isinstance(page, list):
                raise IncompleteReadError("Resource Graph answered in an unexpected format (data is not a list)")
            rows.extend(page)
            total = response.total_records
            skip_token = response.skip_token
            if not skip_token:
                break
        else:
            raise IncompleteReadError(f"Resource Graph still had pages after {_MAX_PAGES}; giving up")
        if total is not None and len(rows) < total:
            raise IncompleteReadError(f"Resource Graph announced {total} rows but returned {len(rows)}")

        resources: dict[str, JsonDict] = {}
        readable: set[str] = set()
        for row in rows:
            if not isinstance(row, dict) or not isinstance(row.get("id"), str) or not row.get("type"):
                raise IncompleteReadError("Resource Graph returned a row without id or type")
            rtype = str(row["type"]).lower()
            if rtype == _SUBSCRIPTION_ROW:
                readable.add(str(row.get("subscriptionId") or row.get("name") or "").lower())
            elif rtype in RELEVANT_TYPES:
                resources[row["id"].lower()] = row
        missing = [s for s in self._subscriptions if s.lower() not in readable]
        if missing:
            raise IncompleteReadError(
                "Resource Graph returned nothing for subscription(s) "
                + ", ".join(missing)
                + ": the identity cannot read them, or they do not exist (grant Reader on each subscription)",
                unreadable=dict.fromkeys(missing, NO_READER),
            )
        return resources

    # -- ARM ---------------------------------------------------------------------------------------------------
    def _refresh_focus(self, focus_resource_id: str, resources: dict[str, JsonDict]) -> None:
        target = _focus_target(focus_resource_id)
        if target is None:
            logger.info(
                "event resource %s is not a type the reader refreshes; Resource Graph's copy stands", focus_resource_id
            )
            return
        if target.subscription_id.lower() not in {s.lower() for s in self._subscriptions}:
            logger.warning("event resource %s is outside the watched subscriptions; not read", focus_resource_id)
            return
        client = self._network_client_factory(target.subscription_id)
        self._calls["arm"] += 1
        try:
            model = _GETTERS[target.kind](client, target.resource_group, target.names[0])
        except ResourceNotFoundError:
            logger.info("event resource %s is gone (404); dropping it", target.resource_id)
            _drop(resources, target.resource_id)
            return
        except AzureError as exc:
            raise _get_failed(target, exc) from exc
        resource = _to_arm_json(model, target.subscription_id, target.resource_group)
        resources.pop(target.resource_id.lower(), None)
        resources[str(resource.get("id") or target.resource_id).lower()] = resource

    def _add_hub_connections(self, resources: dict[str, JsonDict]) -> None:
        hubs = [r for r in resources.values() if str(r.get("type", "")).lower() == VIRTUAL_HUBS]
        for hub in hubs:
            sub, rg, names = _parse_id(str(hub["id"]))
            if sub is None or rg is None or not names:
                raise IncompleteReadError(f"cannot list connections of hub with unexpected id {hub['id']}")
            client = self._network_client_factory(sub)
            self._calls["arm"] += 1
            try:
                connections = [
                    _to_arm_json(c, sub, rg) for c in client.hub_virtual_network_connections.list(rg, names[0][1])
                ]
            except AzureError as exc:
                raise IncompleteReadError(f"listing connections of hub {hub['id']} failed: {_describe(exc)}") from exc
            for connection in connections:
                resources[str(connection["id"]).lower()] = connection

    # -- clients -----------------------------------------------------------------------------------------------
    def _graph_client(self) -> ResourceGraphClient:
        if self._graph is None:
            self._graph = ResourceGraphClient(self._credential, base_url=self._base_url, **self._client_options)
        return self._graph

    def _network_client(self, subscription_id: str) -> NetworkManagementClient:
        key = subscription_id.lower()
        if key not in self._network:
            self._network[key] = NetworkManagementClient(
                self._credential, subscription_id, base_url=self._base_url, **self._client_options
            )
        return self._network[key]


def export_main(
    subscriptions: list[str],
    *,
    out: TextIO,
    err: TextIO | None = None,
    reader: ResourceGraphTopologyReader | None = None,
) -> int:
    """`cli export`: write the live topology as {"value": [...]} to `out`; 0 on success, 2 with one line on err."""
    err = err or sys.stderr
    try:
        reader = reader or ResourceGraphTopologyReader(default_credential(None), subscriptions)
        resources = reader.read()
    except (IncompleteReadError, AzureError, ValueError, TypeError) as exc:
        print(f"export failed: {_one_line(exc)}", file=err)
        return 2
    json.dump({"value": resources}, out, indent=2)
    out.write("\n")
    return 0


# -- helpers -----------------------------------------------------------------------------------------------------
def _parse_id(resource_id: str) -> tuple[str | None, str | None, list[tuple[str, str]]]:
    """(subscription, resource group, [(type segment lower, name), ...]) of a Microsoft.Network id."""
    parts = resource_id.strip("/").split("/")
    if len(parts) < 8 or parts[0].lower() != "subscriptions" or parts[2].lower() != "resourcegroups":
        return None, None, []
    if parts[4].lower() != "providers" or parts[5].lower() != "microsoft.network" or len(parts) % 2:
        return None, None, []
    pairs = [(parts[i].lower(), parts[i + 1]) for i in range(6, len(parts), 2)]
    return parts[1], parts[3], pairs


def _focus_target(resource_id: str) -> _Target | None:
    sub, rg, pairs = _parse_id(resource_id)
    if sub is None or rg is None or not pairs or len(pairs) > 2:
        return None
    if len(pairs) == 2:
        parent_kind = _PARENT_OF_CHILD.get((pairs[0][0], pairs[1][0]))
        if parent_kind is None:
            return None
        parent_id = "/".join(resource_id.rstrip("/").split("/")[:-2])
        return _Target(parent_id, sub, rg, parent_kind, (pairs[0][1],))
    kind, name = pairs[0]
    if kind not in _GETTERS:
        return None
    return _Target(resource_id.rstrip("/"), sub, rg, kind, (name,))


def _drop(resources: dict[str, JsonDict], resource_id: str) -> None:
    key = resource_id.lower()
    for k in [k for k in resources if k == key or k.startswith(key + "/")]:
        del resources[k]


def _to_arm_json(model: Any, subscription_id: str, resource_group: str) -> JsonDict:
    """A network SDK model back in ARM GET's JSON shape (REST camelCase keys), plus the RG-style columns."""
    as_dict = getattr(model, "as_dict", None)
    data: JsonDict = as_dict() if callable(as_dict) else dict(model)
    data.setdefault("subscriptionId", subscription_id)
    data.setdefault("resourceGroup", resource_group)
    return data


NO_READER = "no Reader role for the auditor's identity, or not found (Resource Graph cannot tell which)"


def _get_failed(target: _Target, exc: AzureError) -> IncompleteReadError:
    """An ARM GET that failed; a 403 means the subscription itself is not readable (no Reader): say which."""
    forbidden = getattr(exc, "status_code", None) == 403
    return IncompleteReadError(f"ARM GET {target.resource_id} failed: {_describe(exc)}",
                               unreadable={target.subscription_id: NO_READER} if forbidden else None)


def _describe(exc: AzureError) -> str:
    status = getattr(exc, "status_code", None)
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None)
    message = getattr(error, "message", None) or exc.message or type(exc).__name__
    head = " ".join(str(p) for p in (status, code) if p)
    return _one_line(f"{head}: {message}" if head else message)


def _one_line(value: object) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= 300 else text[:297] + "..."
