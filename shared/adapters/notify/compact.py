"""Small bodies every service accepts: the minimal fallback of a refused alert, and the auditor's health alerts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.adapters.notify import slack, teams
from shared.adapters.notify.view import read_alert, short_time

HEALTH_SCHEMA = "er-transit-auditor/health/v1"
HEALTH_ICON = {"raised": ("🚨", ":rotating_light:"), "cleared": ("✅", ":white_check_mark:")}


def _s(value: Any, limit: int = 500) -> str:
    text = value if isinstance(value, str) else "" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def where_recorded(alert: Mapping[str, Any]) -> str:
    run = _s(alert.get("runId"), 64)
    return f"the audit log, run {run}" if run else "the audit log"


def render_minimal(channel: str, alert: Mapping[str, Any]) -> dict[str, Any]:
    """Title, counts, severity, alert id and where the full record is: what is posted when a service refused the
    full alert for its size or shape (a few hundred bytes whatever the change)."""
    view = read_alert(alert)
    counts = f"{view.opened} opened, {view.closed} closed" + (f" ({view.pending} pending)" if view.pending else "")
    title = view.title
    where = where_recorded(alert)
    line = (f"{title}. Severity {view.severity}; {counts}. The full alert was too large for this channel; "
            f"every pair is in {where}.")
    if channel == "slack":
        fields = [("Severity", view.severity), ("Pairs", counts), ("Alert id", f"`{slack.esc(view.id)}`"),
                  ("Full record", slack.esc(where))]
        return {"text": slack.esc(line)[: slack.MAX_FALLBACK], "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": slack.cut(title, slack.MAX_HEADER_TEXT),
                                        "emoji": True}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}", "verbatim": True}
                                           for k, v in fields if v]},
        ]}
    if channel == "teams":
        facts = [("Severity", view.severity), ("Pairs", counts), ("Alert id", view.id), ("Full record", where)]
        return teams.message([
            teams.text(title, size="Large", weight="Bolder", color=teams.SEVERITY_COLOR.get(view.severity, "Default")),
            {"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in facts if v]},
            teams.text(f"The full alert was too large for this channel; every pair is in {where}.", isSubtle=True),
        ])
    return {"schema": "er-transit-auditor/alert/v1", "summary": title, "severity": view.severity, "id": view.id,
            "opened": view.opened, "closed": view.closed, "fullRecord": where, "minimal": True}


def render_health(channel: str, alert: Mapping[str, Any]) -> dict[str, Any]:
    """A health alert (shared.core.health): what is wrong or resolved, since when, and its condition and alert id."""
    status = "cleared" if alert.get("status") == "cleared" else "raised"
    title, detail = _s(alert.get("title"), 300) or "ER-transit auditor health", _s(alert.get("detail"), 1500)
    facts = [("Condition", _s(alert.get("condition"), 200)), ("Since", short_time(_s(alert.get("since"), 64))),
             ("Time", short_time(_s(alert.get("time"), 64))), ("Alert id", _s(alert.get("id"), 64))]
    if channel == "slack":
        icon = HEALTH_ICON[status][1]
        return {"text": slack.esc(f"[HEALTH {status.upper()}] {title}: {detail}")[: slack.MAX_FALLBACK], "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": slack.cut(f"ER-transit auditor: {title}",
                                                                                 slack.MAX_HEADER_TEXT),
                                        "emoji": True}},
            {"type": "section", "text": {"type": "mrkdwn", "text": f"{icon} {slack.esc(detail)}", "verbatim": True}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{slack.esc(v)}", "verbatim": True}
                                           for k, v in facts if v]},
        ]}
    if channel == "teams":
        return teams.message([
            teams.text(f"{HEALTH_ICON[status][0]} ER-transit auditor: {title}", size="Large", weight="Bolder",
                       color="Attention" if status == "raised" else "Good"),
            teams.text(detail),
            {"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in facts if v]},
        ])
    return {"schema": HEALTH_SCHEMA, "summary": title, **alert}


def render_health_text(alert: Mapping[str, Any]) -> str:
    status = "cleared" if alert.get("status") == "cleared" else "raised"
    return (f"[HEALTH {status.upper()}] {_s(alert.get('title'), 300)}\n  {_s(alert.get('detail'), 1500)}\n"
            f"  condition: {_s(alert.get('condition'), 200)}\n  alert id: {_s(alert.get('id'), 64)}\n")
