"""shared.core.coverage: which pair changes a run may decide when subscriptions were not read (pure)."""

from __future__ import annotations

from typing import Any

from shared.core.coverage import Scope, baseline_held, cover, merge_unread
from shared.core.snapshot import parse_resources
from shared.core.transit import compute_pairs
from tests import builders as b

SUB2 = "00000000-0000-0000-0000-000000000002"
SUB3 = "00000000-0000-0000-0000-000000000003"
NOW = "2026-11-26T00:00:00+00:00"


def doc(a: str, c: str, *, gateways: tuple[str, ...] = (), circuits: tuple[str, ...] = (),
        cause: str = "ergw-01 allowRemoteVnetTraffic false -> true", **extra: Any) -> dict[str, Any]:
    return {"vnets": [a, c], "gateways": list(gateways), "circuits": list(circuits),
            "cause": [{"kind": "gateway", "text": cause}], **extra}


def test_a_connection_in_a_missed_subscription_holds_its_gateway_but_not_the_circuit() -> None:
    hub = b.vnet("hub-01", "10.1.0.0/16")
    gw = b.gateway("ergw-01", hub, allow_remote=True)
    er = b.circuit("er-lab")
    conn = b.connection("conn-01", gw, er["id"], sub=SUB2)  # the connection lives in another subscription
    scope = Scope.of({SUB2: "no Reader role"}, [hub, gw, er, conn])
    assert scope.why([hub["id"], gw["id"]]) is not None and "connection" in str(scope.why([gw["id"]]))
    other = b.rid("virtualNetworkGateways", "ergw-02")
    assert scope.why([b.rid("virtualNetworks", "hub-02"), other, er["id"]]) is None
    assert scope.why([b.rid("virtualNetworks", "x", sub=SUB2.upper())]) == (
        f"subscription {SUB2} was not read: no Reader role")


def test_merge_keeps_the_committed_copy_of_missed_subscriptions_only() -> None:
    live = [b.vnet("a", "10.1.0.0/16"), b.vnet("b", "10.2.0.0/16", sub=SUB2)]
    committed = [b.vnet("b-old", "10.9.0.0/16", sub=SUB2), b.vnet("a-old", "10.8.0.0/16")]
    merged = merge_unread(live, committed, {SUB2})
    assert sorted(r["name"] for r in merged) == ["a", "b-old"]
    assert merge_unread(live, committed, set()) == live


def test_changes_touching_a_held_subscription_keep_their_committed_status() -> None:
    a, c, d = (b.rid("virtualNetworks", n) for n in ("hub-01", "hub-03", "hub-04"))
    far = b.rid("virtualNetworks", "hub-21", sub=SUB2)
    opened = [doc(a, c), doc(c, far)]
    closed = [doc(a, far, cause="connection conn-02 removed")]
    pending = [doc(d, far, direction="opened", since=NOW)]
    deviations = [{"vnets": [d, far], "delta": "-"}]
    done = cover(opened, closed, pending, deviations, committed=[], hold=Scope.of({SUB2: "throttled"}, []),
                 baseline=Scope(), now=NOW)
    assert [p["vnets"] for p in done.opened] == [[a, c]] and done.closed == [] and done.pending == []
    signs = {tuple(p["vnets"]): p["delta"] for p in done.deviations}
    assert signs == {(c, far): "-", (a, far): "+", (d, far): "-"}  # uncommitted openings, committed closing
    kept = next(p for p in done.deviations if p["vnets"] == [a, far])
    assert kept["cause"][0]["text"] == "connection conn-02 removed" and "throttled" in kept["held"]
    assert sorted(h["direction"] for h in done.held) == ["closed", "opened", "opened"]


def test_a_held_change_announced_later_gets_the_cause_recorded_when_it_was_held() -> None:
    a, far = b.rid("virtualNetworks", "hub-01"), b.rid("virtualNetworks", "hub-21", sub=SUB2)
    held = {"vnets": [a, far], "delta": "+", "held": "subscription was not read", "heldSince": NOW,
            "cause": [{"kind": "connection", "text": "connection conn-02 removed"}]}
    unexplained = {**held, "cause": [{"kind": "unknown", "text": "the pair's resources are no longer in the topology"}]}
    del unexplained["delta"]
    done = cover([], [unexplained], [], [], committed=[held], hold=Scope(), baseline=Scope(), now=NOW)
    [closed] = done.closed
    assert closed["cause"][0]["text"] == "connection conn-02 removed"
    assert "held" not in closed and "heldSince" not in closed and done.deviations == []


def test_a_subscription_read_for_the_first_time_is_recorded_not_announced() -> None:
    a, c, d = (b.rid("virtualNetworks", n) for n in ("hub-01", "hub-03", "hub-04"))
    far = [b.rid("virtualNetworks", f"hub-2{i}", sub=SUB3) for i in range(3)]
    settling = doc(d, far[2], direction="opened", since=NOW)
    done = cover([doc(a, far[0])], [doc(c, far[1], cause="x")], [settling],
                 [{"vnets": [c, far[1]], "delta": "+"}, {"vnets": [d, far[2]], "delta": "-"}],
                 committed=[], hold=Scope(), baseline=Scope.of({SUB3: "first read"}, []), now=NOW)
    assert (done.opened, done.closed, done.pending, done.held) == ([], [], [], [])
    assert done.baselined == 3
    assert done.deviations == [{"vnets": [d, far[2]], "delta": "-"}]  # the settling opening still waits


def test_a_baseline_commits_no_pair_through_a_missed_subscription() -> None:
    resources = b.lab((1, 2, 3))
    er = next(r for r in resources if r["name"] == "er-lab")
    moved = b.circuit("er-lab", sub=SUB2)
    for r in resources:
        if r["type"] == "Microsoft.Network/connections":
            r["properties"]["peer"] = {"id": moved["id"]}
    resources.remove(er)  # the circuit is in the missed subscription: assumed usable, every pair over it held
    pairs = compute_pairs(parse_resources(resources))
    assert len(pairs.pairs) == 3
    deviations, held = baseline_held(pairs, [], Scope.of({SUB2: "no Reader role"}, resources), NOW)
    assert len(held) == 3 and {d["delta"] for d in deviations} == {"-"} and len(deviations) == 3
    assert baseline_held(pairs, [], Scope(), NOW) == ([], [])
