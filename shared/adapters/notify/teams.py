"""Microsoft Teams Workflows webhook body: a message whose attachment is an Adaptive Card 1.4."""

from __future__ import annotations

import json
from typing import Any

from shared.adapters.notify.view import AlertView, Endpoint, Group, Pair, Ref, more_line, short_time
from shared.core.escape import teams_markdown as _md

MAX_BYTES = 24 * 1024  # Teams refuses messages over ~28 KB; keep a margin for the envelope Workflows adds.
MAX_ACTIONS = 5
SEVERITY_COLOR = {"critical": "Attention", "warning": "Warning", "info": "Accent"}
SEVERITY_ICON = {"critical": "🚨", "warning": "⚠️", "info": "ℹ️"}


def render_teams(view: AlertView, *, max_groups: int, max_pairs: int) -> dict[str, Any]:
    body: list[dict[str, Any]] = [
        _text(f"{SEVERITY_ICON.get(view.severity, '')} {_md(view.title)}", size="Large", weight="Bolder",
              color=SEVERITY_COLOR.get(view.severity, "Default")),
        {"type": "FactSet", "facts": _facts(view)},
    ]
    for group in view.groups[:max_groups]:
        body.append(_group(group, view.id, max_pairs))
    hidden = view.groups[max_groups:]
    if hidden:
        n = sum(len(g.pairs) for g in hidden)
        body.append(_text(more_line(len(hidden), "causes", view.id, pairs=n), isSubtle=True, separator=True))
    if view.omitted:
        body.append(_text(more_line(view.omitted, "pairs not included in this alert", view.id), isSubtle=True,
                          separator=True))
    if view.warnings:
        body.append(_text("**Warnings**\n\n" + "\n\n".join(f"- {_md(w)}" for w in view.warnings),
                          color="Warning", separator=True))
    return message(body, _actions(view))


def message(body: list[dict[str, Any]], actions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The Workflows webhook envelope around an Adaptive Card 1.4 with `body` (and `actions`)."""
    card: dict[str, Any] = {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.4",
        "msteams": {"width": "Full"},
        "body": body,
    }
    if actions:
        card["actions"] = actions
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }


def posted_size(payload: dict[str, Any]) -> int:
    """Bytes of the request body exactly as the notifier posts it (UTF-8 JSON, non-ASCII kept as is)."""
    return len(json.dumps(payload, ensure_ascii=False).encode("utf-8"))


def fits(payload: dict[str, Any]) -> bool:
    return posted_size(payload) <= MAX_BYTES


def _facts(view: AlertView) -> list[dict[str, str]]:
    facts = [
        ("Severity", view.severity),
        ("Pairs", f"{view.opened} opened, {view.closed} closed"
         + (f" ({view.pending} pending)" if view.pending else "")),
        ("Changed by", view.caller),
        ("Detected by", view.detected_by),
        ("Time", short_time(view.time)),
        ("Correlation id", view.correlation_id),
        ("Trigger", view.trigger),
        ("Alert id", view.id),
        ("Report", view.report),
    ]
    # Fact values render as markdown in Teams: a display name like "[x](https://…)" would become a link.
    return [{"title": k, "value": _md(v)} for k, v in facts if v]


def _group(group: Group, alert_id: str, max_pairs: int) -> dict[str, Any]:
    causes = [f"**[{_md(c.ref.name)}]({c.ref.link})** {_md(c.text)}" if c.ref and c.ref.link
              else f"**{_md(c.ref.name)}** {_md(c.text)}" if c.ref else _md(c.text) for c in group.causes[:5]]
    if len(group.causes) > 5:
        causes.append(f"+{len(group.causes) - 5} more changes")
    cause_text = "\n\n".join(causes) if causes else "not determined"
    items: list[dict[str, Any]] = [_text(f"**Cause:** {cause_text}")]
    shown = group.pairs[:max_pairs]
    for p in shown:
        items.extend(_pair(p))
    if len(group.pairs) > len(shown):
        items.append(_text(more_line(len(group.pairs) - len(shown), "pairs", alert_id), isSubtle=True))
    return {"type": "Container", "separator": True, "spacing": "Medium", "items": items}


def _pair(p: Pair) -> list[dict[str, Any]]:
    icon = "🔓" if p.direction == "opened" else "🔒"
    status = "confirmed" if p.status == "confirmed" else "**pending** (still settling, will be re-checked)"
    head = (f"{icon} **{p.direction.upper()}** {_md_link(p.a.ref)} ⇄ {_md_link(p.b.ref)} · "
            f"{p.severity} · {status}")
    via = []
    if p.circuits:
        via.append("circuit " + ", ".join(_md_link(c) for c in p.circuits[:3]))
    if p.gateways:
        via.append("gateways " + ", ".join(_md_link(g) for g in p.gateways[:4]))
    out: list[dict[str, Any]] = [
        _text(head, spacing="Medium"),
        {"type": "FactSet", "spacing": "Small", "facts": [_endpoint_fact(p.a), _endpoint_fact(p.b)]},
    ]
    if via or p.warnings or p.missing:
        lines = (["via " + " · ".join(via)] if via else []) + [f"⚠ {_md(w)}" for w in p.warnings[:3]]
        lines += [f"now missing: {_md(m)}" for m in p.missing[:3]]
        out.append(_text("\n\n".join(lines), spacing="Small", isSubtle=True))
    return out


def _endpoint_fact(e: Endpoint) -> dict[str, str]:
    prefixes = ", ".join(e.prefixes[:4]) + (f" +{len(e.prefixes) - 4}" if len(e.prefixes) > 4 else "")
    where = " / ".join(x for x in (e.subscription, e.resource_group) if x)
    return {"title": _md(e.ref.name), "value": _md(" · ".join(x for x in (prefixes, where) if x) or "-")}


def _actions(view: AlertView) -> list[dict[str, Any]]:
    """Buttons for the most important group: its causes, then its first pair's VNets and circuit."""
    if not view.groups:
        return []
    group = view.groups[0]
    refs: list[Ref] = [c.ref for c in group.causes if c.ref]
    if group.pairs:
        first = group.pairs[0]
        refs += [first.a.ref, first.b.ref, *first.circuits]
    seen: set[str] = set()
    actions: list[dict[str, Any]] = []
    for r in refs:
        if r.link and r.link.lower() not in seen and len(actions) < MAX_ACTIONS:
            seen.add(r.link.lower())
            actions.append({"type": "Action.OpenUrl", "title": f"Open {r.name}", "url": r.link})
    return actions


def _md_link(r: Ref) -> str:
    return f"[{_md(r.name)}]({r.link})" if r.link else _md(r.name)


def text(value: str, **props: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": value, "wrap": True, **props}


_text = text
