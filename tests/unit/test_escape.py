"""Escapers: whatever others write, the result cannot leave its line, format, link or command a runner."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from shared.core.escape import ZWSP, controls, slack_mrkdwn, teams_markdown, terminal_line

CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@given(st.text())
def test_a_terminal_line_has_no_control_character_and_starts_no_runner_command(text: str) -> None:
    line = terminal_line(text)
    assert not CONTROL.search(line)
    assert not line.lstrip().startswith(("::", "##"))


@given(st.text())
def test_slack_text_has_no_mention_link_or_live_formatting(text: str) -> None:
    safe = slack_mrkdwn(text)
    assert "<" not in safe and ">" not in safe and "://" not in safe
    assert all(safe[i + 1] == ZWSP for i, c in enumerate(safe) if c in "*_~`")


@given(st.text())
def test_teams_text_has_no_unescaped_markdown_character_or_bare_link(text: str) -> None:
    safe = teams_markdown(text)
    assert "://" not in safe and not CONTROL.search(safe)
    i = 0
    while i < len(safe):  # every special character is preceded by an escaping backslash
        if safe[i] == "\\":
            i += 2
            continue
        assert safe[i] not in "`*_[]~", (text, safe)
        i += 1


def test_ordinary_names_and_prefixes_are_unchanged() -> None:
    for name in ("hub-01", "10.1.0.0/16", "fd00::/8", "alice@contoso.example", "rg-er-lab"):
        assert teams_markdown(name) == name and terminal_line(name) == name and controls(name) == name
    assert slack_mrkdwn("hub-01 10.1.0.0/16") == "hub-01 10.1.0.0/16"
