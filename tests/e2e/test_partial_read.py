"""One unreadable subscription does not blind the others (issue 16, item 3), through the function entry points:
the real SDK clients against the fake ARM over HTTPS (which denies a subscription as ARM and Resource Graph do),
Azurite for state, audit and queue, and a local HTTP server standing in for the chat webhook."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.functions.eventgrid import EventGridEventInConverter
from azure.functions.meta import Datum
from azure.functions.timer import TimerRequest
from pytest_httpserver import HTTPServer

import function_app
from shared import entrypoints
from shared.adapters.arm import ResourceGraphTopologyReader
from shared.adapters.notify import WebhookNotifier
from shared.adapters.store import AppendBlobAuditLog, BlobStateStore, StorageQueueRecheck, verify_audit
from shared.app.auditor import Auditor, committed_pair_ids
from tests import builders as b
from tests.builders import SUB, lab
from tests.integration.fake_arm import FakeArmServer, Reply, arm_error, fake_arm  # noqa: F401

SUB2 = "00000000-0000-0000-0000-000000000002"
RG2 = "rg-other"
STORY = Path(__file__).resolve().parents[2] / "examples" / "replay-lab"
ER_LAB = b.rid("expressRouteCircuits", "er-lab")


def other_subscription(*, allow: bool = True, circuit_id: str = ER_LAB) -> list[dict[str, Any]]:
    """hub-21 in the second subscription, its gateway on the lab's circuit (a cross-subscription connection)."""
    hub = b.vnet("hub-21", "10.21.0.0/16", sub=SUB2, rg=RG2)
    gw = b.gateway("ergw-21", hub, allow_remote=allow, sub=SUB2, rg=RG2)
    return [hub, gw, b.connection("conn-21", gw, circuit_id, sub=SUB2, rg=RG2)]


@pytest.fixture
def webhook(httpserver: HTTPServer) -> HTTPServer:
    httpserver.expect_request("/alerts", method="POST").respond_with_data("", status=202)
    return httpserver


@pytest.fixture
def live(fake_arm: FakeArmServer, azurite: Any, webhook: HTTPServer) -> Iterator[dict[str, Any]]:  # noqa: F811
    suffix = uuid.uuid4().hex[:8]
    conn = azurite.connection_string
    audit = AppendBlobAuditLog(connection_string=conn, container=f"audit-{suffix}")
    auditor = Auditor(
        reader=ResourceGraphTopologyReader(fake_arm.credential, [SUB, SUB2], **fake_arm.client_options()),
        state=BlobStateStore(connection_string=conn, container=f"state-{suffix}"),
        audit=audit,
        recheck=StorageQueueRecheck(connection_string=conn, queue=f"recheck-{suffix}"),
        notifiers=[WebhookNotifier("json", webhook.url_for("/alerts"), name="json:JSON_WEBHOOK_URL",
                                   max_attempts=2, sleep=lambda s: None)],
    )
    entrypoints.use(auditor)
    yield {"arm": fake_arm, "audit": audit, "auditor": auditor}
    entrypoints.reset()


def reconcile() -> None:
    function_app.reconcile(TimerRequest(past_due=False))


def event(step: str) -> None:
    for item in json.loads((STORY / step / "event.json").read_text()):
        function_app.on_resource_event(EventGridEventInConverter.decode(Datum(json.dumps(item), "json"),
                                                                        trigger_metadata=None))


def posted(server: HTTPServer) -> list[dict[str, Any]]:
    return [json.loads(req.get_data()) for req, _ in server.log if req.path == "/alerts"]


def names(pairs: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    return sorted(tuple(sorted(v.rsplit("/", 1)[-1] for v in p["vnets"])) for p in pairs)


def committed(auditor: Auditor) -> list[tuple[str, ...]]:
    state, _ = auditor.state.load()
    assert state is not None
    return sorted(tuple(sorted(v.rsplit("/", 1)[-1] for v in pair)) for pair in committed_pair_ids(state))


def test_a_subscription_losing_reader_keeps_its_pairs_while_a_change_elsewhere_is_announced(
        live: dict[str, Any], webhook: HTTPServer) -> None:
    arm: FakeArmServer = live["arm"]
    arm.set_resources({SUB: lab((1, 2)), SUB2: other_subscription()})
    reconcile()  # baseline: hub-01, hub-02 and hub-21 reach each other
    assert committed(live["auditor"]) == [("hub-01", "hub-02"), ("hub-01", "hub-21"), ("hub-02", "hub-21")]

    # The identity loses Reader on SUB2, where hub-21 is meanwhile deleted (unseen); in SUB, ergw-03 is enabled.
    arm.deny_subscription(SUB2)
    arm.set_resources({SUB: lab((1, 2, 3)), SUB2: []})
    reconcile()
    transit = [a for a in posted(webhook) if a.get("kind") != "health"]
    [alert] = transit
    assert names(alert["opened"]) == [("hub-01", "hub-03"), ("hub-02", "hub-03")] and alert["closed"] == []
    assert [c["text"] for c in alert["opened"][0]["cause"]] == ["ergw-03 allowRemoteVnetTraffic false -> true"]
    [alarm] = [a for a in posted(webhook) if a.get("kind") == "health"]
    assert alarm["condition"] == f"subscription-unreadable:{SUB2}" and alarm["status"] == "raised"
    assert "no Reader role" in alarm["detail"] and "403 AuthorizationFailed" in alarm["detail"]
    # Nothing in SUB2 closed; hub-03 <-> hub-21 (through SUB2's gateway) neither opened nor announced.
    assert committed(live["auditor"]) == [("hub-01", "hub-02"), ("hub-01", "hub-03"), ("hub-01", "hub-21"),
                                          ("hub-02", "hub-03"), ("hub-02", "hub-21")]
    record = [r for r in live["audit"].records() if r["outcome"] == "committed"][-1]
    assert list(record["unread"]) == [SUB2] and "no Reader role" in record["unread"][SUB2]
    assert [(names([h])[0], h["direction"]) for h in record["held"]] == [(("hub-03", "hub-21"), "opened")]
    assert any(f"subscription {SUB2} was not read" in w for w in record["warnings"])

    # An event in SUB closes conn-02: the pairs of hub-02 close, except the one that reaches into SUB2.
    arm.set_resources({SUB: [r for r in lab((1, 2, 3)) if r["name"] != "conn-02"], SUB2: []})
    event("07-delete-conn-02")
    [_, closing] = [a for a in posted(webhook) if a.get("kind") != "health"]
    assert closing["opened"] == [] and names(closing["closed"]) == [("hub-01", "hub-02"), ("hub-02", "hub-03")]
    assert ("hub-02", "hub-21") in committed(live["auditor"])

    # Reader is back: what happened in SUB2 meanwhile is announced now, once, and the alarm clears.
    arm.allow_subscription(SUB2)
    reconcile()
    alerts = posted(webhook)
    [cleared] = [a for a in alerts if a.get("kind") == "health" and a["status"] == "cleared"]
    assert cleared["condition"] == f"subscription-unreadable:{SUB2}"
    late = [a for a in alerts if a.get("kind") != "health"][2]
    assert late["opened"] == [] and names(late["closed"]) == [("hub-01", "hub-21"), ("hub-02", "hub-21")]
    causes = {names([p])[0]: [c["text"] for c in p["cause"]] for p in late["closed"]}
    assert causes[("hub-02", "hub-21")] == ["connection conn-02 removed"]  # what closed it, recorded when held
    assert committed(live["auditor"]) == [("hub-01", "hub-03")]
    state, _ = live["auditor"].state.load()
    assert state is not None and state.unread == {}
    assert verify_audit(live["audit"].lines()).ok


def test_a_held_opening_is_announced_with_its_cause_once_the_subscription_is_read_again(
        live: dict[str, Any], webhook: HTTPServer) -> None:
    arm: FakeArmServer = live["arm"]
    arm.set_resources({SUB: lab((1, 2)), SUB2: other_subscription(allow=False)})
    reconcile()
    assert committed(live["auditor"]) == [("hub-01", "hub-02")]
    arm.deny_subscription(SUB2)
    reconcile()  # SUB2 unreadable, nothing changed
    # While it is unreadable, ergw-21 is enabled (unseen) and ergw-03 too (seen): hub-03 pairs with hub-01/02.
    arm.set_resources({SUB: lab((1, 2, 3)), SUB2: other_subscription(allow=True)})
    reconcile()
    [first] = [a for a in posted(webhook) if a.get("kind") != "health"]
    assert names(first["opened"]) == [("hub-01", "hub-03"), ("hub-02", "hub-03")]
    arm.allow_subscription(SUB2)
    reconcile()
    [_, second] = [a for a in posted(webhook) if a.get("kind") != "health"]
    assert names(second["opened"]) == [("hub-01", "hub-21"), ("hub-02", "hub-21"), ("hub-03", "hub-21")]
    assert {c["text"] for p in second["opened"] for c in p["cause"]} == {
        "ergw-21 allowRemoteVnetTraffic false -> true"}


def test_an_opening_held_for_an_unreadable_subscription_is_announced_with_its_cause_when_it_is_readable(
        live: dict[str, Any], webhook: HTTPServer) -> None:
    arm: FakeArmServer = live["arm"]
    arm.set_resources({SUB: lab((1, 2)), SUB2: other_subscription()})
    reconcile()
    arm.deny_subscription(SUB2)
    arm.set_resources({SUB: lab((1, 2, 3)), SUB2: other_subscription()})
    reconcile()  # ergw-03 enabled: hub-03 <-> hub-21 would open through SUB2's gateway: held
    reconcile()  # still unreadable: still held, nothing posted again
    [first] = [a for a in posted(webhook) if a.get("kind") != "health"]
    assert names(first["opened"]) == [("hub-01", "hub-03"), ("hub-02", "hub-03")]
    assert ("hub-03", "hub-21") not in committed(live["auditor"])
    arm.allow_subscription(SUB2)
    reconcile()  # SUB2 unchanged: the topology's digest is the committed one, yet the held opening is due now
    [_, second] = [a for a in posted(webhook) if a.get("kind") != "health"]
    assert names(second["opened"]) == [("hub-03", "hub-21")] and second["closed"] == []
    assert [c["text"] for c in second["opened"][0]["cause"]] == ["ergw-03 allowRemoteVnetTraffic false -> true"]
    assert "held" not in second["opened"][0] and ("hub-03", "hub-21") in committed(live["auditor"])


def test_a_baseline_without_a_subscription_never_announces_it_later_as_a_change(
        live: dict[str, Any], webhook: HTTPServer) -> None:
    """The circuit lives in SUB2, unreadable at the first run: SUB's pairs through it are assumed open (a circuit
    not in the snapshot is assumed usable) but not committed, so reading SUB2 later (the circuit turns out to be
    deprovisioned) closes nothing, and SUB2's own pairs are recorded as the baseline, not announced."""
    arm: FakeArmServer = live["arm"]
    circuit = b.circuit("er-shared", provider_state="NotProvisioned", sub=SUB2, rg=RG2)
    in_sub = [r for r in lab((1, 2)) if r["name"] != "er-lab"]
    for r in in_sub:
        if r["type"] == "Microsoft.Network/connections":
            r["properties"]["peer"] = {"id": circuit["id"]}
    arm.set_resources({SUB: in_sub, SUB2: [circuit, *other_subscription(circuit_id=circuit["id"])]})
    arm.deny_subscription(SUB2)
    reconcile()
    [baseline] = [r for r in live["audit"].records() if r["outcome"] == "committed"]
    assert baseline["baseline"] is True and list(baseline["unread"]) == [SUB2]
    assert names(baseline["held"]) == [("hub-01", "hub-02")]
    assert committed(live["auditor"]) == []

    arm.allow_subscription(SUB2)
    reconcile()
    assert [a for a in posted(webhook) if a.get("kind") != "health"] == []  # no closure, no opening
    assert committed(live["auditor"]) == []

    # SUB2 is baselined now: its next real change is announced (the circuit gets provisioned).
    provisioned = b.circuit("er-shared", sub=SUB2, rg=RG2)
    arm.set_resources({SUB: in_sub, SUB2: [provisioned, *other_subscription(circuit_id=circuit["id"])]})
    reconcile()
    [alert] = [a for a in posted(webhook) if a.get("kind") != "health"]
    assert names(alert["opened"]) == [("hub-01", "hub-02"), ("hub-01", "hub-21"), ("hub-02", "hub-21")]


def test_a_baseline_without_a_subscription_records_its_pairs_silently_when_it_is_first_read(
        live: dict[str, Any], webhook: HTTPServer) -> None:
    arm: FakeArmServer = live["arm"]
    arm.set_resources({SUB: lab((1, 2)), SUB2: other_subscription()})
    arm.deny_subscription(SUB2)
    reconcile()
    assert committed(live["auditor"]) == [("hub-01", "hub-02")]
    arm.allow_subscription(SUB2)
    reconcile()
    assert [a for a in posted(webhook) if a.get("kind") != "health"] == []
    assert committed(live["auditor"]) == [("hub-01", "hub-02"), ("hub-01", "hub-21"), ("hub-02", "hub-21")]
    record = [r for r in live["audit"].records() if r["outcome"] in ("committed", "no change")][-1]
    assert any("read for the first time since the baseline" in w for w in record["warnings"])


def test_a_subscription_that_does_not_exist_is_named_as_not_found(live: dict[str, Any], webhook: HTTPServer) -> None:
    arm: FakeArmServer = live["arm"]
    arm.set_resources({SUB: lab((1, 2))})  # the fake holds no SUB2 at all
    reconcile()
    [alarm] = [a for a in posted(webhook) if a.get("kind") == "health"]
    assert alarm["condition"] == f"subscription-unreadable:{SUB2}"
    assert "not found" in alarm["detail"] and "404 SubscriptionNotFound" in alarm["detail"]
    assert committed(live["auditor"]) == [("hub-01", "hub-02")]


def test_every_subscription_unreadable_is_an_incomplete_read_that_commits_nothing(
        live: dict[str, Any], webhook: HTTPServer) -> None:
    arm: FakeArmServer = live["arm"]
    arm.set_resources({SUB: lab((1, 2)), SUB2: other_subscription()})
    reconcile()
    before, _ = live["auditor"].state.load()
    arm.deny_subscription(SUB)
    arm.deny_subscription(SUB2)
    reconcile()
    after, _ = live["auditor"].state.load()
    assert (after.pairs, after.resources) == (before.pairs, before.resources)
    outcomes = [r["outcome"] for r in live["audit"].records()]
    assert outcomes[outcomes.index("committed") + 1:].count("incomplete read") == 1
    assert "committed" not in outcomes[outcomes.index("committed") + 1:]
    alarms = sorted(a["condition"] for a in posted(webhook) if a.get("kind") == "health")
    assert alarms == [f"subscription-unreadable:{SUB}", f"subscription-unreadable:{SUB2}"]


def test_a_throttled_batch_holds_only_its_subscriptions_and_counts_as_an_incomplete_read(
        live: dict[str, Any], webhook: HTTPServer) -> None:
    arm: FakeArmServer = live["arm"]
    auditor: Auditor = live["auditor"]
    auditor.reader = ResourceGraphTopologyReader(arm.credential, [SUB, SUB2], batch_size=1,
                                                 **arm.client_options())
    arm.set_resources({SUB: lab((1, 2)), SUB2: other_subscription()})
    reconcile()
    arm.set_resources({SUB: lab((1, 2, 3)), SUB2: other_subscription()})
    arm.script(r"/providers/Microsoft\.ResourceGraph/resources$", Reply(200, arm.graph_answer([SUB])),
               arm_error(429, "RateLimiting", headers={"Retry-After": "0"}))  # SUB2's batch: throttled
    later = datetime.now(UTC) + timedelta(hours=2)  # past the health limit since the last complete read
    auditor.clock = lambda: later
    reconcile()
    [alert] = [a for a in posted(webhook) if a.get("kind") != "health"]
    assert names(alert["opened"]) == [("hub-01", "hub-03"), ("hub-02", "hub-03")]
    record = [r for r in live["audit"].records() if r["outcome"] == "committed"][-1]
    assert "429 RateLimiting" in record["unread"][SUB2]
    assert [names([h])[0] for h in record["held"]] == [("hub-03", "hub-21")]
    # Throttling is no access problem (no subscription alarm), but a read that missed a subscription is not
    # complete: after the limit, reads-incomplete (and no-reconcile: no complete reconcile either).
    raised = sorted(a["condition"] for a in posted(webhook) if a.get("kind") == "health")
    assert raised == ["no-reconcile", "reads-incomplete"]
    state, _ = auditor.state.load()
    assert state is not None and state.unread[SUB2]["access"] is False
    reconcile()  # the quota is back: the held opening is announced
    [_, late] = [a for a in posted(webhook) if a.get("kind") != "health"]
    assert names(late["opened"]) == [("hub-03", "hub-21")]
