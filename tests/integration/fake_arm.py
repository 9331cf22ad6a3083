"""A fake ARM + Resource Graph endpoint over HTTPS (trustme CA) for driving the real Azure SDK clients offline.

Use the `fake_arm` fixture (below; re-exported by tests/integration/conftest.py):

    def test_x(fake_arm):
        fake_arm.set_resources({SUB: [vnet, gateway]})           # what both ARM and Resource Graph hold
        fake_arm.script(r"/virtualNetworkGateways/gw1$", Reply(429, headers={"Retry-After": "0"}))
        reader = ResourceGraphTopologyReader(fake_arm.credential, [SUB], **fake_arm.client_options())
        ...
        assert fake_arm.count(method="POST") == 1                  # recorded requests: fake_arm.requests

Default behaviour (when no scripted reply matches):
- POST /providers/Microsoft.ResourceGraph/resources: the held resources of the requested subscriptions (types in
  lower case, `subscriptionId`/`resourceGroup` added, child types such as hubVirtualNetworkConnections left out,
  as Resource Graph's `resources` table does), plus one `microsoft.resources/subscriptions` row per readable
  subscription (what the reader's `union ResourceContainers` leg returns), paged by `$top` with `$skipToken`.
  A denied subscription is silently left out, as Resource Graph does; if none is readable it answers 400.
- GET of a resource id: ARM's copy (see `set_arm_copy`) or the held resource, else 404 ResourceNotFound.
  GET .../virtualHubs/{hub}/hubVirtualNetworkConnections lists the hub's connections ({"value": [...]}).
- Anything under a denied subscription: 403 AuthorizationFailed. GET /subscriptions/{id} (Subscriptions - Get):
  the subscription, 403 when denied, 404 SubscriptionNotFound when the fake holds no such subscription.
- Any request without `api-version`: 400 MissingApiVersionParameter, as ARM answers.
- GET /msi/token: a managed-identity endpoint (the App Service protocol azure-identity speaks when IDENTITY_ENDPOINT
  and IDENTITY_HEADER are set): checks the X-IDENTITY-HEADER secret and issues a token for the asked resource.

Limits it enforces as the real service does (so a reader that breaks them fails here, not in Azure):
- Resource Graph: at most 1,000 rows a page ($top) and 1,000 subscriptions a request (400 otherwise); a quota per
  caller (by bearer token) of 15 queries in any 5-second window, announced on every answer with
  x-ms-user-quota-remaining / x-ms-user-quota-resets-after (hh:mm:ss), and 429 with Retry-After beyond it; a
  management-group query covers at most 10,000 subscriptions and then sets x-ms-tenant-subscription-limit-hit.
  Source: Microsoft Learn, "Guidance for throttled requests in Azure Resource Graph" and "Working with large Azure
  resource data sets"; ../shared/DOMAIN.md section 5.
- Every ARM and Resource Graph request must carry a bearer token (401 otherwise), as ARM requires.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import trustme
from azure.core.credentials import AccessToken

RESOURCE_GRAPH_PATH = "/providers/Microsoft.ResourceGraph/resources"
MSI_TOKEN_PATH = "/msi/token"
_SUBSCRIPTION_ROW_TYPE = "microsoft.resources/subscriptions"
# Resource Graph's limits (sources in the module docstring).
MAX_ROWS_PER_PAGE = 1000
MAX_SUBSCRIPTIONS_PER_REQUEST = 1000
QUERY_QUOTA = 15
QUOTA_WINDOW_SECONDS = 5.0
TENANT_SUBSCRIPTION_LIMIT = 10_000


@dataclass(frozen=True)
class Reply:
    """One scripted HTTP answer. `body` is JSON-encoded unless it is bytes; `delay` sleeps before answering."""

    status: int = 200
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0


def arm_error(status: int, code: str, message: str = "", **reply: Any) -> Reply:
    """A reply shaped like an ARM error: {"error": {"code", "message"}}."""
    return Reply(status, {"error": {"code": code, "message": message or code}}, **reply)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: Mapping[str, str]
    body: Any
    headers: Mapping[str, str]

    @property
    def is_resource_graph(self) -> bool:
        return self.path.lower() == RESOURCE_GRAPH_PATH.lower()


class FakeCredential:
    """A TokenCredential that always returns a far-future token; records the scopes asked for."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken("fake", int(time.time()) + 365 * 24 * 3600)


@dataclass
class _Script:
    pattern: re.Pattern[str]
    method: str | None
    replies: list[Reply]
    repeat: bool


@lru_cache(maxsize=1)
def _tls_material() -> tuple[str, str, str]:
    """(CA PEM path, server cert chain path, server key path); made once per test session."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    folder = Path(tempfile.mkdtemp(prefix="fake-arm-tls-"))
    ca_path, chain_path, key_path = folder / "ca.pem", folder / "chain.pem", folder / "key.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    cert.private_key_pem.write_to_path(str(key_path))
    chain_path.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    return str(ca_path), str(chain_path), str(key_path)


class FakeArmServer:
    """ARM and Resource Graph as seen by the SDK, over HTTPS on 127.0.0.1. Start with `start()` or `with`."""

    def __init__(self) -> None:
        self.ca_pem, chain, key = _tls_material()
        self.credential = FakeCredential()
        self.requests: list[RecordedRequest] = []
        self._resources: dict[str, dict[str, Any]] = {}
        self._arm_copies: dict[str, dict[str, Any] | None] = {}
        self._known_subscriptions: set[str] = set()
        self._denied: set[str] = set()
        self._scripts: list[_Script] = []
        self._lock = threading.Lock()
        self.query_quota = QUERY_QUOTA
        self.quota_window = QUOTA_WINDOW_SECONDS
        self.tenant_subscription_limit = TENANT_SUBSCRIPTION_LIMIT
        self._queries: dict[str, list[float]] = {}  # caller -> times of its recent Resource Graph queries
        self.throttled = 0  # 429s answered for the quota
        self.identity_header = "fake-identity-header-secret"
        self.token_requests: list[str] = []  # resources asked for at the managed-identity endpoint
        self._management_groups: dict[str, list[str]] = {}
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(chain, key)
        self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        self._httpd.fake = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self._httpd.server_address[1]}"

    def client_options(self, *, retry_total: int = 0) -> dict[str, Any]:
        """Keyword arguments that point an Azure SDK client (or our reader) at this server."""
        return {"base_url": self.base_url, "connection_verify": self.ca_pem, "retry_total": retry_total}

    def start(self) -> FakeArmServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-arm", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FakeArmServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what the server holds -------------------------------------------------------------------------------
    def set_resources(self, resources: Mapping[str, Sequence[Mapping[str, Any]]] | Sequence[Mapping[str, Any]]) -> None:
        """Replace what ARM and Resource Graph hold: {subscription id: [ARM resources]} or a flat list.

        A subscription given with an empty list exists (readable) but holds nothing.
        """
        with self._lock:
            self._resources.clear()
            self._known_subscriptions.clear()
            if isinstance(resources, Mapping):
                self._known_subscriptions.update(s.lower() for s in resources)
                items = [r for rs in resources.values() for r in rs]
            else:
                items = list(resources)
            for resource in items:
                self._resources[str(resource["id"]).lower()] = copy.deepcopy(dict(resource))
                self._known_subscriptions.add(_subscription_of(str(resource["id"])))

    def set_arm_copy(self, resource: Mapping[str, Any]) -> None:
        """ARM's current copy of a resource when Resource Graph still holds an older one (RG lags ARM)."""
        with self._lock:
            self._arm_copies[str(resource["id"]).lower()] = copy.deepcopy(dict(resource))

    def delete_from_arm(self, resource_id: str) -> None:
        """ARM answers 404 for this id while Resource Graph still returns it."""
        with self._lock:
            self._arm_copies[resource_id.lower()] = None

    def set_management_group(self, group: str, subscriptions: Sequence[str]) -> None:
        """The subscriptions under a management group (in order), for management-group scoped queries."""
        with self._lock:
            self._management_groups[group.lower()] = [s.lower() for s in subscriptions]

    def identity_env(self) -> dict[str, str]:
        """App settings that make DefaultAzureCredential use this server as its managed-identity endpoint."""
        return {"IDENTITY_ENDPOINT": self.base_url + MSI_TOKEN_PATH, "IDENTITY_HEADER": self.identity_header,
                "REQUESTS_CA_BUNDLE": self.ca_pem}

    def deny_subscription(self, subscription_id: str) -> None:
        """The caller cannot read this subscription: RG leaves it out silently, ARM answers 403."""
        with self._lock:
            self._denied.add(subscription_id.lower())

    def allow_subscription(self, subscription_id: str) -> None:
        """Undo deny_subscription: the caller can read this subscription again (Reader granted back)."""
        with self._lock:
            self._denied.discard(subscription_id.lower())

    def script(self, path_regex: str, *replies: Reply, method: str | None = None, repeat: bool = False) -> None:
        """Answer requests whose path matches `path_regex` (re.search, case-insensitive) with `replies`.

        Each matching request consumes the next reply; once used up, the default behaviour returns (or, with
        `repeat=True`, the last reply is given forever). Later scripts are tried after earlier ones.
        """
        if not replies:
            raise ValueError("script() needs at least one reply")
        with self._lock:
            self._scripts.append(
                _Script(re.compile(path_regex, re.IGNORECASE), method and method.upper(), list(replies), repeat)
            )

    # -- what was asked ----------------------------------------------------------------------------------------
    def count(self, path_regex: str | None = None, *, method: str | None = None) -> int:
        return sum(1 for _ in self._matching(path_regex, method))

    def resource_graph_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.is_resource_graph]

    def arm_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if not r.is_resource_graph]

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def _matching(self, path_regex: str | None, method: str | None) -> Iterator[RecordedRequest]:
        pattern = re.compile(path_regex, re.IGNORECASE) if path_regex else None
        for request in list(self.requests):
            if method and request.method != method.upper():
                continue
            if pattern and not pattern.search(request.path):
                continue
            yield request

    # -- answering ---------------------------------------------------------------------------------------------
    def _answer(self, request: RecordedRequest) -> Reply:
        if request.path == MSI_TOKEN_PATH:
            return self._token(request)
        bearer = request.headers.get("authorization", "")
        if not bearer.startswith("Bearer ") or len(bearer) <= len("Bearer "):
            return arm_error(401, "AuthenticationFailed", "The Authorization header is missing or not a bearer token")
        with self._lock:
            self.requests.append(request)
            if not request.query.get("api-version"):
                # ARM and Resource Graph refuse any request without the api-version query parameter (400
                # MissingApiVersionParameter; learn.microsoft.com/azure/azure-resource-manager/management/
                # azure-services-resource-providers, "API versions"): a client that forgot it must fail here too.
                return arm_error(400, "MissingApiVersionParameter",
                                 "The api-version query parameter (?api-version=) is required for all requests.")
            for script in self._scripts:
                if script.method and script.method != request.method:
                    continue
                if not script.pattern.search(request.path) or not script.replies:
                    continue
                if script.repeat and len(script.replies) == 1:
                    return script.replies[0]
                return script.replies.pop(0)
            if request.is_resource_graph and request.method == "POST":
                return self._resource_graph(request.body, request.headers.get("authorization", ""))
            if request.method == "GET":
                return self._arm_get(request.path)
            return arm_error(405, "MethodNotAllowed", f"the fake ARM has no {request.method} {request.path}")

    def _readable(self, subscription_id: str) -> bool:
        sub = subscription_id.lower()
        return sub in self._known_subscriptions and sub not in self._denied

    def graph_answer(
        self, subscriptions: Sequence[str], *, top: int | None = None, skip_token: str | None = None
    ) -> dict[str, Any]:
        """The default Resource Graph answer (one page) for these subscriptions: a base for scripted variants."""
        with self._lock:
            return self._graph_page(subscriptions, top, skip_token)

    def _resource_graph(self, body: Any, caller: str) -> Reply:
        if not isinstance(body, Mapping) or not isinstance(body.get("query"), str):
            return arm_error(400, "BadRequest", "query request must be a JSON object with a query")
        quota = self._quota_headers(caller)
        if quota is None:
            self.throttled += 1
            return arm_error(429, "RateLimiting", "Too many requests: the caller's Resource Graph quota is spent",
                             headers=self._throttle_headers(caller))
        options = body.get("options") or {}
        top = options.get("$top")
        if top is not None and not 1 <= int(top) <= MAX_ROWS_PER_PAGE:
            return arm_error(400, "BadRequest", f"$top must be between 1 and {MAX_ROWS_PER_PAGE}", headers=quota)
        requested = [str(s) for s in body.get("subscriptions") or []]
        if len(requested) > MAX_SUBSCRIPTIONS_PER_REQUEST:
            return arm_error(400, "BadRequest", f"A request may name at most {MAX_SUBSCRIPTIONS_PER_REQUEST} "
                             f"subscriptions; this one names {len(requested)}", headers=quota)
        groups = [str(g).lower() for g in body.get("managementGroups") or []]
        headers = dict(quota)
        if groups:
            covered = [s for g in groups for s in self._management_groups.get(g, [])]
            if len(covered) > self.tenant_subscription_limit:
                covered = covered[: self.tenant_subscription_limit]
                headers["x-ms-tenant-subscription-limit-hit"] = "true"
            requested += covered
        if not any(self._readable(s) for s in requested):
            return arm_error(400, "BadRequest", "There must be at least one subscription eligible for the query",
                             headers=headers)
        return Reply(200, self._graph_page(requested, top, options.get("$skipToken")), headers=headers)

    def _quota_headers(self, caller: str) -> dict[str, str] | None:
        """Count one query against the caller's window; None when the quota is spent (answer 429)."""
        now = time.monotonic()
        recent = [t for t in self._queries.get(caller, []) if now - t < self.quota_window]
        if len(recent) >= self.query_quota:
            self._queries[caller] = recent
            return None
        recent.append(now)
        self._queries[caller] = recent
        return {"x-ms-user-quota-remaining": str(self.query_quota - len(recent)),
                "x-ms-user-quota-resets-after": _hms(self.quota_window - (now - recent[0]))}

    def _throttle_headers(self, caller: str) -> dict[str, str]:
        now = time.monotonic()
        wait = self.quota_window - (now - self._queries[caller][0])
        return {"Retry-After": str(max(1, int(-(-wait // 1)))), "x-ms-user-quota-remaining": "0",
                "x-ms-user-quota-resets-after": _hms(wait)}

    def _token(self, request: RecordedRequest) -> Reply:
        if request.headers.get("x-identity-header") != self.identity_header:
            return Reply(400, {"error": "invalid_request", "error_description": "missing or wrong X-IDENTITY-HEADER"})
        resource = request.query.get("resource", "")
        with self._lock:
            self.token_requests.append(resource)
        return Reply(200, {"access_token": f"mi-token-for-{resource}", "expires_on": str(int(time.time()) + 3600),
                           "resource": resource, "token_type": "Bearer"})

    def _graph_page(self, requested: Sequence[str], top: int | None, token: str | None) -> dict[str, Any]:
        readable = [s for s in requested if self._readable(s)]
        keep = {s.lower() for s in readable}
        rows: list[dict[str, Any]] = []
        for sub in readable:
            rows.append(
                {
                    "id": f"/subscriptions/{sub}",
                    "name": sub,
                    "type": _SUBSCRIPTION_ROW_TYPE,
                    "subscriptionId": sub,
                    "resourceGroup": "",
                    "properties": {"state": "Enabled"},
                }
            )
        for key, resource in self._resources.items():
            rtype = str(resource.get("type", "")).lower()
            if _subscription_of(key) not in keep or rtype.count("/") != 1:
                continue  # Resource Graph's `resources` table has no hubVirtualNetworkConnections etc.
            row = dict(resource)  # shallow: held resources are never mutated (set_resources replaces them)
            row["type"] = rtype
            row.setdefault("subscriptionId", _subscription_of(key))
            row.setdefault("resourceGroup", _resource_group_of(key))
            rows.append(row)
        rows.sort(key=lambda r: str(r["id"]).lower())
        size = int(top or 1000)
        start = int(base64.b64decode(token).decode()) if token else 0
        page = rows[start : start + size]
        answer: dict[str, Any] = {
            "totalRecords": len(rows),
            "count": len(page),
            "resultTruncated": "false",
            "data": page,
        }
        if start + size < len(rows):
            answer["$skipToken"] = base64.b64encode(str(start + size).encode()).decode()
        return answer

    def _arm_get(self, path: str) -> Reply:
        parts = path.strip("/").split("/")
        if len(parts) < 2 or parts[0].lower() != "subscriptions":
            return arm_error(404, "NotFound", f"no route for {path}")
        if len(parts) == 2:  # Subscriptions - Get: 404 for an id that does not exist, 403 without a role there
            sub = parts[1].lower()
            if sub not in self._known_subscriptions:
                return arm_error(404, "SubscriptionNotFound", f"The subscription '{parts[1]}' could not be found.")
            if sub in self._denied:
                return arm_error(403, "AuthorizationFailed", "The client does not have authorization to perform "
                                 f"action 'Microsoft.Resources/subscriptions/read' over scope '/subscriptions/{sub}'")
            return Reply(200, {"id": f"/subscriptions/{sub}", "subscriptionId": sub, "displayName": sub,
                               "state": "Enabled"})
        if not self._readable(parts[1]):
            return arm_error(
                403, "AuthorizationFailed", "The client does not have authorization to perform action over scope"
            )
        key = path.rstrip("/").lower()
        if parts[-1].lower() == "hubvirtualnetworkconnections":
            prefix = key + "/"
            children = [self._current(k) for k in self._resources if k.startswith(prefix)]
            return Reply(200, {"value": [c for c in children if c is not None]})
        resource = self._current(key)
        if resource is None:
            return arm_error(404, "ResourceNotFound", f"The resource '{parts[-1]}' was not found.")
        return Reply(200, resource)

    def _current(self, key: str) -> dict[str, Any] | None:
        """ARM's view of a resource: its ARM copy if set, else the held resource (ARM casing, no RG columns)."""
        if key in self._arm_copies:
            return copy.deepcopy(self._arm_copies[key])
        resource = self._resources.get(key)
        if resource is None:
            return None
        out = copy.deepcopy(resource)
        out.pop("subscriptionId", None)
        out.pop("resourceGroup", None)
        return out


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ThreadingHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class names it so
        pass

    def _handle(self) -> None:
        fake: FakeArmServer = self.server.fake  # type: ignore[attr-defined]
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        request = RecordedRequest(
            method=self.command,
            path=split.path,
            query=dict(parse_qsl(split.query)),
            body=body,
            headers={k.lower(): v for k, v in self.headers.items()},
        )
        reply = fake._answer(request)
        if reply.delay:
            time.sleep(reply.delay)
        payload = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
        if reply.body is None:
            payload = b""
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("x-ms-request-id", "fake-arm")
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass  # the client gave up (read timeout); nothing to tell it

    do_GET = _handle
    do_POST = _handle
    do_PUT = _handle
    do_DELETE = _handle
    do_PATCH = _handle


def _hms(seconds: float) -> str:
    whole = max(0, int(-(-seconds // 1)))
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def _subscription_of(resource_id: str) -> str:
    parts = resource_id.strip("/").split("/")
    return parts[1].lower() if len(parts) > 1 else ""


def _resource_group_of(resource_id: str) -> str:
    parts = resource_id.strip("/").split("/")
    return parts[3] if len(parts) > 3 and parts[2].lower() == "resourcegroups" else ""


@pytest.fixture
def fake_arm() -> Iterator[FakeArmServer]:
    """A started FakeArmServer holding nothing; stopped after the test."""
    with FakeArmServer() as server:
        yield server
