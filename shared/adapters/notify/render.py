"""One alert rendered per channel (Teams card, Slack blocks, JSON, console text), summarised to fit."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from typing import Any

from shared.adapters.notify import slack, teams
from shared.adapters.notify.compact import render_health, render_health_text, render_minimal
from shared.adapters.notify.view import more_line, read_alert, short_time
from shared.core.escape import terminal_lines
from shared.core.health import is_health

CHANNELS = ("teams", "slack", "json")
JSON_SCHEMA = "er-transit-auditor/alert/v1"
# (groups shown, pairs shown per group), tried in order until the body fits the service's limits.
FIT_STEPS = ((10, 10), (8, 6), (6, 4), (5, 3), (4, 2), (3, 1), (2, 1), (1, 1), (1, 0), (0, 0))


class RenderError(ValueError):
    """The alert cannot be rendered (unknown channel or not an alert)."""


def render(channel: str, alert: Mapping[str, Any]) -> dict[str, Any]:
    """The request body to post for `alert` on `channel` ("teams", "slack" or "json").

    Teams and Slack bodies are summarised until their measured size fits the service's limits; when even the
    shortest summary does not, the minimal alert (title, counts, severity, alert id, where the record is).
    """
    if channel not in CHANNELS:
        raise RenderError(f"unknown channel {channel!r}; expected one of {', '.join(CHANNELS)}")
    if isinstance(alert, Mapping) and is_health(alert):
        return render_health(channel, alert)
    _check_alert(alert)
    if channel == "json":
        return render_json(alert)
    if channel == "teams":
        return _fit(channel, alert, teams.render_teams, teams.fits)
    return _fit(channel, alert, slack.render_slack, slack.fits)


def render_json(alert: Mapping[str, Any]) -> dict[str, Any]:
    """The alert model itself, with a schema tag, a one-line summary and the overall severity."""
    view = read_alert(alert)
    return {"schema": JSON_SCHEMA, "summary": view.title, "severity": view.severity, **alert}


def render_text(alert: Mapping[str, Any]) -> str:
    """A plain-text rendering for a terminal or a log (every pair, no summarising)."""
    if is_health(alert):
        return render_health_text(alert)
    view = read_alert(alert)
    lines = [f"[{view.severity.upper()}] {view.title}"]
    facts = (("changed by", view.caller), ("detected by", view.detected_by), ("time", short_time(view.time)),
             ("correlation id", view.correlation_id), ("trigger", view.trigger), ("alert id", view.id),
             ("report", view.report))
    for label, value in facts:
        if value:
            lines.append(f"  {label}: {value}")
    for group in view.groups:
        lines.append("")
        causes = "; ".join(c.full_text for c in group.causes) or "not determined"
        lines.append(f"  cause: {causes}")
        for p in group.pairs:
            lines.append(f"    {p.direction.upper():6} {p.a.ref.name} ({', '.join(p.a.prefixes) or '?'}) <-> "
                         f"{p.b.ref.name} ({', '.join(p.b.prefixes) or '?'}) [{p.severity}, {p.status}]")
            if p.circuits:
                lines.append(f"           via circuit {', '.join(c.name for c in p.circuits)}; "
                             f"gateways {', '.join(g.name for g in p.gateways)}")
            lines.extend(f"           warning: {w}" for w in p.warnings)
            lines.extend(f"           now missing: {m}" for m in p.missing)
    if view.omitted:
        lines.append("  " + more_line(view.omitted, "pairs not included in this alert", view.id))
    lines.extend(f"  warning: {w}" for w in view.warnings)
    return terminal_lines(lines) + "\n"  # names and callers are others' text: no newline, ANSI or runner command


def render_main(channel: str, diff_path: str) -> int:
    """`render --channel CHANNEL DIFF_JSON`: print the body that would be posted; 2 on bad input."""
    try:
        with open(diff_path, encoding="utf-8") as f:
            alert = json.load(f)
        body = render(channel, alert)
    except (OSError, UnicodeDecodeError) as exc:
        return _fail(f"cannot read {diff_path}: {exc.strerror if isinstance(exc, OSError) else exc}")
    except json.JSONDecodeError as exc:
        return _fail(f"{diff_path} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    except RenderError as exc:
        return _fail(f"{diff_path}: {exc}")
    print(json.dumps(body, indent=2, ensure_ascii=False))
    return 0


def _fail(message: str) -> int:
    print(f"render: {message}", file=sys.stderr)
    return 2


def _check_alert(alert: Any) -> None:
    if not isinstance(alert, Mapping) or ("opened" not in alert and "closed" not in alert) \
            or not all(isinstance(alert.get(k, []), list) for k in ("opened", "closed")):
        raise RenderError("not an alert: expected an object with 'opened' and 'closed' lists (diff --json)")


def _fit(channel: str, alert: Mapping[str, Any], build: Callable[..., dict[str, Any]],
         fits: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    view = read_alert(alert)
    for max_groups, max_pairs in FIT_STEPS:
        body = build(view, max_groups=max_groups, max_pairs=max_pairs)
        if fits(body):
            return body
    return render_minimal(channel, alert)  # even header, facts and warnings alone were too large


__all__ = ["CHANNELS", "RenderError", "render", "render_json", "render_main", "render_text"]
