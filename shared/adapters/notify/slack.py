"""Slack incoming-webhook body: Block Kit blocks within Slack's limits plus a plain-text fallback."""

from __future__ import annotations

from typing import Any

from shared.adapters.notify.view import AlertView, Endpoint, Group, Pair, Ref, short_time
from shared.adapters.notify.view import more_line as _more_line
from shared.core.escape import slack_mrkdwn

# Slack's limits (Block Kit reference: 50 blocks a message, a section's text 3,000 characters, 10 fields of
# 2,000, a header 150). Beyond the documented ones, Slack refuses a message whose blocks hold about 12,000-13,000
# characters of text in all with `msg_blocks_too_long` (undocumented; slackapi/bolt-js issues 2509 and 2867):
# stay under 12,000, counted on the rendered text (links and escapes included), not on the number of pairs.
MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_HEADER_TEXT = 150
MAX_TOTAL_TEXT = 12000
MAX_FALLBACK = 3000
SEVERITY_ICON = {"critical": ":rotating_light:", "warning": ":warning:", "info": ":information_source:"}


def render_slack(view: AlertView, *, max_groups: int, max_pairs: int) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [
        {"type": "header",
         "text": {"type": "plain_text", "text": _cut(view.title, MAX_HEADER_TEXT), "emoji": True}},
        {"type": "section", "fields": _facts(view)},
    ]
    for group in view.groups[:max_groups]:
        blocks.append({"type": "divider"})
        blocks.append(_section(_cause_text(group)))
        shown = group.pairs[:max_pairs]
        blocks.extend(_section(text) for text in _pack([_pair_text(p) for p in shown]))
        if len(group.pairs) > len(shown):
            blocks.append(_section(f"_{_esc(_more_line(len(group.pairs) - len(shown), 'pairs', view.id))}_"))
    hidden = view.groups[max_groups:]
    if hidden:
        n = sum(len(g.pairs) for g in hidden)
        blocks.append({"type": "divider"})
        blocks.append(_section(f"_{_esc(_more_line(len(hidden), 'causes', view.id, pairs=n))}_"))
    if view.omitted:
        blocks.append(_section(f"_{_esc(_more_line(view.omitted, 'pairs not included in this alert', view.id))}_"))
    if view.warnings:
        blocks.append(_section(_cut("*Warnings*\n" + "\n".join(f"• {_esc(w)}" for w in view.warnings),
                                    MAX_SECTION_TEXT)))
    footer = "ER-transit auditor" + (f" · alert id `{_esc(view.id)}`" if view.id else "")
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": footer, "verbatim": True}]})
    return {"text": _fallback(view), "blocks": blocks}


def block_texts(block: dict[str, Any]) -> list[str]:
    """Every text a block carries (its text, its fields, its context elements), as Slack counts them."""
    texts = [block["text"].get("text", "")] if isinstance(block.get("text"), dict) else []
    texts += [f.get("text", "") for f in block.get("fields", []) if isinstance(f, dict)]
    texts += [e.get("text", "") for e in block.get("elements", []) if isinstance(e, dict)]
    return [t for t in texts if isinstance(t, str)]


def total_text(body: dict[str, Any]) -> int:
    return sum(len(t) for b in body.get("blocks", []) for t in block_texts(b))


def problems(body: dict[str, Any]) -> list[str]:
    """What Slack would refuse in this body (empty: it fits)."""
    blocks = body.get("blocks", [])
    out = [f"{len(blocks)} blocks (at most {MAX_BLOCKS})"] if len(blocks) > MAX_BLOCKS else []
    for b in blocks:
        text = b.get("text", {}).get("text", "") if isinstance(b.get("text"), dict) else ""
        if b.get("type") == "header" and len(text) > MAX_HEADER_TEXT:
            out.append(f"header of {len(text)} characters (at most {MAX_HEADER_TEXT})")
        elif len(text) > MAX_SECTION_TEXT:
            out.append(f"section of {len(text)} characters (at most {MAX_SECTION_TEXT})")
        fields = b.get("fields", [])
        if len(fields) > MAX_FIELDS or any(len(f.get("text", "")) > MAX_FIELD_TEXT for f in fields):
            out.append(f"fields over {MAX_FIELDS} or over {MAX_FIELD_TEXT} characters")
    if total_text(body) > MAX_TOTAL_TEXT:
        out.append(f"{total_text(body)} characters of block text (at most {MAX_TOTAL_TEXT})")
    return out


def fits(body: dict[str, Any]) -> bool:
    return not problems(body)


def _fallback(view: AlertView) -> str:
    parts = [f"[{view.severity.upper()}] {view.title}"]
    causes = sorted({c.full_text for g in view.groups for c in g.causes})
    if causes:
        more = f" (+{len(causes) - 5} more)" if len(causes) > 5 else ""
        parts.append("cause: " + "; ".join(causes[:5]) + more)
    if view.caller:
        parts.append(f"by {view.caller}")
    return _cut(_esc(" — ".join(parts)), MAX_FALLBACK)


def _facts(view: AlertView) -> list[dict[str, Any]]:
    facts = [
        ("Severity", f"{SEVERITY_ICON.get(view.severity, '')} {view.severity}"),
        ("Pairs", f"{view.opened} opened, {view.closed} closed"
         + (f" ({view.pending} pending)" if view.pending else "")),
        ("Changed by", _esc(view.caller)),
        ("Detected by", _esc(view.detected_by)),
        ("Time", _esc(short_time(view.time))),
        ("Correlation id", f"`{_esc(view.correlation_id)}`" if view.correlation_id else ""),
        ("Trigger", _esc(view.trigger)),
        ("Report", f"`{_esc(view.report)}`" if view.report else ""),
    ]
    # Slack allows at most 10 fields of at most 2000 characters each.
    return [{"type": "mrkdwn", "text": _cut(f"*{k}*\n{v}", 2000), "verbatim": True} for k, v in facts
            if v.strip()][:10]


def _cause_text(group: Group) -> str:
    lines = []
    for c in group.causes[:5]:
        lines.append(f"*{_link(c.ref)}* {_esc(c.text)}" if c.ref else _esc(c.text))
    if len(group.causes) > 5:
        lines.append(f"_+{len(group.causes) - 5} more changes_")
    return _cut("*Cause:* " + ("\n".join(lines) if lines else "_not determined_"), MAX_SECTION_TEXT)


def _pair_text(p: Pair) -> str:
    icon = ":unlock:" if p.direction == "opened" else ":lock:"
    status = "confirmed" if p.status == "confirmed" else "*pending* (still settling, will be re-checked)"
    lines = [
        f"{icon} *{p.direction.upper()}* · {SEVERITY_ICON.get(p.severity, '')} {p.severity} · {status}",
        f"• {_endpoint(p.a)}",
        f"• {_endpoint(p.b)}",
    ]
    via = []
    if p.circuits:
        via.append("circuit " + ", ".join(_link(c) for c in p.circuits[:3]))
    if p.gateways:
        via.append("gateways " + ", ".join(_link(g) for g in p.gateways[:4]))
    if via:
        lines.append("• via " + " · ".join(via))
    lines.extend(f"• :grey_exclamation: {_esc(w)}" for w in p.warnings[:3])
    lines.extend(f"• now missing: {_esc(m)}" for m in p.missing[:3])
    return _cut("\n".join(lines), MAX_SECTION_TEXT)


def _endpoint(e: Endpoint) -> str:
    prefixes = ", ".join(e.prefixes[:4]) + (f" +{len(e.prefixes) - 4}" if len(e.prefixes) > 4 else "")
    where = " / ".join(x for x in (e.subscription, e.resource_group) if x)
    return (f"*{_link(e.ref)}*" + (f" `{_esc(prefixes)}`" if prefixes else "")
            + (f" ({_esc(where)})" if where else ""))


def _pack(texts: list[str]) -> list[str]:
    """Pair texts joined into as few section texts of at most MAX_SECTION_TEXT characters as possible."""
    out: list[str] = []
    for t in texts:
        if out and len(out[-1]) + 2 + len(t) <= MAX_SECTION_TEXT:
            out[-1] += "\n\n" + t
        else:
            out.append(t)
    return out


def _section(text: str) -> dict[str, Any]:
    # verbatim: Slack does not turn bare URLs, channel names or mentions into links (our <url|name> links stay).
    return {"type": "section", "text": {"type": "mrkdwn", "text": text, "verbatim": True}}


def _link(r: Ref) -> str:
    return f"<{r.link}|{_esc(r.name)}>" if r.link else _esc(r.name)


def esc(text: str) -> str:
    return slack_mrkdwn(text)


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


_esc, _cut = esc, cut
