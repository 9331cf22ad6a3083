"""Escapers for text others control (resource names, callers, tags, ids) wherever it is printed or rendered.

Each takes one untrusted value and returns it safe to put inside our own formatting: a terminal line, a
Teams Adaptive Card markdown string, or Slack mrkdwn. Pure functions, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

ZWSP = "\u200b"  # zero-width space: breaks a pattern without changing what a reader sees or copies
# C0 and C1 controls (newline, ANSI escape, carriage return, DEL...) and the invisible direction overrides that
# make text display in another order than it is stored ("Trojan Source").
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# CI runners treat a line starting with these as a command (GitHub Actions `::error::`, Azure Pipelines `##vso[`).
_RUNNER_COMMAND = ("::", "##")


def _visible(match: re.Match[str]) -> str:
    c = match.group()
    return _NAMED.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")


def controls(text: str) -> str:
    """Control characters shown as escapes (`\\n`, `\\x1b`, `\\u202e`), so a value stays on its one line."""
    return _CONTROL.sub(_visible, text)


def terminal_line(line: str) -> str:
    """One line for a terminal or a CI log: no control character, and never a runner command."""
    safe = controls(line)
    stripped = safe.lstrip()
    if stripped.startswith(_RUNNER_COMMAND):
        at = len(safe) - len(stripped)
        safe = safe[: at + 1] + ZWSP + safe[at + 1 :]
    return safe


def terminal_lines(lines: Iterable[str]) -> str:
    """Lines we built (each may hold untrusted values) joined for printing: an injected newline stays visible."""
    return "\n".join(terminal_line(line) for line in lines)


_TEAMS_SPECIAL = re.compile(r"([\\`*_\[\]~])")
# Block markers at the start of a value: a quote, a heading, a list item (only with a space after the marker).
_TEAMS_LINE_START = re.compile(r"^(\s*)(>|[#+\-](?=\s|$)|\d{1,9}(?=[.)](?:\s|$)))")


def teams_markdown(text: str) -> str:
    """A value inside Teams Adaptive Card markdown (TextBlock text, FactSet values): literal, never a link,
    emphasis, list or heading. CommonMark backslash escapes, and `://` broken so no bare link is made."""
    safe = _TEAMS_SPECIAL.sub(r"\\\1", controls(text))
    safe = _TEAMS_LINE_START.sub(
        lambda m: f"{m.group(1)}{m.group(2)}\\" if m.group(2)[0].isdigit() else f"{m.group(1)}\\{m.group(2)}", safe)
    return safe.replace("://", ":" + ZWSP + "//")


_SLACK_FORMAT = re.compile(r"([*_~`])")


def slack_mrkdwn(text: str) -> str:
    """A value inside Slack mrkdwn: `&`, `<`, `>` as entities (no mention, no link), formatting characters
    followed by a zero-width space (Slack has no escape character), `://` broken. Use with `"verbatim": true`
    on the text object: that is what stops Slack linking bare URLs, e-mail addresses and channel names."""
    safe = controls(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    safe = _SLACK_FORMAT.sub(lambda m: m.group(1) + ZWSP, safe)
    return safe.replace("://", ":" + ZWSP + "//")
