"""Azure Monitor log alerts for the auditor's own health: they reach the action group (e-mail) even when every
chat channel is what broke, and they search for exactly the lines the code logs."""

from __future__ import annotations

import json

from shared.core.health import LOG_MARKER_RAISED, LOG_MARKER_RECONCILED
from tests.infra.bicep_templates import REPO_ROOT, by_symbol, render, template

MONITORING = "app/monitoring.bicep"


def _variable(name: str) -> str:
    value: str = template(MONITORING)["variables"][name]["value"]
    return value


def _query(symbol: str) -> str:
    [criterion] = by_symbol(MONITORING, symbol).body["properties"]["criteria"]["allOf"]
    query: str = criterion["query"]
    for name in ("healthRaisedMarker", "reconciledMarker"):
        query = query.replace("${" + name + "}", _variable(name))
    return query


def test_a_raised_health_alert_fires_a_log_alert_to_the_action_group() -> None:
    alert = by_symbol(MONITORING, "healthAlertRaised").body
    props = alert["properties"]
    assert alert["kind"] == "LogAlert" and render(props["scopes"]) == ["appInsights.id"]
    assert _query("healthAlertRaised") == f'traces | where message startswith "{LOG_MARKER_RAISED}"'
    [criterion] = props["criteria"]["allOf"]
    assert (criterion["timeAggregation"], criterion["operator"], criterion["threshold"]) == ("Count", "GreaterThan", 0)
    assert render(props["actions"]["actionGroups"]) == "conditional(empty(alertEmail), [], ['actionGroup.id'])"


def test_no_complete_reconcile_in_an_hour_fires_the_heartbeat_alert() -> None:
    props = by_symbol(MONITORING, "reconcileHeartbeat").body["properties"]
    assert _query("reconcileHeartbeat") == f'traces | where message startswith "{LOG_MARKER_RECONCILED}"'
    [criterion] = props["criteria"]["allOf"]
    assert (criterion["timeAggregation"], criterion["operator"], criterion["threshold"]) == ("Count", "LessThan", 1)
    assert props["windowSize"] == "PT1H" and props["enabled"] is True
    assert render(props["actions"]["actionGroups"]) == "conditional(empty(alertEmail), [], ['actionGroup.id'])"


def test_traces_are_never_sampled_away() -> None:
    # The two alerts count log lines: adaptive sampling must not drop them (host.json samplingSettings).
    sampling = json.loads((REPO_ROOT / "host.json").read_text())["logging"]["applicationInsights"]["samplingSettings"]
    assert "Trace" in sampling["excludedTypes"].split(";")
