"""ResourceGraphTopologyReader through the real SDK clients against the fake ARM + Resource Graph over HTTPS."""

from __future__ import annotations

import copy
import io
import json
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError

from shared.adapters.arm import TOPOLOGY_QUERY, ReadCalls, ResourceGraphTopologyReader, default_credential, export_main
from shared.app.ports import IncompleteReadError
from shared.core.snapshot import parse_resources
from tests import builders as b
from tests.integration.fake_arm import RESOURCE_GRAPH_PATH, FakeArmServer, Reply, arm_error

SUB2 = "00000000-0000-0000-0000-000000000002"
RG_PATH = r"/providers/Microsoft\.ResourceGraph/resources$"


def make_reader(fake: FakeArmServer, subs: list[str] | None = None, **options: Any) -> ResourceGraphTopologyReader:
    kwargs: dict[str, Any] = {**fake.client_options(retry_total=options.pop("retry_total", 0)), **options}
    return ResourceGraphTopologyReader(fake.credential, subs or [b.SUB], **kwargs)


def ids(resources: list[dict[str, Any]]) -> set[str]:
    return {str(r["id"]).lower() for r in resources}


def by_id(resources: list[dict[str, Any]], resource_id: str) -> dict[str, Any]:
    [match] = [r for r in resources if str(r["id"]).lower() == resource_id.lower()]
    return match


@pytest.fixture
def lab(fake_arm: FakeArmServer) -> list[dict[str, Any]]:
    """Three hubs with a gateway and a connection each to one circuit, a spoke behind hub 1: 11 resources."""
    resources = b.lab(enabled=(1,))
    hub1 = next(r for r in resources if r["name"] == "hub-01")
    spoke = b.vnet("spoke-11", "10.11.0.0/16")
    b.hub_and_spoke(hub1, spoke)
    resources.append(spoke)
    fake_arm.set_resources({b.SUB: resources})
    return resources


# -- Resource Graph ---
def test_reads_every_page_following_the_skip_token(fake_arm: FakeArmServer, lab: list[dict[str, Any]]) -> None:
    reader = make_reader(fake_arm, page_size=5)  # 11 resources + 1 subscription row = 3 pages

    resources = reader.read()

    assert ids(resources) == ids(lab)
    posts = fake_arm.resource_graph_requests()
    assert len(posts) == 3
    assert "$skipToken" not in posts[0].body["options"]
    assert all(p.body["options"].get("$skipToken") for p in posts[1:])  # the SDK sends $skipToken in options
    assert len({p.body["options"]["$skipToken"] for p in posts[1:]}) == 2
    assert reader.last_read_calls == ReadCalls(resource_graph=3, arm=0)


def test_one_constant_query_over_all_subscriptions(fake_arm: FakeArmServer, lab: list[dict[str, Any]]) -> None:
    fake_arm.set_resources({b.SUB: lab, SUB2: []})

    make_reader(fake_arm, [b.SUB, SUB2, b.SUB.upper()]).read()

    [post] = fake_arm.resource_graph_requests()
    assert post.body["query"] == TOPOLOGY_QUERY
    assert post.body["subscriptions"] == [b.SUB, SUB2]  # de-duplicated case-insensitively
    assert post.body["options"]["resultFormat"] == "objectArray"
    assert post.query["api-version"] == "2022-10-01"
    assert fake_arm.credential.scopes[-1] == ("https://management.azure.com/.default",)


def test_resources_keep_resource_graph_columns(fake_arm: FakeArmServer, lab: list[dict[str, Any]]) -> None:
    resources = make_reader(fake_arm).read()

    gw = by_id(resources, b.rid("virtualNetworkGateways", "ergw-01"))
    assert gw["type"] == "microsoft.network/virtualnetworkgateways"
    assert (gw["subscriptionId"], gw["resourceGroup"]) == (b.SUB, b.RG)
    assert gw["properties"]["allowRemoteVnetTraffic"] is True
    assert not any(r["type"] == "microsoft.resources/subscriptions" for r in resources)


def test_a_subscription_resource_graph_silently_leaves_out_is_incomplete(
    fake_arm: FakeArmServer, lab: list[dict[str, Any]]
) -> None:
    fake_arm.set_resources({b.SUB: lab, SUB2: [b.vnet("other", "10.50.0.0/16", sub=SUB2)]})
    fake_arm.deny_subscription(SUB2)

    with pytest.raises(IncompleteReadError, match=SUB2):
        make_reader(fake_arm, [b.SUB, SUB2]).read()
    [post] = fake_arm.resource_graph_requests()
    assert post.body["subscriptions"] == [b.SUB, SUB2]


def test_read_scope_returns_the_readable_subscriptions_and_says_why_another_is_not(
    fake_arm: FakeArmServer, lab: list[dict[str, Any]]
) -> None:
    other = b.vnet("other", "10.50.0.0/16", sub=SUB2)
    fake_arm.set_resources({b.SUB: lab, SUB2: [other]})
    fake_arm.deny_subscription(SUB2)
    missing = "00000000-0000-0000-0000-0000000000ff"

    scope = make_reader(fake_arm, [b.SUB, SUB2, missing]).read_scope()

    assert ids(scope.resources) == ids(lab) and scope.failed == {}
    assert sorted(scope.unreadable) == [SUB2, missing]
    assert scope.unreadable[SUB2].startswith("no Reader role for the auditor's identity (403 AuthorizationFailed)")
    assert scope.unreadable[missing].startswith("not found") and "404 SubscriptionNotFound" in scope.unreadable[missing]
    assert fake_arm.count(rf"^/subscriptions/{SUB2}$", method="GET") == 1  # one Subscriptions - Get to tell why


def test_a_throttled_batch_misses_only_its_own_subscriptions(fake_arm: FakeArmServer) -> None:
    fake_arm.set_resources({b.SUB: b.lab((1, 2)), SUB2: [b.vnet("other", "10.50.0.0/16", sub=SUB2)]})
    fake_arm.script(RG_PATH, Reply(200, fake_arm.graph_answer([b.SUB])),
                    arm_error(429, "RateLimiting", headers={"Retry-After": "0"}))

    scope = make_reader(fake_arm, [b.SUB, SUB2], batch_size=1).read_scope()

    assert ids(scope.resources) == ids(b.lab((1, 2))) and scope.unreadable == {}
    assert list(scope.failed) == [SUB2] and "429 RateLimiting" in scope.failed[SUB2]
    with pytest.raises(IncompleteReadError, match="429"):  # `read` (export) still wants everything
        fake_arm.script(RG_PATH, Reply(200, fake_arm.graph_answer([b.SUB])),
                        arm_error(429, "RateLimiting", headers={"Retry-After": "0"}))
        make_reader(fake_arm, [b.SUB, SUB2], batch_size=1).read()


def test_a_hub_whose_connections_cannot_be_listed_misses_its_subscription_only(fake_arm: FakeArmServer) -> None:
    hub = b.virtual_hub("vhub-2", "wan-2", sub=SUB2)
    fake_arm.set_resources({b.SUB: b.lab((1, 2)), SUB2: [hub]})
    fake_arm.script(r"/hubVirtualNetworkConnections$", arm_error(503, "ServiceUnavailable"))

    scope = make_reader(fake_arm, [b.SUB, SUB2]).read_scope()

    assert ids(scope.resources) == ids(b.lab((1, 2)))  # nothing of SUB2, not even the hub Resource Graph returned
    assert list(scope.failed) == [SUB2] and "vhub-2" in scope.failed[SUB2]


def test_resource_graph_refusing_with_403_is_incomplete(fake_arm: FakeArmServer, lab: list[dict[str, Any]]) -> None:
    fake_arm.script(RG_PATH, arm_error(403, "AuthorizationFailed", "no access to the subscription"))

    with pytest.raises(IncompleteReadError, match="403 AuthorizationFailed"):
        make_reader(fake_arm).read()


def test_throttling_with_retry_after_then_success_is_complete(
    fake_arm: FakeArmServer, lab: list[dict[str, Any]]
) -> None:
    fake_arm.script(RG_PATH, arm_error(429, "RateLimiting", headers={"Retry-After": "0"}))

    resources = make_reader(fake_arm, retry_total=1).read()

    assert ids(resources) == ids(lab)
    assert fake_arm.count(RG_PATH, method="POST") == 2


def test_throttling_that_outlasts_the_retries_is_incomplete(fake_arm: FakeArmServer, lab: list[dict[str, Any]]) -> None:
    fake_arm.script(RG_PATH, arm_error(429, "RateLimiting", headers={"Retry-After": "0"}), repeat=True)

    with pytest.raises(IncompleteReadError, match="429"):
        make_reader(fake_arm, retry_total=1).read()
    assert fake_arm.count(RG_PATH, method="POST") == 2


def test_a_server_error_on_a_later_page_is_incomplete(fake_arm: FakeArmServer, lab: list[dict[str, Any]]) -> None:
    first_page = fake_arm.graph_answer([b.SUB], top=5)
    fake_arm.script(RG_PATH, Reply(200, first_page), arm_error(500, "InternalServerError"))

    with pytest.raises(IncompleteReadError, match="500"):
        make_reader(fake_arm, page_size=5).read()
    assert fake_arm.count(RG_PATH, method="POST") == 2


def test_a_timeout_is_incomplete(fake_arm: FakeArmServer, lab: list[dict[str, Any]]) -> None:
    fake_arm.script(RG_PATH, Reply(200, {"data": []}, delay=1.0))

    with pytest.raises(IncompleteReadError, match="Resource Graph query failed"):
        make_reader(fake_arm, read_timeout=0.2).read()


def test_a_truncated_answer_is_incomplete(fake_arm: FakeArmServer, lab: list[dict[str, Any]]) -> None:
    page = fake_arm.graph_answer([b.SUB])
    fake_arm.script(RG_PATH, Reply(200, {**page, "resultTruncated": "true"}))

    with pytest.raises(IncompleteReadError, match="truncated"):
        make_reader(fake_arm).read()


def test_fewer_rows_than_announced_is_incomplete(fake_arm: FakeArmServer, lab: list[dict[str, Any]]) -> None:
    page = fake_arm.graph_answer([b.SUB])
    fake_arm.script(RG_PATH, Reply(200, {**page, "totalRecords": page["totalRecords"] + 1}))

    with pytest.raises(IncompleteReadError, match="announced"):
        make_reader(fake_arm).read()


# -- the event's own resource ---
def test_focus_get_overrides_resource_graphs_stale_copy(fake_arm: FakeArmServer, lab: list[dict[str, Any]]) -> None:
    gw2 = copy.deepcopy(next(r for r in lab if r["name"] == "ergw-02"))
    gw2["properties"]["allowRemoteVnetTraffic"] = True  # the write RG has not caught up with yet
    fake_arm.set_arm_copy(gw2)
    reader = make_reader(fake_arm)

    stale = by_id(reader.read(), gw2["id"])
    fresh = by_id(reader.read(focus_resource_id=gw2["id"].upper()), gw2["id"])

    assert stale["properties"]["allowRemoteVnetTraffic"] is False
    assert fresh["properties"]["allowRemoteVnetTraffic"] is True
    assert fake_arm.count(r"/virtualNetworkGateways/ergw-02$", method="GET") == 1
    assert reader.last_read_calls == ReadCalls(resource_graph=1, arm=1)


def test_focus_get_404_drops_the_resource(fake_arm: FakeArmServer, lab: list[dict[str, Any]]) -> None:
    conn = b.rid("connections", "conn-01")
    fake_arm.delete_from_arm(conn)

    resources = make_reader(fake_arm).read(focus_resource_id=conn)

    assert conn.lower() not in ids(resources)
    assert ids(resources) == ids(lab) - {conn.lower()}


def test_a_peering_event_rereads_the_parent_vnet(fake_arm: FakeArmServer, lab: list[dict[str, Any]]) -> None:
    hub1 = copy.deepcopy(next(r for r in lab if r["name"] == "hub-01"))
    peering_id = hub1["properties"]["virtualNetworkPeerings"][0]["id"]
    hub1["properties"]["virtualNetworkPeerings"] = []  # the peering was deleted
    fake_arm.set_arm_copy(hub1)

    resources = make_reader(fake_arm).read(focus_resource_id=peering_id)

    assert by_id(resources, hub1["id"])["properties"]["virtualNetworkPeerings"] == []
    [get] = fake_arm.arm_requests()
    assert get.path.lower() == hub1["id"].lower()


def test_a_deleted_hub_drops_its_connections_too(fake_arm: FakeArmServer) -> None:
    spoke = b.vnet("spoke-w", "10.60.0.0/16")
    hub = b.virtual_hub("vhub-1", "wan-1")
    hub_conn = b.hub_connection(hub, spoke)
    fake_arm.set_resources({b.SUB: [spoke, hub, hub_conn]})
    fake_arm.delete_from_arm(hub["id"])

    resources = make_reader(fake_arm).read(focus_resource_id=hub_conn["id"])

    assert ids(resources) == {spoke["id"].lower()}


@pytest.mark.parametrize(
    "reply",
    [
        arm_error(403, "AuthorizationFailed"),
        arm_error(500, "InternalServerError"),
        arm_error(429, "RateLimiting", headers={"Retry-After": "0"}),
        Reply(200, {}, delay=1.0),
    ],
    ids=["403", "500", "429", "timeout"],
)
def test_a_failed_focus_get_is_incomplete(fake_arm: FakeArmServer, lab: list[dict[str, Any]], reply: Reply) -> None:
    gw = b.rid("virtualNetworkGateways", "ergw-01")
    fake_arm.script(r"/virtualNetworkGateways/ergw-01$", reply, repeat=True)

    with pytest.raises(IncompleteReadError, match="ARM GET"):
        make_reader(fake_arm, read_timeout=0.2).read(focus_resource_id=gw)


def test_focus_on_a_type_the_reader_does_not_refresh_makes_no_arm_call(
    fake_arm: FakeArmServer, lab: list[dict[str, Any]]
) -> None:
    other = f"/subscriptions/{b.SUB}/resourceGroups/{b.RG}/providers/Microsoft.Network/routeTables/rt"

    make_reader(fake_arm).read(focus_resource_id=other)

    assert fake_arm.arm_requests() == []


def test_focus_outside_the_watched_subscriptions_is_not_read(
    fake_arm: FakeArmServer, lab: list[dict[str, Any]]
) -> None:
    stranger = b.gateway("ergw-x", b.vnet("hub-x", "10.90.0.0/16", sub=SUB2), sub=SUB2)
    fake_arm.set_resources({b.SUB: lab, SUB2: [stranger]})

    resources = make_reader(fake_arm).read(focus_resource_id=stranger["id"])

    assert stranger["id"].lower() not in ids(resources)
    assert fake_arm.arm_requests() == []


@pytest.mark.parametrize(
    ("name", "keys"),
    [
        ("ergw-01", ["allowRemoteVnetTraffic", "allowVirtualWanTraffic", "ipConfigurations", "gatewayType"]),
        ("conn-01", ["virtualNetworkGateway1", "peer", "connectionType"]),
        ("hub-01", ["virtualNetworkPeerings", "addressSpace"]),
        ("er-lab", ["peerings", "serviceProviderProvisioningState"]),
    ],
)
def test_focus_resource_comes_back_in_arm_json_shape(
    fake_arm: FakeArmServer, lab: list[dict[str, Any]], name: str, keys: list[str]
) -> None:
    original = next(r for r in lab if r["name"] == name)

    resources = make_reader(fake_arm).read(focus_resource_id=original["id"])

    got = by_id(resources, original["id"])
    assert got == {**original, "subscriptionId": b.SUB, "resourceGroup": b.RG}  # exactly ARM GET's JSON
    assert all(key in got["properties"] for key in keys)
    if name == "hub-01":
        peering = got["properties"]["virtualNetworkPeerings"][0]["properties"]
        assert {"allowGatewayTransit", "useRemoteGateways", "remoteVirtualNetwork"} <= set(peering)
    assert parse_resources(resources) == parse_resources(lab)  # the snapshot parser sees the same topology


# -- Virtual WAN hub connections (not in Resource Graph: one ARM list per hub) ---
def test_hub_connections_are_listed_from_arm_per_hub(fake_arm: FakeArmServer) -> None:
    spoke_a, spoke_b = b.vnet("spoke-a", "10.70.0.0/16"), b.vnet("spoke-b", "10.71.0.0/16")
    hub1, hub2 = b.virtual_hub("vhub-1", "wan-1"), b.virtual_hub("vhub-2", "wan-1")
    conns = [b.hub_connection(hub1, spoke_a), b.hub_connection(hub2, spoke_b)]
    fake_arm.set_resources({b.SUB: [spoke_a, spoke_b, hub1, hub2, *conns]})
    reader = make_reader(fake_arm)

    resources = reader.read()

    assert ids(resources) >= ids(conns)
    got = by_id(resources, conns[0]["id"])
    assert got["properties"]["remoteVirtualNetwork"] == {"id": spoke_a["id"]}
    assert reader.last_read_calls == ReadCalls(resource_graph=1, arm=2)
    assert fake_arm.count(r"/hubVirtualNetworkConnections$", method="GET") == 2


def test_a_failed_hub_connection_list_is_incomplete(fake_arm: FakeArmServer) -> None:
    hub = b.virtual_hub("vhub-1", "wan-1")
    fake_arm.set_resources({b.SUB: [hub]})
    fake_arm.script(r"/hubVirtualNetworkConnections$", arm_error(503, "ServiceUnavailable"))

    with pytest.raises(IncompleteReadError, match="vhub-1"):
        make_reader(fake_arm).read()


# -- export, calls per read, construction ---
def test_export_main_writes_the_value_document(fake_arm: FakeArmServer, lab: list[dict[str, Any]]) -> None:
    out, err = io.StringIO(), io.StringIO()

    status = export_main([b.SUB], out=out, err=err, reader=make_reader(fake_arm))

    assert (status, err.getvalue()) == (0, "")
    doc = json.loads(out.getvalue())
    assert list(doc) == ["value"]
    assert ids(doc["value"]) == ids(lab)
    assert out.getvalue().startswith('{\n  "value": [')
    assert parse_resources(doc["value"]) == parse_resources(lab)


def test_export_main_fails_with_one_line_and_status_2(fake_arm: FakeArmServer, lab: list[dict[str, Any]]) -> None:
    fake_arm.deny_subscription(b.SUB)
    out, err = io.StringIO(), io.StringIO()

    status = export_main([b.SUB], out=out, err=err, reader=make_reader(fake_arm))

    assert status == 2
    assert out.getvalue() == ""
    assert err.getvalue().count("\n") == 1 and err.getvalue().startswith("export failed: ")


def test_export_main_reports_an_authentication_failure(fake_arm: FakeArmServer) -> None:
    class NoLogin:
        def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            raise ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token")

    reader = ResourceGraphTopologyReader(NoLogin(), [b.SUB], **fake_arm.client_options())  # type: ignore[arg-type]
    out, err = io.StringIO(), io.StringIO()

    assert export_main([b.SUB], out=out, err=err, reader=reader) == 2
    assert "failed to retrieve a token" in err.getvalue() and out.getvalue() == ""
    assert fake_arm.requests == []


def test_calls_per_read_for_the_notes(fake_arm: FakeArmServer, lab: list[dict[str, Any]]) -> None:
    hub = b.virtual_hub("vhub-1", "wan-1")
    fake_arm.set_resources({b.SUB: [*lab, hub, b.hub_connection(hub, lab[1])]})
    reader = make_reader(fake_arm)
    measured = {}
    for label, focus in [("reconcile", None), ("event", b.rid("virtualNetworkGateways", "ergw-02"))]:
        fake_arm.clear_requests()
        reader.read(focus_resource_id=focus)
        http = (len(fake_arm.resource_graph_requests()), len(fake_arm.arm_requests()))
        assert http == (reader.last_read_calls.resource_graph, reader.last_read_calls.arm)
        measured[label] = http
    print(f"\ncalls per read (Resource Graph pages, ARM calls) with 1 virtual hub and <=1000 rows: {measured}")

    assert measured == {"reconcile": (1, 1), "event": (1, 2)}


def test_building_a_reader_makes_no_call(fake_arm: FakeArmServer) -> None:
    ResourceGraphTopologyReader(fake_arm.credential, [b.SUB], base_url=fake_arm.base_url)

    assert fake_arm.requests == [] and fake_arm.credential.scopes == []


@pytest.mark.parametrize("bad", [[], [""], "00000000-0000-0000-0000-000000000001"])
def test_bad_subscription_lists_are_refused(bad: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        ResourceGraphTopologyReader(object(), bad)  # type: ignore[arg-type]


def test_default_credential_is_built_on_demand() -> None:
    credential = default_credential("11111111-1111-1111-1111-111111111111")

    assert type(credential).__name__ == "DefaultAzureCredential"


def test_resource_graph_path_constant_matches_the_sdk(fake_arm: FakeArmServer, lab: list[dict[str, Any]]) -> None:
    make_reader(fake_arm).read()

    assert [r.path for r in fake_arm.requests] == [RESOURCE_GRAPH_PATH]
