"""Never blind, never silent, never lose an alert: chat outages of hours, 429 storms, refused large posts, revoked
webhooks, incomplete reads and a stopped timer, through the function entry points with local HTTP stand-ins for
Slack and Teams (tests/chat_standins.py) and simulated time (nothing sleeps)."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.functions.eventgrid import EventGridEventInConverter
from azure.functions.meta import Datum

from shared import entrypoints
from shared.adapters.notify import WebhookNotifier
from shared.adapters.notify.deliver import Pacer
from shared.adapters.store import LocalAuditLog, LocalStateStore, verify_audit
from shared.app.auditor import Auditor, RunTrigger
from shared.core.health import LOG_MARKER_RAISED, LOG_MARKER_RECONCILED
from tests.auditor_support import FakeReader
from tests.builders import lab
from tests.chat_standins import ChatService

EVENT = Path(__file__).resolve().parents[2] / "examples" / "replay-lab" / "03-enable-gw1" / "event.json"


class SimTime:
    """One simulated clock for the auditor (datetime) and the notifiers (seconds); sleeping advances it."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
        self.slept: list[float] = []

    def clock(self) -> datetime:
        return self.now

    def seconds(self) -> float:
        return self.now.timestamp()

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def local_stores(folder: Path) -> Callable[[], tuple[Any, Any]]:
    return lambda: (LocalStateStore(folder), LocalAuditLog(folder))


class Rig:
    def __init__(self, folder: Path, services: dict[str, ChatService], time: SimTime,
                 stores: Callable[[], tuple[Any, Any]] | None = None, **options: Any) -> None:
        self.folder, self.services, self.time = folder, services, time
        self.stores = stores or local_stores(folder)  # fresh (state store, audit log) instances of one store
        self.reader = FakeReader(lab((2,)))
        pacer = Pacer()
        self.notifiers = [WebhookNotifier(kind, s.url, name=f"{kind}:{kind.upper()}_WEBHOOK_URL", timeout=5.0,
                                          max_total_wait=15.0, sleep=time.sleep, clock=time.seconds, pacer=pacer)
                          for kind, s in services.items()]
        state, audit = self.stores()
        self.auditor = Auditor(reader=self.reader, state=state, audit=audit,
                               notifiers=self.notifiers, clock=time.clock, sleep=time.sleep, **options)
        self.events = 0
        entrypoints.use(self.auditor)

    def reconcile(self) -> None:
        entrypoints.handle_reconcile()

    def event(self, resources: list[dict[str, Any]] | None = None) -> None:
        """Event Grid delivers a gateway write (decoded as the host does); the reader then sees `resources`."""
        if resources is not None:
            self.reader.resources = resources
        self.events += 1
        raw = copy.deepcopy(json.loads(EVENT.read_text())[0])
        raw["id"] = f"evt-{self.events}"
        entrypoints.handle_event(EventGridEventInConverter.decode(Datum(json.dumps(raw), "json"),
                                                                  trigger_metadata=None))

    def records(self) -> list[dict[str, Any]]:
        return list(self.stores()[1].records())

    def health(self, status: str = "raised") -> list[str]:
        return [r["condition"] for r in self.records() if r["outcome"] == f"health {status}"]

    def outbox(self) -> list[dict[str, Any]]:
        state, _ = self.stores()[0].load()
        assert state is not None
        return state.outbox


@pytest.fixture
def time() -> SimTime:
    return SimTime()


@pytest.fixture
def services(time: SimTime) -> Iterator[dict[str, ChatService]]:
    started = {"slack": ChatService("slack", time.seconds), "teams": ChatService("teams", time.seconds)}
    yield started
    for s in started.values():
        s.close()
    entrypoints.reset()


def _is_health(post: Any) -> bool:
    return "ER-transit auditor: " in json.dumps(post, ensure_ascii=False)  # the health alerts' title


def transit(posts: list[Any]) -> list[Any]:
    """The transit alerts among accepted posts (Slack blocks or Teams cards), health alerts left out."""
    return [p for p in posts if not _is_health(p)]


def health_posts(posts: list[Any]) -> list[str]:
    return [json.dumps(p, ensure_ascii=False) for p in posts if _is_health(p)]


def test_chat_outage_of_hours_raises_the_alarm_and_loses_nothing(
        tmp_path: Path, services: dict[str, ChatService], time: SimTime, caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig(tmp_path, services, time)
    rig.reconcile()  # baseline
    services["slack"].mode = "down"
    rig.event(lab((1, 2)))  # hub-01 <-> hub-02 opens while Slack is down
    assert len(transit(services["teams"].accepted)) == 1 and services["slack"].accepted == []
    caplog.set_level(logging.INFO)
    for _ in range(4 * 3):  # three hours of reconciles every 15 minutes, Slack still down
        time.advance(minutes=15)
        rig.reconcile()
    assert rig.health() == ["delivery-failed:slack:SLACK_WEBHOOK_URL"]  # once, not once per run
    [alarm] = health_posts(services["teams"].accepted)  # the other channel hears of it
    assert "Alerts to slack:SLACK_WEBHOOK_URL are not being delivered" in alarm
    assert f"{LOG_MARKER_RAISED}: delivery-failed:slack:SLACK_WEBHOOK_URL" in caplog.text  # Azure Monitor too
    assert [i["kind"] for i in rig.outbox()] == ["alert"]  # the alert itself is still queued, not dead
    assert LOG_MARKER_RECONCILED in caplog.text
    # Slack comes back: the queued alert is delivered once, and the all-clear goes to both channels.
    services["slack"].mode = "ok"
    time.advance(minutes=15)
    rig.reconcile()
    time.advance(minutes=15)
    rig.reconcile()
    assert len(transit(services["slack"].accepted)) == 1
    assert rig.health("cleared") == ["delivery-failed:slack:SLACK_WEBHOOK_URL"]
    assert any("Resolved: Alerts to slack" in p for p in health_posts(services["slack"].accepted))
    assert len(health_posts(services["teams"].accepted)) == 2
    assert rig.outbox() == [] and verify_audit(LocalAuditLog(tmp_path).lines()).ok


def test_a_429_storm_is_honoured_across_alerts_and_runs(
        tmp_path: Path, services: dict[str, ChatService], time: SimTime) -> None:
    rig = Rig(tmp_path, services, time)
    rig.reconcile()
    slack = services["slack"]
    slack.mode, slack.retry_after = "throttle", 120  # longer than one delivery may wait (15 s)
    rig.event(lab((1, 2)))
    rig.event(lab((1, 2, 3)))  # a second alert to the same throttled webhook, right after
    for _ in range(6):
        time.advance(seconds=40)
        rig.reconcile()
    slack.mode = "ok"
    for _ in range(4):
        time.advance(seconds=60)
        rig.reconcile()
    # Every post came at or after the not-before time the previous 429 set: none early.
    early = [b for a, b in zip(slack.posts, slack.posts[1:], strict=False)
             if a.status == 429 and b.at < a.at + slack.retry_after]
    assert early == []
    assert len(transit(slack.accepted)) == 2 and rig.outbox() == []
    assert sum(p.status == 429 for p in slack.posts) <= 3


def test_retry_after_is_kept_with_the_outbox_for_the_next_process(
        tmp_path: Path, services: dict[str, ChatService], time: SimTime) -> None:
    rig = Rig(tmp_path, services, time)
    rig.reconcile()
    services["slack"].mode, services["slack"].retry_after = "throttle", 600
    rig.event(lab((1, 2)))
    state, _ = LocalStateStore(tmp_path).load()
    assert state is not None
    hold = state.webhooks["slack:SLACK_WEBHOOK_URL"]["notBefore"]
    assert hold == pytest.approx(time.seconds() + 600, abs=20)
    services["slack"].mode = "ok"
    posts = len(services["slack"].posts)
    fresh = Rig(tmp_path, services, time)  # a new process: nothing in memory
    fresh.reader.resources = lab((1, 2))
    time.advance(minutes=5)
    fresh.reconcile()
    assert len(services["slack"].posts) == posts  # still before the not-before time: not posted
    time.advance(minutes=6)
    fresh.reconcile()
    assert len(transit(services["slack"].accepted)) == 1


def test_a_post_refused_for_its_size_is_followed_by_the_minimal_alert(
        tmp_path: Path, services: dict[str, ChatService], time: SimTime) -> None:
    rig = Rig(tmp_path, services, time)
    rig.reconcile()
    services["slack"].max_total_text = 600  # Slack's undocumented limit turns out lower than ours
    rig.event(lab((1, 2)))
    assert [p.status for p in services["slack"].posts] == [400, 200]
    [minimal] = services["slack"].accepted
    text = json.dumps(minimal, ensure_ascii=False)
    assert "ER transit opened: hub-01 ⇄ hub-02" in text and "1 opened, 0 closed" in text
    assert "every pair is in the audit log, run" in text
    assert rig.health() == [] and rig.outbox() == []


def test_a_refused_minimal_alert_raises_the_alarm_on_the_other_channel(
        tmp_path: Path, services: dict[str, ChatService], time: SimTime) -> None:
    rig = Rig(tmp_path, services, time)
    rig.reconcile()
    services["slack"].refuse_all_shapes = True
    rig.event(lab((1, 2)))
    assert [p.status for p in services["slack"].posts] == [400, 400]  # the full alert, then the minimal one
    assert rig.health() == ["delivery-failed:slack:SLACK_WEBHOOK_URL"]
    [dead] = [r for r in rig.records() if r["outcome"] == "dead letter"]
    assert dead["item"]["notifier"] == "slack:SLACK_WEBHOOK_URL" and "invalid_blocks" in dead["item"]["error"]
    assert any("not being delivered" in p for p in health_posts(services["teams"].accepted))
    assert rig.outbox() == []


@pytest.mark.parametrize("kind", ["slack", "teams"])
def test_a_revoked_webhook_is_dead_lettered_and_raises_the_alarm(
        tmp_path: Path, services: dict[str, ChatService], time: SimTime, kind: str) -> None:
    rig = Rig(tmp_path, services, time)
    rig.reconcile()
    services[kind].mode = "revoked"
    rig.event(lab((1, 2)))
    other = "teams" if kind == "slack" else "slack"
    assert len(services[kind].posts) == 1  # 404 is never retried
    name = f"{kind}:{kind.upper()}_WEBHOOK_URL"
    assert rig.health() == [f"delivery-failed:{name}"]
    [alarm] = health_posts(services[other].accepted)
    assert "404" in alarm and "SECRET" not in alarm  # says why, never the URL
    assert rig.outbox() == []
    # The webhook is replaced (a new flow): the next post goes through and the alarm clears.
    services[kind].mode = "ok"
    time.advance(minutes=15)
    rig.event(lab((1, 2, 3)))
    assert rig.health("cleared") == [f"delivery-failed:{name}"]


def test_reads_incomplete_for_an_hour_raise_the_alarm_once_and_clear_once(
        tmp_path: Path, services: dict[str, ChatService], time: SimTime) -> None:
    rig = Rig(tmp_path, services, time)
    rig.reconcile()
    rig.reader.failure = "Resource Graph query failed: HTTP 429 throttled"
    for _ in range(3):  # 45 minutes: not yet
        time.advance(minutes=15)
        rig.reconcile()
    assert rig.health() == []
    for _ in range(3):
        time.advance(minutes=15)
        rig.reconcile()
    assert "reads-incomplete" in rig.health() and rig.health().count("reads-incomplete") == 1
    posted = health_posts(services["slack"].accepted)
    assert any("Topology reads have been incomplete for too long" in p and "throttled" in p for p in posted)
    rig.reader.failure = None
    time.advance(minutes=15)
    rig.reconcile()
    assert "reads-incomplete" in rig.health("cleared")
    assert transit(services["slack"].accepted) == []  # nothing invented


def test_a_subscription_without_reader_is_named_at_once(
        tmp_path: Path, services: dict[str, ChatService], time: SimTime) -> None:
    from shared.app.ports import IncompleteReadError

    rig = Rig(tmp_path, services, time)
    rig.reconcile()

    class Denied(FakeReader):
        def read(self, *, focus_resource_id: str | None = None) -> list[dict[str, Any]]:
            raise IncompleteReadError("Resource Graph returned nothing for subscription(s) sub-b",
                                      unreadable={"sub-b": "no Reader role for the auditor's identity, or not found"})

    rig.auditor.reader = Denied([])
    rig.reconcile()
    assert rig.health() == ["subscription-unreadable:sub-b"]
    [alarm] = health_posts(services["teams"].accepted)
    assert "sub-b" in alarm and "no Reader" in alarm


def test_a_stopped_timer_is_noticed_by_event_runs(
        tmp_path: Path, services: dict[str, ChatService], time: SimTime) -> None:
    rig = Rig(tmp_path, services, time)
    rig.reconcile()
    for _ in range(4):  # only events for 80 minutes: within the limit plus the refresh slack, nothing yet
        time.advance(minutes=20)
        rig.event()
    assert rig.health() == ["no-reconcile"]
    time.advance(minutes=1)
    rig.reconcile()
    assert rig.health("cleared") == ["no-reconcile"]


def test_a_run_that_died_holding_a_claim_is_taken_over_within_about_a_minute(
        tmp_path: Path, services: dict[str, ChatService], time: SimTime) -> None:
    rig = Rig(tmp_path, services, time)
    rig.reconcile()

    class Crash(Exception):
        pass

    def die(*_: object, **__: object) -> Any:
        raise Crash()

    original = rig.auditor._process_outbox
    rig.auditor._process_outbox = die  # type: ignore[method-assign]  # the process dies right after the commit
    rig.reader.resources = lab((1, 2))
    with pytest.raises(Crash):
        rig.auditor.run(RunTrigger(kind="reconcile"))
    rig.auditor._process_outbox = original  # type: ignore[method-assign]
    time.advance(seconds=30)
    rig.reconcile()
    assert services["slack"].accepted == []  # the claim still holds: never posted twice
    time.advance(seconds=35)
    rig.reconcile()
    assert len(transit(services["slack"].accepted)) == 1 and len(transit(services["teams"].accepted)) == 1


def test_slow_failing_deliveries_never_outlast_the_claim_so_no_other_run_can_post_them_again(
        tmp_path: Path, services: dict[str, ChatService], time: SimTime) -> None:
    rig = Rig(tmp_path, services, time)
    rig.reconcile()
    lapsed: list[str] = []
    posts = {"slack": 0, "teams": 0}

    def slow(kind: str) -> Any:
        def on_post(body: bytes) -> tuple[int, str, dict[str, str]] | None:
            posts[kind] += 1
            time.advance(seconds=5)  # every answer takes the whole 5 s timeout
            state, _ = LocalStateStore(tmp_path).load()
            assert state is not None
            [item] = [i for i in state.outbox if i["kind"] == "alert" and i["notifier"].startswith(kind)]
            if not item.get("claimedBy") or item["claimedUntil"] < time.seconds():
                lapsed.append(f"{kind} post {posts[kind]} at {time.seconds() - start:.0f} s")  # another run may post
            if kind == "teams" and posts[kind] == 4:
                return None  # the full card: 413, too large; then the minimal alert's retries
            return 503, "Service Unavailable", {"Retry-After": "5"}
        return on_post

    services["slack"].on_post, services["teams"].on_post = slow("slack"), slow("teams")
    services["teams"].max_bytes = 2000  # the full card is refused for its size, the minimal one would fit
    start = time.seconds()
    rig.event(lab((1, 2)))
    assert lapsed == []  # every post happened while this run still held the alert's claim
    budget = rig.notifiers[0].max_call_seconds  # type: ignore[attr-defined]
    assert budget == 4 * 5 + 15
    for kind in ("slack", "teams"):
        ends = [p.at for p in services[kind].posts]
        assert ends[-1] - (ends[0] - 5) <= budget  # one delivery call, fallback included, stays within its budget
    assert sorted(i["notifier"] for i in rig.outbox()) == ["slack:SLACK_WEBHOOK_URL", "teams:TEAMS_WEBHOOK_URL"]
    services["slack"].on_post = services["teams"].on_post = None
    time.advance(minutes=15)
    rig.reconcile()  # both services answer again: each alert is posted once
    assert len(transit(services["slack"].accepted)) == 1 and len(transit(services["teams"].accepted)) == 1


def test_the_default_claim_lease_follows_the_webhook_timings() -> None:
    from shared.app.settings import Settings

    base = {"TOPOLOGY_SNAPSHOT": "x.json"}
    assert entrypoints.health_options(Settings.from_env(base))["lease_seconds"] == 60
    slow = Settings.from_env({**base, "WEBHOOK_TIMEOUT_SECONDS": "30", "WEBHOOK_MAX_WAIT_SECONDS": "60"})
    assert entrypoints.health_options(slow)["lease_seconds"] == 185
    assert entrypoints.health_options(slow)["health_limit"] == timedelta(minutes=60)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong types"])
def test_an_unreadable_state_is_refused_loudly_and_rebuilt_announcing_nothing(
        tmp_path: Path, services: dict[str, ChatService], time: SimTime, damage: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    from shared.adapters.store import audit_verify_main

    rig = Rig(tmp_path, services, time)
    rig.reconcile()
    rig.event(lab((1, 2)))  # one real alert before the damage
    head = tmp_path / "state.json"
    good = head.read_bytes()
    head.write_bytes({"garbage": b"\xff\xfe\x00garbage", "truncated": good[: len(good) // 2],
                      "wrong types": b'{"format": 2, "head": {"sequence": "x", "outbox": 5}}'}[damage])
    assert audit_verify_main(str(tmp_path)) == 1  # one line, never a traceback
    [line] = capsys.readouterr().out.splitlines()
    assert "the committed state cannot be read" in line
    rig.reader.resources = lab((1,))  # the live topology moved meanwhile: it cannot be proven what changed
    time.advance(minutes=15)
    rig.reconcile()
    rebuilt = [r for r in rig.records() if r.get("stateRebuilt")]
    assert len(rebuilt) == 1 and rebuilt[0]["baseline"] is True and "cannot be read" in rebuilt[0]["refused"]
    assert rig.health() == ["state-refused"]
    assert len(transit(services["slack"].accepted)) == 1  # only the alert from before: nothing invented
    assert any("refused and rebuilt" in p for p in health_posts(services["teams"].accepted))
    time.advance(minutes=15)
    rig.reconcile()
    assert rig.health("cleared") == ["state-refused"]
    assert audit_verify_main(str(tmp_path)) == 0


def test_a_tampered_working_copy_is_refused_and_announces_no_false_closure(
        tmp_path: Path, services: dict[str, ChatService], time: SimTime) -> None:
    rig = Rig(tmp_path, services, time)
    rig.reader.resources = lab((1, 2))
    rig.reconcile()
    [copy_file] = [p for p in tmp_path.glob("topology-*.json")]
    # Someone removes gateway 2 from the committed copy: diffed blindly, the next change would "close" hub-01/02.
    resources = [r for r in json.loads(copy_file.read_text()) if r["name"] != "ergw-02"]
    copy_file.write_text(json.dumps(resources))
    rig = Rig(tmp_path, services, time)  # the next run, in a fresh instance (nothing cached)
    rig.reader.resources = lab((1, 2, 3))  # a real change: hub-03 opens to both
    time.advance(minutes=15)
    rig.reconcile()
    assert rig.health() == ["state-refused"]
    assert transit(services["slack"].accepted) == []  # neither the false closure nor an unprovable opening
    [rebuilt] = [r for r in rig.records() if r.get("stateRebuilt")]
    assert rebuilt["baseline"] is True and not rebuilt["closed"]
