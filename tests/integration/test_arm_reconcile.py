"""The reconcile within Resource Graph's limits, against the fake that enforces them: batches of at most 1,000
subscriptions, pages of at most 1,000 rows, pacing by the quota headers (no 429), a management-group scope and its
10,000-subscription limit, and a read cut short that commits nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from azure.core.rest import HttpRequest, HttpResponse

from shared.adapters.arm import (
    RESOURCE_GRAPH_API_VERSION,
    RESOURCE_GRAPH_PATH,
    TOPOLOGY_QUERY,
    QuotaPacer,
    ResourceGraphTopologyReader,
    arm_pipeline,
)
from shared.adapters.store import LocalAuditLog, LocalStateStore
from shared.app.auditor import COMMITTED, INCOMPLETE, Auditor, RunTrigger
from shared.app.ports import IncompleteReadError
from shared.app.settings import ConfigurationError, Settings
from tests import builders as b
from tests.auditor_support import RecordingNotifier
from tests.integration.fake_arm import FakeArmServer

SUB2 = "00000000-0000-0000-0000-000000000002"


def many_subscriptions(n: int) -> list[str]:
    return [f"00000000-0000-0000-0001-{i:012d}" for i in range(n)]


def post_query(fake: FakeArmServer, body: dict[str, Any]) -> HttpResponse:
    """One Resource Graph query as the reader sends it (the ARM pipeline, no retries), answered as is."""
    client = arm_pipeline(fake.credential, fake.base_url, connection_verify=fake.ca_pem, retry_total=0)
    return client.send_request(HttpRequest("POST", client.format_url(RESOURCE_GRAPH_PATH),
                                           params={"api-version": RESOURCE_GRAPH_API_VERSION},
                                           json={"query": TOPOLOGY_QUERY, **body}))


def test_more_than_1000_subscriptions_are_read_in_batches_of_at_most_1000(fake_arm: FakeArmServer) -> None:
    subs = [b.SUB, *many_subscriptions(2499)]
    fake_arm.set_resources({b.SUB: b.lab((1,)), **{s: [] for s in subs[1:]}})
    reader = ResourceGraphTopologyReader(fake_arm.credential, subs, **fake_arm.client_options())
    resources = reader.read()
    assert len(resources) == len(b.lab((1,)))
    batches = [r.body["subscriptions"] for r in fake_arm.resource_graph_requests() if "$skipToken" not in
               (r.body.get("options") or {})]
    assert [len(batch) for batch in batches] == [1000, 1000, 500]
    assert sorted(s for batch in batches for s in batch) == sorted(subs)


def test_the_fake_refuses_what_resource_graph_refuses(fake_arm: FakeArmServer) -> None:
    subs = many_subscriptions(1001)
    fake_arm.set_resources({s: [] for s in subs})
    too_many = post_query(fake_arm, {"subscriptions": subs})
    too_big = post_query(fake_arm, {"subscriptions": subs[:1], "options": {"$top": 1001}})
    assert too_many.status_code == 400 and too_big.status_code == 400
    assert too_many.json()["error"]["code"] == too_big.json()["error"]["code"] == "BadRequest"


def test_the_fake_refuses_a_request_without_api_version_as_arm_does(fake_arm: FakeArmServer) -> None:
    fake_arm.set_resources({b.SUB: b.lab(())})
    client = arm_pipeline(fake_arm.credential, fake_arm.base_url, connection_verify=fake_arm.ca_pem, retry_total=0)
    bare = client.send_request(HttpRequest("POST", client.format_url(RESOURCE_GRAPH_PATH),
                                           json={"query": TOPOLOGY_QUERY, "subscriptions": [b.SUB]}))
    assert bare.status_code == 400 and bare.json()["error"]["code"] == "MissingApiVersionParameter"
    assert post_query(fake_arm, {"subscriptions": [b.SUB]}).status_code == 200


def test_the_fake_answers_429_with_retry_after_once_the_quota_is_spent(fake_arm: FakeArmServer) -> None:
    fake_arm.set_resources({b.SUB: b.lab(())})
    fake_arm.query_quota, fake_arm.quota_window = 2, 30.0
    seen = [post_query(fake_arm, {"subscriptions": [b.SUB]}).headers["x-ms-user-quota-remaining"] for _ in range(2)]
    throttled = post_query(fake_arm, {"subscriptions": [b.SUB]})
    assert seen == ["1", "0"]
    assert throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) >= 1
    assert throttled.headers["x-ms-user-quota-resets-after"].startswith("00:00:")


def test_paging_is_paced_by_the_quota_headers_instead_of_running_into_429(fake_arm: FakeArmServer) -> None:
    fake_arm.set_resources({b.SUB: b.lab((1, 2))})
    fake_arm.query_quota, fake_arm.quota_window = 3, 1.0
    pacer = QuotaPacer()
    reader = ResourceGraphTopologyReader(fake_arm.credential, [b.SUB], page_size=1, pacer=pacer,
                                         **fake_arm.client_options())
    resources = reader.read()
    assert len(resources) == len(b.lab((1, 2)))
    assert len(fake_arm.resource_graph_requests()) == len(b.lab((1, 2))) + 1  # one row a page, plus the sub row
    assert fake_arm.throttled == 0 and pacer.waited_seconds > 0


def test_a_reconcile_cut_short_by_the_quota_commits_nothing(fake_arm: FakeArmServer, tmp_path: Path) -> None:
    fake_arm.set_resources({b.SUB: b.lab((1, 2))})
    reader = ResourceGraphTopologyReader(fake_arm.credential, [b.SUB], **fake_arm.client_options())
    auditor = Auditor(reader=reader, state=LocalStateStore(tmp_path), audit=LocalAuditLog(tmp_path),
                      notifiers=[RecordingNotifier()])
    assert auditor.run(RunTrigger(kind="reconcile")).outcome == COMMITTED
    before = LocalStateStore(tmp_path).load()[1]
    fake_arm.set_resources({b.SUB: b.lab(())})  # every pair would close
    fake_arm.query_quota, fake_arm.quota_window = 2, 60.0
    auditor.reader = ResourceGraphTopologyReader(fake_arm.credential, [b.SUB], page_size=1,
                                                 pacer=QuotaPacer(max_wait_seconds=0.5), **fake_arm.client_options())
    result = auditor.run(RunTrigger(kind="reconcile"))
    assert result.outcome == INCOMPLETE and result.closed == [] and "cut short" in (result.detail or "")
    assert LocalStateStore(tmp_path).load()[1] == before and fake_arm.throttled == 0


def test_a_management_group_scope_reads_its_subscriptions_and_warns_past_the_tenant_limit(
        fake_arm: FakeArmServer, tmp_path: Path) -> None:
    fake_arm.set_resources({b.SUB: b.lab((1, 2)), SUB2: []})
    fake_arm.set_management_group("mg-network", [SUB2, b.SUB])
    reader = ResourceGraphTopologyReader(fake_arm.credential, [], management_group="mg-network",
                                         **fake_arm.client_options())
    assert len(reader.read()) == len(b.lab((1, 2)))
    [request] = fake_arm.resource_graph_requests()
    assert request.body["managementGroups"] == ["mg-network"] and not request.body.get("subscriptions")
    assert reader.last_read_warnings == []

    fake_arm.tenant_subscription_limit = 1  # the group now exceeds what one query covers
    auditor = Auditor(reader=reader, state=LocalStateStore(tmp_path), audit=LocalAuditLog(tmp_path),
                      notifiers=[RecordingNotifier()])
    auditor.run(RunTrigger(kind="reconcile"))
    [record] = list(LocalAuditLog(tmp_path).records())
    assert any("x-ms-tenant-subscription-limit-hit" in w for w in record["warnings"])


@pytest.mark.parametrize("value", ["http://management.azure.com", "https://management.azure.com/x", "management"])
def test_a_bad_arm_endpoint_is_a_clear_configuration_error(value: str) -> None:
    with pytest.raises(ConfigurationError, match="ARM_ENDPOINT"):
        Settings.from_env({"WATCHED_SUBSCRIPTIONS": b.SUB, "ARM_ENDPOINT": value})


def test_the_arm_endpoint_setting_sets_the_token_scope(fake_arm: FakeArmServer) -> None:
    settings = Settings.from_env({"WATCHED_SUBSCRIPTIONS": b.SUB, "ARM_ENDPOINT": fake_arm.base_url + "/"})
    assert settings.arm_endpoint == fake_arm.base_url
    assert Settings.from_env({"WATCHED_SUBSCRIPTIONS": b.SUB}).arm_endpoint == "https://management.azure.com"
    fake_arm.set_resources({b.SUB: b.lab(())})
    options: dict[str, Any] = {k: v for k, v in fake_arm.client_options().items() if k != "base_url"}
    ResourceGraphTopologyReader(fake_arm.credential, [b.SUB], arm_endpoint=settings.arm_endpoint, **options).read()
    assert set(fake_arm.credential.scopes) == {(fake_arm.base_url + "/.default",)}


def test_an_incomplete_batch_fails_the_whole_read(fake_arm: FakeArmServer) -> None:
    subs = [b.SUB, *many_subscriptions(1200)]
    fake_arm.set_resources({b.SUB: b.lab(()), **{s: [] for s in subs[1:]}})
    fake_arm.deny_subscription(subs[-1])  # in the second batch
    with pytest.raises(IncompleteReadError, match=subs[-1]):
        ResourceGraphTopologyReader(fake_arm.credential, subs, **fake_arm.client_options()).read()
