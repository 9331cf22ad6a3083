"""Live topology reader: one Resource Graph query for the scope, ARM GETs for what Resource Graph lacks or lags.

Any failed or partial part raises IncompleteReadError, so a failed read never looks like a closed path.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import quote

from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError
from azure.core.pipeline import policies
from azure.core.rest import HttpRequest, HttpResponse
from azure.mgmt.core import ARMPipelineClient
from azure.mgmt.core.exceptions import ARMErrorFormat
from azure.mgmt.core.policies import (
    ARMAutoResourceProviderRegistrationPolicy,
    ARMChallengeAuthenticationPolicy,
    ARMHttpLoggingPolicy,
)
from azure.mgmt.network import NetworkManagementClient

from shared.app.ports import IncompleteReadError, JsonDict, ScopeRead
from shared.core.focus import MAX_EVENT_ARM_CALLS, FocusedRead, subscription_of, unknown_references

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
# Projected: each type keeps only the top-level properties the parser reads (snapshot.transit_projection prunes the
# rest on our side), so a VNet's subnets, a gateway's BGP settings or a circuit's stats never travel.
TOPOLOGY_QUERY = """\
resources
| where type in~ ('microsoft.network/virtualnetworks', 'microsoft.network/virtualnetworkgateways',
    'microsoft.network/connections', 'microsoft.network/expressroutecircuits',
    'microsoft.network/expressroutegateways', 'microsoft.network/virtualhubs')
| extend properties = case(
    type =~ 'microsoft.network/virtualnetworks', pack('addressSpace', properties.addressSpace,
        'provisioningState', properties.provisioningState,
        'virtualNetworkPeerings', properties.virtualNetworkPeerings),
    type =~ 'microsoft.network/virtualnetworkgateways', pack('gatewayType', properties.gatewayType,
        'ipConfigurations', properties.ipConfigurations, 'allowRemoteVnetTraffic', properties.allowRemoteVnetTraffic,
        'allowVirtualWanTraffic', properties.allowVirtualWanTraffic, 'adminState', properties.adminState,
        'provisioningState', properties.provisioningState),
    type =~ 'microsoft.network/connections', pack('connectionType', properties.connectionType,
        'virtualNetworkGateway1', properties.virtualNetworkGateway1, 'peer', properties.peer,
        'provisioningState', properties.provisioningState),
    type =~ 'microsoft.network/expressroutecircuits', pack(
        'serviceProviderProvisioningState', properties.serviceProviderProvisioningState,
        'provisioningState', properties.provisioningState, 'peerings', properties.peerings),
    type =~ 'microsoft.network/expressroutegateways', pack('virtualHub', properties.virtualHub,
        'allowNonVirtualWanTraffic', properties.allowNonVirtualWanTraffic,
        'provisioningState', properties.provisioningState,
        'expressRouteConnections', properties.expressRouteConnections),
    type =~ 'microsoft.network/virtualhubs', pack('virtualWan', properties.virtualWan,
        'provisioningState', properties.provisioningState,
        'virtualNetworkConnections', properties.virtualNetworkConnections),
    properties)
| project id, name, type, location, tags, subscriptionId, resourceGroup, properties
| union (resourcecontainers
    | where type =~ 'microsoft.resources/subscriptions'
    | project id, name, type, location, tags, subscriptionId, resourceGroup, properties)
| order by id asc"""

# Resource Graph limits (Microsoft Learn: "Guidance for throttled requests in Azure Resource Graph", "Working with
# large Azure resource data sets"; ../shared/DOMAIN.md section 5): at most 1,000 subscriptions per request (larger
# lists are batched; the Azure CLI silently forwards only the first 1,000), at most 1,000 rows a page, and a quota
# per caller per window (e.g. 15 queries per 5 s) announced on every answer by x-ms-user-quota-remaining and
# x-ms-user-quota-resets-after (hh:mm:ss). A management-group query covers at most 10,000 subscriptions and then
# says so with x-ms-tenant-subscription-limit-hit: true.
MAX_SUBSCRIPTIONS_PER_QUERY = 1000
# The query goes through azure-mgmt-core's ARM pipeline (the one every generated management client builds: bearer
# token, retries honouring Retry-After, no secrets logged) rather than azure-mgmt-resourcegraph, whose every
# stable release (8.0.1 the newest, 2026-11) requires the deprecated msrest (only the 8.1.0b* betas do not).
# REST API "Resources - Resources", api-version 2022-10-01 (learn.microsoft.com/rest/api/azureresourcegraph):
# POST {ARM}/providers/Microsoft.ResourceGraph/resources with {"subscriptions" | "managementGroups", "query",
# "options": {"$top", "$skipToken", "resultFormat"}}; the answer is {"totalRecords", "count", "resultTruncated"
# ("true"/"false"), "$skipToken" (absent on the last page), "data"}, errors are ARM's {"error": {"code",
# "message"}}.
RESOURCE_GRAPH_PATH = "/providers/Microsoft.ResourceGraph/resources"
RESOURCE_GRAPH_API_VERSION = "2022-10-01"
DEFAULT_ARM_ENDPOINT = "https://management.azure.com"
_MAX_PAGES = 1000

# Why a subscription is unreadable: ARM's GET /subscriptions/{id} (Subscriptions - Get, api-version 2022-12-01)
# answers 403 AuthorizationFailed without a role there, 404 SubscriptionNotFound for an id that does not exist and
# 401 InvalidAuthenticationTokenTenant for one in another Microsoft Entra tenant. One GET per unreadable
# subscription, at most this many a read (an estate that lost Reader everywhere is named by Resource Graph alone).
SUBSCRIPTIONS_API_VERSION = "2022-12-01"
MAX_WHY_LOOKUPS = 20

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


class QuotaPacer:
    """Spaces Resource Graph queries by the quota the service announces, instead of running into 429.

    Every answer carries x-ms-user-quota-remaining (queries left in the window) and x-ms-user-quota-resets-after
    (hh:mm:ss until the window resets). Queries left are handed out one at a time under a lock (one reader serves
    concurrent invocations); at zero the next query waits for the reset. A wait longer than `max_wait_seconds`
    gives up with IncompleteReadError (nothing false is committed; the next reconcile completes the picture).
    Another process using the same identity can still spend the quota: a 429 is then retried by the SDK after
    its Retry-After, and a 429 that outlasts those retries makes the read incomplete.
    """

    def __init__(self, *, max_wait_seconds: float = 120.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._max_wait = max_wait_seconds
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._remaining: int | None = None  # unknown until the first answer
        self._resets_at = 0.0
        self.waited_seconds = 0.0

    def wait_turn(self) -> None:
        with self._lock:
            now = self._clock()
            if self._remaining is not None and self._remaining <= 0 and now < self._resets_at:
                wait = self._resets_at - now
                if wait > self._max_wait:
                    raise IncompleteReadError(
                        f"Resource Graph quota exhausted for {wait:.0f} s more (x-ms-user-quota-resets-after); "
                        "the read was cut short and nothing was committed")
                logger.info("Resource Graph quota spent; waiting %.1f s for it to reset", wait)
                self._sleep(wait)  # under the lock: the other threads wait for the same reset
                self.waited_seconds += wait
                self._remaining = None
            elif self._remaining is not None and now >= self._resets_at and self._remaining <= 0:
                self._remaining = None
            if self._remaining is not None:
                self._remaining -= 1

    def observe(self, headers: Any) -> None:
        remaining = _int_header(headers, "x-ms-user-quota-remaining")
        resets_after = _duration_header(headers, "x-ms-user-quota-resets-after")
        retry_after = _int_header(headers, "retry-after")
        with self._lock:
            now = self._clock()
            if remaining is not None:
                self._remaining = remaining
            if resets_after is not None:
                self._resets_at = now + resets_after
            if retry_after is not None:
                self._remaining = 0
                self._resets_at = max(self._resets_at, now + retry_after)


def _int_header(headers: Any, name: str) -> int | None:
    try:
        value = headers.get(name) if headers is not None else None
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _duration_header(headers: Any, name: str) -> float | None:
    """hh:mm:ss (as Resource Graph spells x-ms-user-quota-resets-after) in seconds."""
    value = headers.get(name) if headers is not None else None
    if not isinstance(value, str):
        return None
    try:
        hours, minutes, seconds = value.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return None


class ResourceGraphTopologyReader:
    """TopologyReader over Azure Resource Graph (the scope) and ARM (the event's resource, hub connections)."""

    def __init__(
        self,
        credential: TokenCredential,
        subscriptions: Sequence[str],
        *,
        base_url: str | None = None,
        arm_endpoint: str | None = None,
        management_group: str | None = None,
        connection_verify: str | bool | None = None,
        retry_total: int | None = None,
        read_timeout: float | None = None,
        page_size: int = 1000,
        batch_size: int = MAX_SUBSCRIPTIONS_PER_QUERY,
        pacer: QuotaPacer | None = None,
        network_client_factory: NetworkClientFactory | None = None,
    ) -> None:
        """`arm_endpoint` (the ARM_ENDPOINT setting) sets both the base URL and the token scope (endpoint +
        /.default); `base_url` alone only redirects the calls (tests). `management_group`: query the group's
        subscriptions instead of (or besides) the listed ones."""
        if isinstance(subscriptions, str):
            raise TypeError("subscriptions must be a sequence of subscription ids, not one string")
        unique: dict[str, str] = {}
        for sub in subscriptions:
            if not isinstance(sub, str) or not sub.strip():
                raise ValueError("every subscription id must be a non-empty string")
            unique.setdefault(sub.strip().lower(), sub.strip())
        if not unique and not management_group:
            raise ValueError("at least one subscription id (or a management group) is needed")
        if not 1 <= page_size <= 1000:
            raise ValueError("page_size must be between 1 and 1000 (Resource Graph's limit)")
        if not 1 <= batch_size <= MAX_SUBSCRIPTIONS_PER_QUERY:
            raise ValueError(f"batch_size must be between 1 and {MAX_SUBSCRIPTIONS_PER_QUERY} (Resource Graph's limit)")
        self._management_group = management_group or None
        self._batch_size = batch_size
        self._pacer = pacer or QuotaPacer()
        self._credential = credential
        self._subscriptions = list(unique.values())
        self._page_size = page_size
        options: dict[str, Any] = {
            "connection_verify": connection_verify,
            "retry_total": retry_total,
            "read_timeout": read_timeout,
        }
        if arm_endpoint:
            endpoint = arm_endpoint.rstrip("/")
            base_url = base_url or endpoint
            options["credential_scopes"] = [endpoint + "/.default"]
        self._client_options = {k: v for k, v in options.items() if v is not None}
        self._base_url = base_url
        self._network_client_factory = network_client_factory or self._network_client
        self._arm: ARMPipelineClient[Any, Any] | None = None
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

    def warm(self) -> None:
        """Pay a new instance's first-call costs before its first event (Auditor.warm, the warmup trigger): the
        first network client (it imports the SDK's HTTP transport: 0.09 s of a new process's first event here)
        and a token for the ARM scope (with a managed identity, a request to its endpoint; the credential keeps
        the token). Makes no ARM call; an error is the caller's to drop (the event then pays these costs)."""
        if self._subscriptions:
            self._network_client_factory(self._subscriptions[0])
        scopes = self._client_options.get("credential_scopes") or [DEFAULT_ARM_ENDPOINT + "/.default"]
        self._credential.get_token(*scopes)

    def read(self, *, focus_resource_id: str | None = None) -> list[JsonDict]:
        """Every relevant resource of the scope, sorted by id; IncompleteReadError when any part failed."""
        scope = self.read_scope(focus_resource_id=focus_resource_id)
        if scope.failed or scope.unreadable:
            raise IncompleteReadError("; ".join(f"subscription {s}: {why}" for s, why in
                                                {**scope.failed, **scope.unreadable}.items()),
                                      unreadable=scope.unreadable)
        return scope.resources

    def read_scope(self, *, focus_resource_id: str | None = None) -> ScopeRead:
        """What the scope's readable subscriptions hold, sorted by id, and which subscriptions were not read and
        why (no Reader / not found: `unreadable`; throttled or failed this time: `failed`). None of a missed
        subscription's resources is returned. IncompleteReadError when nothing could be read."""
        self._per_thread.calls = {"resource_graph": 0, "arm": 0}
        self._per_thread.warnings = []
        unreadable: dict[str, str] = {}
        failed: dict[str, str] = {}
        try:
            resources = self._query_graph(unreadable, failed)
            if focus_resource_id:
                self._miss_on_error(lambda: self._refresh_focus(focus_resource_id, resources),
                                    _focus_subscription(focus_resource_id), unreadable, failed)
            self._add_hub_connections(resources, unreadable, failed)
            if unreadable:
                self._tell_why(unreadable)
        finally:
            self.last_read_calls = ReadCalls(**self._calls)
        missed = {s.lower() for s in (*unreadable, *failed)}
        if missed:
            resources = {k: v for k, v in resources.items() if _subscription(k) not in missed}
            readable = [s for s in self._subscriptions if s.lower() not in missed]
            if not readable and not self._management_group:
                raise IncompleteReadError(
                    "no watched subscription could be read: "
                    + "; ".join(f"subscription {s}: {why}" for s, why in {**failed, **unreadable}.items()),
                    unreadable=unreadable)
            logger.warning("topology read missed subscription(s) %s; their pairs keep their committed status",
                           ", ".join(sorted(missed)))
        logger.info(
            "topology read: %s resources, %s Resource Graph and %s ARM calls",
            len(resources),
            self.last_read_calls.resource_graph,
            self.last_read_calls.arm,
        )
        return ScopeRead(resources=[resources[k] for k in sorted(resources)], unreadable=unreadable, failed=failed,
                         warnings=self.last_read_warnings)

    @staticmethod
    def _miss_on_error(call: Callable[[], None], subscription: str | None, unreadable: dict[str, str],
                       failed: dict[str, str]) -> None:
        """Run one part of the read; its failure misses only the subscription it reads (without one: the read)."""
        try:
            call()
        except IncompleteReadError as exc:
            if subscription is None:
                raise
            if exc.unreadable:
                for sub, why in exc.unreadable.items():
                    unreadable.setdefault(sub, f"{why} ({exc})" if why == NO_READER else why)
            else:
                failed.setdefault(subscription, str(exc))

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
        # Under a management group any subscription may be in scope; ARM's 403 then marks the read incomplete.
        return bool(self._management_group) or subscription_id.lower() in {s.lower() for s in self._subscriptions}

    def _get(self, client: Any, target: _Target) -> JsonDict | None:
        """One ARM GET of the target, as ARM JSON; None when ARM answers 404. Any other failure is incomplete."""
        self._calls["arm"] += 1
        try:
            model = _GETTERS[target.kind](client, target.resource_group, target.names[0])
        except ResourceNotFoundError:
            logger.info("resource %s is gone (404)", target.resource_id)
            return None
        except AzureError as exc:
            raise _get_failed(target, exc) from exc
        return _to_arm_json(model, target.subscription_id, target.resource_group)

    def _read_target(self, target: _Target) -> list[JsonDict]:
        """ARM's copy of the target (a hub with its connections); [] when ARM answers 404."""
        client = self._network_client_factory(target.subscription_id)
        resource = self._get(client, target)
        if resource is None:
            return []
        found = [resource]
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
    def _query_graph(self, unreadable: dict[str, str], failed: dict[str, str]) -> dict[str, JsonDict]:
        """The query over every batch of subscriptions (and the management group). A batch that fails misses its
        subscriptions (`failed`, or `unreadable` when none of them is readable); a management-group query that
        fails fails the read, since it cannot say which subscriptions it missed."""
        rows: list[Any] = []
        batches = [self._subscriptions[i:i + self._batch_size]
                   for i in range(0, len(self._subscriptions), self._batch_size)]
        for batch in batches:
            try:
                rows += self._query_pages(subscriptions=batch)
            except IncompleteReadError as exc:
                if exc.unreadable:
                    unreadable.update(exc.unreadable)
                else:
                    failed.update(dict.fromkeys(batch, str(exc)))
        if self._management_group:
            rows += self._query_pages(management_groups=[self._management_group])
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
        answered = {s.lower() for s in (*unreadable, *failed)}
        for sub in self._subscriptions:  # the listed ones only
            if sub.lower() not in readable and sub.lower() not in answered:
                unreadable[sub] = NO_READER
        return resources

    def _tell_why(self, unreadable: dict[str, str]) -> None:
        """Ask ARM why each subscription Resource Graph left out is unreadable (GET /subscriptions/{id}: 403 no
        Reader, 404 not found, 401 another tenant), at most MAX_WHY_LOOKUPS per read; the rest keep NO_READER."""
        for sub in [s for s, why in unreadable.items() if why.startswith(NO_READER)][:MAX_WHY_LOOKUPS]:
            self._calls["arm"] += 1
            client = self._arm_client()
            try:
                response = client.send_request(
                    HttpRequest("GET", client.format_url(f"/subscriptions/{quote(sub, safe='')}"),
                                params={"api-version": SUBSCRIPTIONS_API_VERSION}))
            except AzureError as exc:
                logger.info("could not ask ARM why subscription %s is unreadable: %s", sub, _describe(exc))
                continue
            unreadable[sub] = (_why_unreadable(response.status_code, _error_code(response), _json_or_none(response))
                               + unreadable[sub][len(NO_READER):])

    def _query_pages(self, *, subscriptions: list[str] | None = None,
                     management_groups: list[str] | None = None) -> list[Any]:
        """Every page of the query for one scope (a batch of subscriptions, or a management group), paced by the
        quota the service announces (see RESOURCE_GRAPH_API_VERSION for the request and answer)."""
        client = self._arm_client()
        url = client.format_url(RESOURCE_GRAPH_PATH)
        rows: list[Any] = []
        total: int | None = None
        skip_token: str | None = None
        for _ in range(_MAX_PAGES):
            options: JsonDict = {"$top": self._page_size, "resultFormat": "objectArray"}
            if skip_token:
                options["$skipToken"] = skip_token
            body: JsonDict = {"query": TOPOLOGY_QUERY, "options": options}
            if subscriptions is not None:
                body["subscriptions"] = subscriptions
            if management_groups is not None:
                body["managementGroups"] = management_groups
            self._pacer.wait_turn()
            self._calls["resource_graph"] += 1
            try:
                response = client.send_request(
                    HttpRequest("POST", url, params={"api-version": RESOURCE_GRAPH_API_VERSION}, json=body))
                if response.status_code != 200:
                    raise HttpResponseError(response=response, error_format=ARMErrorFormat)
            except AzureError as exc:
                response_headers = getattr(getattr(exc, "response", None), "headers", None)
                if response_headers is not None:
                    self._pacer.observe(response_headers)
                detail = _describe(exc)
                # None of the subscriptions is readable (see TOPOLOGY_QUERY): each is named in the health alert.
                none_readable = getattr(exc, "status_code", None) in (400, 403) and "subscription" in detail.lower()
                raise IncompleteReadError(
                    f"Resource Graph query failed: {detail}",
                    unreadable=dict.fromkeys(subscriptions or self._subscriptions,
                                             f"{NO_READER} (Resource Graph: {detail})") if none_readable
                    else None,
                ) from exc
            headers = response.headers
            self._pacer.observe(headers)
            if str(headers.get("x-ms-tenant-subscription-limit-hit", "")).lower() == "true":
                warning = ("Resource Graph covered only the first 10,000 subscriptions of management group "
                           f"{self._management_group} (x-ms-tenant-subscription-limit-hit): list the subscriptions "
                           "in WATCHED_SUBSCRIPTIONS instead, or use smaller management groups")
                if warning not in self._per_thread.warnings:
                    logger.warning("%s", warning)
                    self._per_thread.warnings.append(warning)
            answer = _json_or_none(response)
            if not isinstance(answer, dict):
                raise IncompleteReadError("Resource Graph answered in an unexpected format (not a JSON object)")
            if str(answer.get("resultTruncated", "")).lower() == "true":
                raise IncompleteReadError("Resource Graph truncated the answer (resultTruncated=true)")
            page = answer.get("data")  # objectArray: a JSON array of rows
            if not isinstance(page, list):
                raise IncompleteReadError("Resource Graph answered in an unexpected format (data is not a list)")
            rows.extend(page)
            announced = answer.get("totalRecords")
            total = announced if isinstance(announced, int) and not isinstance(announced, bool) else None
            token = answer.get("$skipToken")
            skip_token = token if isinstance(token, str) and token else None
            if not skip_token:
                break
        else:
            raise IncompleteReadError(f"Resource Graph still had pages after {_MAX_PAGES}; giving up")
        if total is not None and len(rows) < total:
            raise IncompleteReadError(f"Resource Graph announced {total} rows but returned {len(rows)}")
        return rows

    @property
    def last_read_warnings(self) -> list[str]:
        """Warnings of this thread's last read (e.g. the management group's subscription limit)."""
        return list(getattr(self._per_thread, "warnings", []))

    # -- ARM ---------------------------------------------------------------------------------------------------
    def _refresh_focus(self, focus_resource_id: str, resources: dict[str, JsonDict]) -> None:
        target = _focus_target(focus_resource_id)
        if target is None:
            logger.info(
                "event resource %s is not a type the reader refreshes; Resource Graph's copy stands", focus_resource_id
            )
            return
        if not self._watched(target.subscription_id):
            logger.warning("event resource %s is outside the watched subscriptions; not read", focus_resource_id)
            return
        resource = self._get(self._network_client_factory(target.subscription_id), target)
        if resource is None:
            _drop(resources, target.resource_id)
            return
        resources.pop(target.resource_id.lower(), None)
        resources[str(resource.get("id") or target.resource_id).lower()] = resource

    def _add_hub_connections(self, resources: dict[str, JsonDict], unreadable: dict[str, str],
                             failed: dict[str, str]) -> None:
        hubs = [r for r in resources.values() if str(r.get("type", "")).lower() == VIRTUAL_HUBS]
        for hub in hubs:
            sub, rg, names = _parse_id(str(hub["id"]))
            if sub is None or rg is None or not names:
                raise IncompleteReadError(f"cannot list connections of hub with unexpected id {hub['id']}")
            if sub.lower() in {s.lower() for s in (*unreadable, *failed)}:
                continue  # already missed: its resources are dropped
            self._miss_on_error(partial(self._list_hub_connections, resources, str(hub["id"]), sub, rg,
                                        names[0][1]), sub, unreadable, failed)

    def _list_hub_connections(self, resources: dict[str, JsonDict], hub_id: str, sub: str, rg: str,
                              name: str) -> None:
        client = self._network_client_factory(sub)
        self._calls["arm"] += 1
        try:
            connections = [_to_arm_json(c, sub, rg) for c in client.hub_virtual_network_connections.list(rg, name)]
        except AzureError as exc:
            forbidden = getattr(exc, "status_code", None) == 403
            raise IncompleteReadError(f"listing connections of hub {hub_id} failed: {_describe(exc)}",
                                      unreadable={sub: NO_READER} if forbidden else None) from exc
        for connection in connections:
            resources[str(connection["id"]).lower()] = connection

    # -- clients -----------------------------------------------------------------------------------------------
    def _arm_client(self) -> ARMPipelineClient[Any, Any]:
        """A plain ARM pipeline (bearer token for the ARM scope, retries with Retry-After, no secrets logged)."""
        if self._arm is None:
            self._arm = arm_pipeline(self._credential, self._base_url, **self._client_options)
        return self._arm

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


def arm_pipeline(credential: TokenCredential, base_url: str | None, *, credential_scopes: Sequence[str] | None = None,
                 **options: Any) -> ARMPipelineClient[Any, Any]:
    """The azure-mgmt-core pipeline the generated management clients build (same policies, same order), for calls
    that need no generated client. `options`: connection_verify, retry_total, read_timeout..."""
    scopes = list(credential_scopes or [DEFAULT_ARM_ENDPOINT + "/.default"])
    redirect = policies.RedirectPolicy(**options)
    pipeline_policies: list[Any] = [
        policies.RequestIdPolicy(**options),
        policies.HeadersPolicy(**options),
        policies.UserAgentPolicy(sdk_moniker="er-transit-auditor", **options),
        policies.ProxyPolicy(**options),
        policies.ContentDecodePolicy(**options),
        ARMAutoResourceProviderRegistrationPolicy(),
        redirect,
        policies.RetryPolicy(**options),
        ARMChallengeAuthenticationPolicy(credential, *scopes, **options),
        policies.CustomHookPolicy(**options),
        policies.NetworkTraceLoggingPolicy(**options),
        policies.DistributedTracingPolicy(**options),
        policies.SensitiveHeaderCleanupPolicy(**options),
        ARMHttpLoggingPolicy(**options),
    ]
    return ARMPipelineClient(base_url=base_url or DEFAULT_ARM_ENDPOINT, policies=pipeline_policies, **options)


def _why_unreadable(status: int, code: str | None, body: Any) -> str:
    """Why ARM says a subscription cannot be read (see SUBSCRIPTIONS_API_VERSION)."""
    detail = " ".join(str(p) for p in (status, code) if p)
    if status == 403:
        return f"no Reader role for the auditor's identity ({detail})"
    if status == 404:
        return f"not found: no such subscription, or it was deleted ({detail})"
    if status == 401:
        return f"in another Microsoft Entra tenant, or the token was refused ({detail})"
    if status == 200 and isinstance(body, dict):
        state = body.get("state")
        if isinstance(state, str) and state.lower() != "enabled":
            return f"the subscription is {_one_line(state)[:40]} (Resource Graph holds nothing for it)"
        return ("readable through ARM but absent from Resource Graph (a role granted minutes ago, or Resource "
                "Graph lagging)")
    return NO_READER + (f" ({detail})" if detail else "")


def _error_code(response: HttpResponse) -> str | None:
    body = _json_or_none(response)
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return _one_line(code)[:80] if isinstance(code, str) else None


def _json_or_none(response: HttpResponse) -> Any:
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError):
        return None


# -- helpers -----------------------------------------------------------------------------------------------------
def _subscription(resource_key: str) -> str:
    return subscription_of(resource_key)


def _focus_subscription(resource_id: str) -> str | None:
    target = _focus_target(resource_id)
    return target.subscription_id if target is not None else None


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
