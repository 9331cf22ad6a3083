"""Policy: selectors, precedence, expiry, severities, and policy files that must fail loudly with FILE:LINE."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shared.core.policy import (
    PolicyError,
    Verdict,
    annotate_diff,
    classifier,
    evaluate,
    forbidden_openings,
    load_policy,
    parse_policy,
    severity_for,
    should_notify,
)
from shared.core.snapshot import parse_resources
from shared.core.transit import compute_pairs
from shared.core.views import pairs_json
from tests.builders import SUB, lab, vnet

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "policy.yaml"


def endpoint(name: str, *, rg: str = "rg-a", sub: str = SUB, prefixes: tuple[str, ...] = ("10.1.0.0/16",),
             tags: dict[str, str] | None = None) -> dict[str, Any]:
    return {"id": f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/virtualNetworks/{name}",
            "name": name, "subscription": sub, "resourceGroup": rg, "addressPrefixes": list(prefixes),
            "tags": tags or {}}


def pair(e1: dict[str, Any], e2: dict[str, Any]) -> dict[str, Any]:
    return {"vnets": [e1["id"], e2["id"]], "endpoints": [e1, e2]}


def verdict(policy_text: str, e1: dict[str, Any], e2: dict[str, Any], now: datetime = NOW) -> Verdict:
    return evaluate(parse_policy(policy_text, source="p.yaml"), pair(e1, e2), now=now)


A, B = endpoint("hub-01"), endpoint("spoke-9", rg="rg-b", prefixes=("10.200.1.0/24",), tags={"env": "prod"})


# -- selectors -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("selector", [
    "{name: hub-01}", "{name: 'HUB-*'}", "{name: [x, 'hub-0?']}", "{resourceGroup: RG-A}",
    f"{{subscription: '{SUB[:8]}*'}}", "{id: '*/virtualNetworks/hub-01'}", "{addressPrefix: 10.0.0.0/8}",
    "{addressPrefix: [192.168.0.0/16, 10.1.0.0/16]}", "{name: hub-01, resourceGroup: rg-a}", "'*'",
    "[{name: nope}, {name: hub-01}]",
])
def test_selector_matches(selector: str) -> None:
    text = f"forbidden:\n  - name: r\n    a: {selector}\n"
    assert verdict(text, A, endpoint("other", rg="zz", prefixes=("172.16.0.0/16",))).kind == "forbidden"


@pytest.mark.parametrize("selector", [
    "{name: hub-02}", "{resourceGroup: rg-b}", "{subscription: ffff*}", "{addressPrefix: 10.1.0.0/17}",
    "{addressPrefix: 'fd00::/8'}", "{name: hub-01, resourceGroup: rg-b}", "{tag: {env: prod}}",
])
def test_selector_does_not_match(selector: str) -> None:
    text = f"forbidden:\n  - name: r\n    a: {selector}\n"
    assert verdict(text, A, endpoint("other", rg="zz", prefixes=("172.16.0.0/16",))).kind == "unexpected"


def test_tag_selector_keys_case_insensitive_values_glob_and_lists() -> None:
    for sel in ("{tag: {ENV: prod}}", "{tag: {env: 'pr*'}}", "{tag: {env: [dev, prod]}}", "{tag: {env: '*'}}"):
        assert verdict(f"forbidden:\n  - a: {sel}\n", B, A).kind == "forbidden", sel
    assert verdict("forbidden:\n  - a: {tag: {env: Prod}}\n", B, A).kind == "unexpected"  # values are exact


def test_rules_are_symmetric_and_b_defaults_to_any() -> None:
    text = "forbidden:\n  - name: r\n    a: {name: hub-01}\n    b: {name: spoke-9}\n"
    assert verdict(text, A, B).kind == verdict(text, B, A).kind == "forbidden"
    assert verdict(text, A, endpoint("x")).kind == "unexpected"
    assert verdict("forbidden:\n  - a: {name: spoke-9}\n", A, B).kind == "forbidden"


# -- precedence, expiry, severities --------------------------------------------------------------------------------

PRECEDENCE = """
forbidden:
  - name: no-prod
    a: {tag: {env: prod}}
    reason: prod is isolated
allowed:
  - name: hubs
    a: {name: 'hub-*'}
accepted:
  - name: migration
    a: {subscription: SUB, name: spoke-9}
    b: {subscription: SUB, name: hub-01}
    reason: CHG-1
    expires: 2026-06-01
""".replace("SUB", SUB)


def test_forbidden_beats_an_acceptance_and_says_the_acceptance_did_not_override_it() -> None:
    v = verdict(PRECEDENCE, A, B, now=datetime(2026, 6, 1, 23, 59, tzinfo=UTC))
    assert (v.kind, v.severity, v.rule) == ("forbidden", "critical", "no-prod")
    assert v.reason == "forbidden by 'no-prod': prod is isolated; acceptance 'migration' does not override a " \
                       "forbidden rule"


def test_acceptance_applies_until_the_end_of_its_day() -> None:
    untagged = endpoint("spoke-9", rg="rg-b", prefixes=("10.200.1.0/24",))
    v = verdict(PRECEDENCE, A, untagged, now=datetime(2026, 6, 1, 23, 59, tzinfo=UTC))
    assert (v.kind, v.severity, v.rule) == ("accepted", "info", "migration")
    assert v.reason == "accepted by 'migration': CHG-1 (until 2026-06-01)"


def test_expired_acceptance_no_longer_applies_and_says_so() -> None:
    untagged = endpoint("spoke-9", rg="rg-b", prefixes=("10.200.1.0/24",))
    v = verdict(PRECEDENCE, A, untagged, now=datetime(2026, 6, 2, 0, 0, tzinfo=UTC))
    assert (v.kind, v.severity, v.rule) == ("allowed", "info", "hubs")
    assert v.reason == "allowed by 'hubs'; acceptance 'migration' expired (2026-06-01)"


def test_forbidden_beats_allowed_and_allowed_beats_default() -> None:
    assert verdict(PRECEDENCE, endpoint("hub-01"), endpoint("hub-02", tags={"env": "prod"})).kind == "forbidden"
    assert verdict(PRECEDENCE, endpoint("hub-01"), endpoint("hub-02")).kind == "allowed"
    v = verdict(PRECEDENCE, endpoint("x"), endpoint("y"))
    assert (v.kind, v.severity, v.rule) == ("unexpected", "warning", None)


def test_first_matching_rule_of_a_list_wins() -> None:
    text = "forbidden:\n  - name: first\n    a: '*'\n  - name: second\n    a: {name: hub-01}\n"
    assert verdict(text, A, B).rule == "first"


def test_expiry_as_an_iso_date_time_with_zone() -> None:
    text = f"accepted:\n  - a: {{subscription: {SUB}}}\n    reason: r\n    expires: '2026-06-01T12:00:00+09:00'\n"
    assert verdict(text, A, B, now=datetime(2026, 6, 1, 2, 59, tzinfo=UTC)).kind == "accepted"
    assert verdict(text, A, B, now=datetime(2026, 6, 1, 3, 0, tzinfo=UTC)).kind == "unexpected"


def test_unexpected_severity_is_configurable() -> None:
    assert verdict("unexpected: critical\n", A, B).severity == "critical"


@pytest.mark.parametrize(("kind", "opened", "severity"), [
    ("forbidden", True, "critical"), ("unexpected", True, "warning"), ("accepted", True, "info"),
    ("allowed", True, "info"), ("allowed", False, "warning"), ("accepted", False, "warning"),
    ("forbidden", False, "info"), ("unexpected", False, "info"),
])
def test_severity_of_openings_and_closings(kind: str, opened: bool, severity: str) -> None:
    base = {"forbidden": "critical", "unexpected": "warning", "accepted": "info", "allowed": "info"}[kind]
    assert severity_for(Verdict(base, "r", None, kind), opened) == severity


def test_info_is_not_sent_to_chat_unless_the_policy_says_so() -> None:
    assert not should_notify(parse_policy("unexpected: warning\n"), "info")
    assert should_notify(parse_policy("unexpected: warning\n"), "warning")
    assert should_notify(parse_policy("unexpected: warning\nnotifyInfo: true\n"), "info")


# -- the pair as views.pair_json gives it; the auditor's classifier; annotated diffs -------------------------------

def test_evaluate_reads_the_view_of_a_computed_pair_including_tags() -> None:
    resources = lab(enabled=(1, 2))
    resources[1]["tags"] = {"env": "prod"}  # hub-01
    topology = parse_resources(resources)
    [doc] = pairs_json(compute_pairs(topology), topology)["pairs"]
    policy = parse_policy("forbidden:\n  - name: prod\n    a: {tag: {env: prod}, addressPrefix: 10.1.0.0/16}\n")
    assert evaluate(policy, doc, now=NOW).kind == "forbidden"
    assert classifier(policy, clock=lambda: NOW)(doc, True) == ("critical", "forbidden by 'prod'")


def test_annotated_diff_flags_forbidden_openings_only() -> None:
    policy = parse_policy(PRECEDENCE)
    doc = {"opened": [pair(endpoint("hub-01"), endpoint("x", tags={"env": "prod"}))],
           "closed": [pair(endpoint("hub-01"), endpoint("hub-02"))], "groups": [], "warnings": []}
    out = annotate_diff(doc, policy, now=NOW)
    assert out["opened"][0]["severity"] == "critical" and out["opened"][0]["policy"]["rule"] == "no-prod"
    assert out["closed"][0]["severity"] == "warning" and out["closed"][0]["policy"]["kind"] == "allowed"
    assert forbidden_openings(out) == [out["opened"][0]] and "severity" not in doc["opened"][0]


def test_the_example_policy_file_is_valid() -> None:
    policy = load_policy(EXAMPLE)
    assert {r.kind for r in policy.rules} == {"forbidden", "allowed", "accepted"}
    assert all(r.line > 0 for r in policy.rules)


# -- bad policy files: FILE:LINE, never a silent allow-all ---------------------------------------------------------

@pytest.mark.parametrize(("text", "line", "message"), [
    ("forbidden:\n  - a: {name: x\n", 3, "not valid YAML"),
    ("forbidden:\n  - a: {name: x}\n    colour: red\n", 3, "unknown key 'colour' in forbidden rule"),
    ("allowed:\n  - a: {nmae: x}\n", 2, "unknown key 'nmae'"),
    ("forbidden:\n  - a: {addressPrefix: 10.1.0.0/33}\n", 2, "addressPrefix '10.1.0.0/33' is not a network prefix"),
    ("forbidden:\n  - a: {addressPrefix: 10.1.0.1/16}\n", 2, "has host bits set"),
    (f"accepted:\n  - a: {{subscription: {SUB}}}\n    reason: r\n    expires: next week\n", 4,
     "expires 'next week' is not a date"),
    ("accepted:\n  - a: '*'\n    expires: 2026-01-01\n", 2, "accepted rule 'accepted[0]' needs a 'reason'"),
    ("forbidden:\n  - b: {name: x}\n", 2, "needs side 'a'"),
    ("forbidden:\n  - a: {}\n", 2, "has no criterion"),
    ("forbidden: {a: x}\n", 1, "forbidden must be a list of rules"),
    ("forbidden:\n  - a: {name: x}\nforbidden: []\n", 3, "duplicate key 'forbidden'"),
    ("version: 2\nforbidden: []\n", 1, "unsupported version"),
    ("", 1, "empty policy file"),
    ("# only a comment\n", 1, "empty policy file"),
    ("notifyInfo: false\n", 1, "no rules"),
    ("- a: x\n", 1, "the policy must be a mapping"),
    ("unexpected: loud\n", 1, "unexpected must be one of info, warning, critical"),
    ("notifyInfo: perhaps\nunexpected: info\n", 1, "notifyInfo must be true or false"),
    ("forbidden:\n  - a: {tag: {}}\n", 2, "tag must name at least one tag"),
    ("forbidden:\n  - a: {name: []}\n", 2, "name must not be empty"),
])
def test_bad_policy_is_an_error_naming_the_line(text: str, line: int, message: str) -> None:
    with pytest.raises(PolicyError) as err:
        parse_policy(text, source="policy.yaml")
    assert str(err.value).startswith(f"policy.yaml:{line}: "), str(err.value)
    assert message in str(err.value)


def test_unreadable_policy_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"missing\.yaml:0: cannot read policy file"):
        load_policy(tmp_path / "missing.yaml")


def test_policy_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("allowed:\n  - a: {name: x}\n  - a: {colour: red}\n", encoding="utf-8")
    with pytest.raises(PolicyError, match=rf"^{path}:3: unknown key 'colour'"):
        load_policy(path)


def test_a_vnet_builder_pair_without_endpoints_is_read_from_its_ids() -> None:
    ids = [vnet("hub-01", "10.1.0.0/16")["id"], vnet("b", "10.2.0.0/16")["id"]]
    policy = parse_policy("forbidden:\n  - a: {name: hub-01, resourceGroup: rg-er-lab}\n")
    assert evaluate(policy, {"vnets": ids}, now=NOW).kind == "forbidden"
