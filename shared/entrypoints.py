"""What the Functions triggers call: turn a trigger into an auditor run; never let bad input crash the host."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from shared.adapters.events import MalformedEventError, Skip, clean_text, parse_event
from shared.adapters.offline import SnapshotFileTopologyReader
from shared.app.auditor import Auditor, Classifier, RunResult, RunTrigger, default_classifier
from shared.app.ports import Notifier, TopologyReader
from shared.app.settings import Settings
from shared.core.policy import Policy

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_cached: dict[str, Auditor] = {}


def build_auditor(env: Mapping[str, str]) -> Auditor:
    """Wire the adapters that the app settings select (live Azure, or local/offline)."""
    from shared.adapters.notify import ConsoleNotifier, notifiers_from_settings
    from shared.adapters.notify.eventgrid import publisher_from_settings
    from shared.adapters.store import store_from_settings
    from shared.adapters.store.report import report_publisher_from_settings

    settings = Settings.from_env(env)
    reader: TopologyReader
    if settings.topology_snapshot:
        reader = SnapshotFileTopologyReader(settings.topology_snapshot)
    else:
        from shared.adapters.arm import ResourceGraphTopologyReader, default_credential

        reader = ResourceGraphTopologyReader(default_credential(settings.client_id), settings.subscriptions,
                                             arm_endpoint=settings.arm_endpoint,
                                             management_group=settings.management_group)
    state, audit, recheck = store_from_settings(env)
    notifiers: list[Notifier] = list(notifiers_from_settings(
        env, timeout=settings.webhook_timeout_seconds, max_total_wait=settings.webhook_max_wait_seconds,
    )) or [ConsoleNotifier()]
    notifiers[:0] = [p for p in [publisher_from_settings(env, client_id=settings.client_id)] if p]  # fails fast: first
    classify, notify_info, policy = _classification(settings)
    return Auditor(reader=reader, state=state, audit=audit, notifiers=notifiers, recheck=recheck,
                   classify=classify, notify_info=notify_info, recheck_delay_seconds=settings.recheck_delay_seconds,
                   report=report_publisher_from_settings(env), report_policy=policy, **health_options(settings))


def health_options(settings: Settings) -> dict[str, Any]:
    """The auditor's health and outbox timings from the settings.

    The claim lease covers one delivery call (4 attempts of WEBHOOK_TIMEOUT_SECONDS plus WEBHOOK_MAX_WAIT_SECONDS
    of waits): a run that died leaves its outbox items to the next run after about a minute with the defaults.
    """
    call = 4 * settings.webhook_timeout_seconds + settings.webhook_max_wait_seconds
    return {"health_limit": timedelta(minutes=settings.health_alert_after_minutes),
            "max_wait_seconds": settings.webhook_max_wait_seconds,
            "lease_seconds": int(max(60, call + 5))}


def _classification(settings: Settings) -> tuple[Classifier, bool, Policy | None]:
    """The severity classifier, whether accepted (info) paths go to chat, and the policy file's policy if any.

    A policy file with an error raises PolicyError (`FILE:LINE: ...`) here, at start-up: never "allow all".
    """
    if not settings.policy_file:
        return default_classifier, settings.notify_accepted, None
    from shared.core.policy import classifier, load_policy

    policy = load_policy(settings.policy_file)
    return classifier(policy), settings.notify_accepted or policy.notify_info, policy


def auditor() -> Auditor:
    """The process's auditor, built on first use (not at import: the host indexes function_app.py first)."""
    with _lock:
        if "auditor" not in _cached:
            _cached["auditor"] = build_auditor(os.environ)
        return _cached["auditor"]


def use(prebuilt: Auditor) -> None:
    """Install an auditor built elsewhere (an embedding host, or tests wiring adapters to local stand-ins)."""
    with _lock:
        _cached["auditor"] = prebuilt


def reset() -> None:
    """Forget the cached auditor (settings changed: tests, the local replay)."""
    with _lock:
        _cached.clear()


def handle_event(event: Any) -> RunResult | None:
    """One Event Grid delivery. Irrelevant or malformed events are logged and acknowledged, never retried."""
    try:
        decision = parse_event(event)
    except MalformedEventError as exc:
        logger.error("malformed Event Grid event skipped: %s", exc)
        return None
    if isinstance(decision, Skip):
        logger.info("event %s skipped: %s", decision.event_id, decision.reason)
        return None
    trigger = RunTrigger(kind="event", event_id=decision.event_id, operation=decision.operation,
                         resource_id=decision.resource_id, caller=decision.caller,
                         correlation_id=decision.correlation_id, event_time=decision.event_time)
    result = auditor().run(trigger)
    logger.info("event %s (%s on %s by %s): %s", decision.event_id, decision.operation, decision.resource_id,
                decision.caller, result.outcome)
    return result


def handle_warmup() -> bool:
    """A new instance is being added (the warmup trigger): build the auditor and load its working copy now."""
    try:
        warmed = auditor().warm()
    except Exception as exc:  # settings the runs will report the same way; a warm-up never fails the instance
        logger.warning("warm-up skipped: %s", type(exc).__name__)
        return False
    logger.info("warm-up: %s", "working copy loaded" if warmed else "no working copy to load")
    return warmed


def handle_reconcile() -> RunResult:
    result = auditor().run(RunTrigger(kind="reconcile"))
    logger.info("reconcile: %s", result.outcome)
    return result


def handle_recheck(message: Mapping[str, Any] | None) -> RunResult:
    after = message.get("after") if isinstance(message, Mapping) else None
    focus = after.get("resourceId") if isinstance(after, Mapping) else None
    # A message naming its resource oddly (not a string, too long, not valid Unicode) is re-checked as a whole.
    resource_id = focus if isinstance(focus, str) and clean_text(focus) == focus else None
    trigger = RunTrigger(kind="recheck", resource_id=resource_id)
    result = auditor().run(trigger)
    logger.info("re-check: %s", result.outcome)
    return result
