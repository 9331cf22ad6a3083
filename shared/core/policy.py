"""Which ER-transit pairs are allowed, forbidden or accepted, and the severity of each opened or closed pair.

Precedence: forbidden > an accepted path (not expired) > allowed > unexpected (the default). Within a list the first
matching rule wins. Names and tags are set by resource owners, so nothing an owner controls can lower a severity:
an accepted rule must scope every selector of side `a` by subscription or resource id, and tags may appear only in
forbidden rules (they may raise a severity, never lower it).
A rule matches a pair when one VNet matches side `a` and the other side `b` (symmetric).
Severity of an opening: forbidden = critical, unexpected = warning (or the file's `unexpected:`), accepted and
allowed = info. Of a closing: an allowed (or accepted) path that closed = warning, anything else = info.
Info is audited but not sent to chat unless the file says `notifyInfo: true`. See examples/policy.yaml.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from shared.core.escape import terminal_line
from shared.core.model import ResourceId

SEVERITIES = ("info", "warning", "critical")
KINDS = ("forbidden", "accepted", "allowed")  # evaluation order: the first kind that matches decides
MAX_POLICY_BYTES = 256 * 1024  # a policy is a page of rules; anything larger is refused before YAML parsing
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class PolicyError(ValueError):
    """A policy file that cannot be used; the message is `FILE:LINE: what is wrong`."""


@dataclass(frozen=True, slots=True)
class Selector:
    """VNets matching every criterion given (each criterion a list of alternatives)."""

    ids: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    resource_groups: tuple[str, ...] = ()
    subscriptions: tuple[str, ...] = ()
    tags: tuple[tuple[str, tuple[str, ...]], ...] = ()
    prefixes: tuple[IpNetwork, ...] = ()

    def scoped(self) -> bool:
        """Whether it names a scope an owner cannot forge: a literal subscription, or ids under one."""
        def literal(sub: str) -> bool:
            return bool(sub) and not any(c in sub for c in "*?[")
        if self.subscriptions and all(literal(s) for s in self.subscriptions):
            return True
        return bool(self.ids) and all(literal(_subscription_of(i)) for i in self.ids)

    def by_name_alone(self) -> bool:
        """A name but nothing that places the VNet: any VNet so named anywhere matches."""
        return bool(self.names) and not (self.ids or self.subscriptions or self.resource_groups or self.prefixes)

    def matches(self, endpoint: Mapping[str, Any]) -> bool:
        checks = [(self.ids, endpoint.get("id")), (self.names, endpoint.get("name")),
                  (self.resource_groups, endpoint.get("resourceGroup")),
                  (self.subscriptions, endpoint.get("subscription"))]
        for patterns, value in checks:
            if patterns and not any(fnmatch.fnmatchcase(str(value or "").lower(), p.lower()) for p in patterns):
                return False
        tags = {str(k).lower(): str(v) for k, v in (endpoint.get("tags") or {}).items()}
        for key, patterns in self.tags:
            if key.lower() not in tags or not any(fnmatch.fnmatchcase(tags[key.lower()], p) for p in patterns):
                return False
        return not self.prefixes or any(_inside(p, self.prefixes) for p in endpoint.get("addressPrefixes") or [])


def _subscription_of(id_pattern: str) -> str:
    parts = id_pattern.strip("/").split("/")
    return parts[1] if len(parts) > 1 and parts[0].lower() == "subscriptions" else ""


def _inside(prefix: str, networks: Sequence[IpNetwork]) -> bool:
    try:
        net = ipaddress.ip_network(prefix, strict=False)
    except ValueError:
        return False
    return any(net.version == n.version and net.subnet_of(n) for n in networks)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Rule:
    kind: str  # accepted | forbidden | allowed
    name: str
    a: tuple[Selector, ...]  # alternatives
    b: tuple[Selector, ...]  # empty: any VNet
    reason: str
    expires: datetime | None  # the first instant it no longer applies
    line: int
    expires_label: str = ""  # as written in the file


    def matches(self, e1: Mapping[str, Any], e2: Mapping[str, Any]) -> bool:
        def side(selectors: tuple[Selector, ...], e: Mapping[str, Any]) -> bool:
            return not selectors or any(s.matches(e) for s in selectors)
        return (side(self.a, e1) and side(self.b, e2)) or (side(self.a, e2) and side(self.b, e1))

    def expired(self, now: datetime) -> bool:
        return self.expires is not None and now >= self.expires


@dataclass(frozen=True, slots=True)
class Policy:
    rules: tuple[Rule, ...]
    unexpected: str = "warning"
    notify_info: bool = False
    source: str = "policy"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The policy's reading of one pair: `severity` is the severity of it being open."""

    severity: str
    reason: str
    rule: str | None
    kind: str = "unexpected"  # accepted | forbidden | allowed | unexpected


NO_POLICY = Policy(rules=(), source="(no policy)")


def evaluate(policy: Policy, pair: Mapping[str, Any], *, now: datetime) -> Verdict:
    """The verdict on a pair as `views.pair_json` (or `diff --json`) gives it."""
    e1, e2 = _endpoints(pair)
    when = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    expired = [r for r in policy.rules if r.kind == "accepted" and r.expired(when) and r.matches(e1, e2)]
    note = "".join(f"; acceptance {r.name!r} expired ({r.expires_label})" for r in expired)
    overridden = next((r for r in policy.rules if r.kind == "accepted" and not r.expired(when)
                       and r.matches(e1, e2)), None)
    for kind in KINDS:
        for rule in policy.rules:
            if rule.kind != kind or rule.expired(when) or not rule.matches(e1, e2):
                continue
            if kind == "accepted":
                until = f" (until {rule.expires_label})" if rule.expires is not None else ""
                return Verdict("info", f"accepted by {rule.name!r}: {rule.reason}{until}", rule.name, kind)
            if kind == "forbidden":
                beaten = (f"; acceptance {overridden.name!r} does not override a forbidden rule"
                          if overridden is not None else "")
                return Verdict("critical", f"forbidden by {rule.name!r}" + (f": {rule.reason}" if rule.reason else "")
                               + beaten + note, rule.name, kind)
            return Verdict("info", f"allowed by {rule.name!r}" + (f": {rule.reason}" if rule.reason else "") + note,
                           rule.name, kind)
    return Verdict(policy.unexpected, "not covered by the policy (unexpected)" + note, None, "unexpected")


def severity_for(verdict: Verdict, opened: bool) -> str:
    """Severity of the pair opening (`opened`) or closing: a closed allowed or accepted path is a warning."""
    if opened:
        return verdict.severity
    return "warning" if verdict.kind in ("allowed", "accepted") else "info"


def should_notify(policy: Policy, severity: str) -> bool:
    """Whether an alert of this severity goes to chat (every one is audited regardless)."""
    return severity != "info" or policy.notify_info


def _endpoints(pair: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    eps = pair.get("endpoints")
    if isinstance(eps, list) and len(eps) == 2 and all(isinstance(e, dict) for e in eps):
        return eps[0], eps[1]
    vnets = pair.get("vnets")
    if not (isinstance(vnets, list) and len(vnets) == 2):
        raise ValueError("pair has neither 'endpoints' nor two 'vnets'")
    ids = [ResourceId.parse(str(v)) for v in vnets]
    return tuple({"id": i.value, "name": i.name, "subscription": i.subscription,  # type: ignore[return-value]
                  "resourceGroup": i.resource_group, "addressPrefixes": [], "tags": {}} for i in ids)


# ------------------------------------------------------------------------------------------------ reading the file

class _Reader:
    """Turns composed YAML nodes into a Policy, naming the line of anything wrong."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, node: Node | None, message: str) -> PolicyError:
        line = node.start_mark.line + 1 if node is not None else 1
        return PolicyError(f"{self.source}:{line}: {message}")

    def mapping(self, node: Node, what: str, allowed: Sequence[str]) -> dict[str, tuple[Node, Node]]:
        if not isinstance(node, MappingNode):
            raise self.fail(node, f"{what} must be a mapping")
        out: dict[str, tuple[Node, Node]] = {}
        for key, value in node.value:
            name = self.scalar(key, f"a key of {what}")
            if name in out:
                raise self.fail(key, f"duplicate key {name!r} in {what}")
            if name not in allowed:
                raise self.fail(key, f"unknown key {name!r} in {what} (expected one of: {', '.join(allowed)})")
            out[name] = (key, value)
        return out

    def scalar(self, node: Node, what: str) -> str:
        if not isinstance(node, ScalarNode):
            raise self.fail(node, f"{what} must be a single value")
        return str(node.value)

    def strings(self, node: Node, what: str) -> tuple[str, ...]:
        items = node.value if isinstance(node, SequenceNode) else [node]
        out = tuple(self.scalar(n, what) for n in items)
        if not out or any(not s.strip() for s in out):
            raise self.fail(node, f"{what} must not be empty")
        return out

    def boolean(self, node: Node, what: str) -> bool:
        value = self.scalar(node, what).lower()
        if value not in ("true", "false"):
            raise self.fail(node, f"{what} must be true or false, not {value!r}")
        return value == "true"

    def selector(self, node: Node, what: str) -> Selector:
        if isinstance(node, ScalarNode) and node.value in ("*", "any"):
            return Selector()
        keys = self.mapping(node, what, ("id", "name", "resourceGroup", "subscription", "tag", "addressPrefix"))
        if not keys:
            raise self.fail(node, f"{what} has no criterion (use '*' for any VNet)")
        tags: list[tuple[str, tuple[str, ...]]] = []
        if "tag" in keys:
            tag_node = keys["tag"][1]
            for k, (_, v) in self.mapping(tag_node, f"{what} tag", self._keys_of(tag_node)).items():
                tags.append((k, self.strings(v, f"tag {k!r}")))
            if not tags:
                raise self.fail(tag_node, f"{what} tag must name at least one tag")
        prefixes: list[IpNetwork] = []
        if "addressPrefix" in keys:
            node_p = keys["addressPrefix"][1]
            for text in self.strings(node_p, "addressPrefix"):
                try:
                    prefixes.append(ipaddress.ip_network(text, strict=True))
                except ValueError as exc:
                    raise self.fail(node_p, f"addressPrefix {text!r} is not a network prefix: {exc}") from None

        def get(key: str) -> tuple[str, ...]:
            return self.strings(keys[key][1], key) if key in keys else ()
        return Selector(ids=get("id"), names=get("name"), resource_groups=get("resourceGroup"),
                        subscriptions=get("subscription"), tags=tuple(tags), prefixes=tuple(prefixes))

    def _keys_of(self, node: Node) -> tuple[str, ...]:
        return tuple(str(k.value) for k, _ in node.value) if isinstance(node, MappingNode) else ()

    def side(self, node: Node, what: str) -> tuple[Selector, ...]:
        if isinstance(node, SequenceNode):
            if not node.value:
                raise self.fail(node, f"{what} must list at least one selector")
            return tuple(self.selector(n, what) for n in node.value)
        return (self.selector(node, what),)

    def expires(self, node: Node) -> datetime:
        text = self.scalar(node, "expires").strip()
        try:
            if len(text) == 10:
                day = date.fromisoformat(text)
                return datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC)  # valid through that day
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise self.fail(node, f"expires {text!r} is not a date (YYYY-MM-DD) or an ISO date-time") from None
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)

    def rule(self, kind: str, index: int, node: Node) -> Rule:
        allowed = ("name", "a", "b", "reason", "expires") if kind == "accepted" else ("name", "a", "b", "reason")
        keys = self.mapping(node, f"{kind} rule", allowed)
        if "a" not in keys:
            raise self.fail(node, f"{kind} rule needs side 'a' (a selector; 'b' defaults to any VNet)")
        name = self.scalar(keys["name"][1], "name") if "name" in keys else f"{kind}[{index}]"
        reason = self.scalar(keys["reason"][1], "reason").strip() if "reason" in keys else ""
        if kind == "accepted" and not reason:
            raise self.fail(node, f"accepted rule {name!r} needs a 'reason'")
        a = self.side(keys["a"][1], f"{kind} rule {name!r} side a")
        b = self.side(keys["b"][1], f"{kind} rule {name!r} side b") if "b" in keys else ()
        if kind != "forbidden":
            for side_key, selectors in (("a", a), ("b", b)):
                if any(s.tags for s in selectors):
                    raise self.fail(keys[side_key][1], f"{kind} rule {name!r} selects by tag: tags are set by "
                                    "resource owners, so they may raise a severity (forbidden) but never lower it; "
                                    "select by subscription, resource group or id")
        if kind == "accepted":
            for side_key, selectors in (("a", a), ("b", b)):
                unscoped = [s for s in selectors if s != Selector() and not s.scoped()]
                if (side_key == "a" and not all(s.scoped() for s in selectors)) or unscoped:
                    raise self.fail(keys[side_key][1], f"accepted rule {name!r} side {side_key} must name a scope an "
                                    "owner cannot forge: a literal subscription (with resourceGroup/name if you "
                                    "like) or resource ids under one; names and resource groups repeat across "
                                    "subscriptions")
        return Rule(kind=kind, name=name, a=a, b=b,
                    reason=reason, expires=self.expires(keys["expires"][1]) if "expires" in keys else None,
                    line=node.start_mark.line + 1,
                    expires_label=self.scalar(keys["expires"][1], "expires").strip() if "expires" in keys else "")

    def policy(self, root: Node | None) -> Policy:
        if root is None:
            raise self.fail(None, "empty policy file (an empty file would allow everything silently)")
        keys = self.mapping(root, "the policy", ("version", "unexpected", "notifyInfo", *KINDS))
        if "version" in keys and self.scalar(keys["version"][1], "version") != "1":
            raise self.fail(keys["version"][1], "unsupported version (expected 1)")
        unexpected = "warning"
        if "unexpected" in keys:
            unexpected = self.scalar(keys["unexpected"][1], "unexpected")
            if unexpected not in SEVERITIES:
                raise self.fail(keys["unexpected"][1], f"unexpected must be one of {', '.join(SEVERITIES)}")
        notify_info = self.boolean(keys["notifyInfo"][1], "notifyInfo") if "notifyInfo" in keys else False
        rules: list[Rule] = []
        for kind in KINDS:
            if kind not in keys:
                continue
            node = keys[kind][1]
            if isinstance(node, ScalarNode) and node.value in ("", "~", "null"):
                continue
            if not isinstance(node, SequenceNode):
                raise self.fail(node, f"{kind} must be a list of rules")
            rules += [self.rule(kind, i, n) for i, n in enumerate(node.value)]
        if not rules and "unexpected" not in keys:
            raise self.fail(root, "the policy has no rules (forbidden, allowed or accepted)")
        return Policy(rules=tuple(rules), unexpected=unexpected, notify_info=notify_info, source=self.source)


def parse_policy(text: str, *, source: str = "policy") -> Policy:
    """A policy from YAML text; PolicyError `SOURCE:LINE: message` on anything wrong."""
    size = len(text.encode("utf-8"))
    if size > MAX_POLICY_BYTES:
        raise PolicyError(f"{source}:1: policy is {size} bytes; at most {MAX_POLICY_BYTES} are read")
    try:
        _refuse_aliases(text, source)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise PolicyError(f"{source}:{line}: not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"{source}:1: not valid YAML: {exc}") from None
    return _Reader(source).policy(root)


def _refuse_aliases(text: str, source: str) -> None:
    """Anchors and aliases let a few bytes expand into huge rule lists (every pair pays for it): refused."""
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        anchor = getattr(event, "anchor", None)
        if isinstance(event, yaml.AliasEvent) or anchor:
            line = event.start_mark.line + 1 if event.start_mark is not None else 1
            raise PolicyError(f"{source}:{line}: YAML anchors and aliases (&{anchor}, "
                              f"*{anchor}) are not allowed in a policy; write each rule out")


def policy_warnings(policy: Policy) -> list[str]:
    """`FILE:LINE: ...` for rules an owner can steer: VNets named by name (or tag) alone match in any scope."""
    out = []
    for rule in policy.rules:
        for side, selectors in (("a", rule.a), ("b", rule.b)):
            if any(s.by_name_alone() for s in selectors):
                out.append(f"{policy.source}:{rule.line}: {rule.kind} rule {rule.name!r} side {side} selects VNets by "
                           "name alone: a VNet of that name in any subscription matches, and owners choose names; "
                           "add subscription, resourceGroup or id")
    return out


def load_policy(path: str | Path) -> Policy:
    """Read and check a policy file; PolicyError `FILE:LINE: message` (never a silent allow-all)."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_POLICY_BYTES:
            raise PolicyError(f"{p}:1: policy is {p.stat().st_size} bytes; at most {MAX_POLICY_BYTES} are read")
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"{p}:0: cannot read policy file: {exc.strerror or exc.__class__.__name__}") from None
    except UnicodeDecodeError:
        raise PolicyError(f"{p}:0: cannot read policy file: not UTF-8 text") from None
    return parse_policy(text, source=str(p))


Classifier = Callable[[Mapping[str, Any], bool], tuple[str, "str | None"]]


def classifier(policy: Policy, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Classifier:
    """The auditor's classifier: (pair json, opened?) -> (severity, policy reason)."""
    def classify(pair: Mapping[str, Any], opened: bool) -> tuple[str, str | None]:
        verdict = evaluate(policy, pair, now=clock())
        return severity_for(verdict, opened), verdict.reason
    return classify


def classifier_from_file(path: str | Path) -> Classifier:
    """Load the policy once (PolicyError `FILE:LINE: ...` at start-up) and classify with it."""
    return classifier(load_policy(path))


def annotate_diff(doc: Mapping[str, Any], policy: Policy, *, now: datetime) -> dict[str, Any]:
    """A copy of a `diff --json` document with `severity` and `policy` {kind, rule, reason} on every pair."""
    out = dict(doc)
    for verb in ("opened", "closed"):
        pairs = []
        for pair in doc.get(verb) or []:
            verdict = evaluate(policy, pair, now=now)
            pairs.append({**pair, "severity": severity_for(verdict, verb == "opened"),
                          "policy": {"kind": verdict.kind, "rule": verdict.rule, "reason": verdict.reason}})
        out[verb] = pairs
    return out


def forbidden_openings(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The opened pairs of an annotated diff document that the policy forbids."""
    return [p for p in doc.get("opened") or [] if (p.get("policy") or {}).get("kind") == "forbidden"]


def policy_lines(doc: Mapping[str, Any]) -> list[str]:
    """One readable line per annotated pair: `critical  opened  hub-01 <-> hub-03: forbidden by ...`."""
    lines = []
    for verb in ("opened", "closed"):
        for p in doc.get(verb) or []:
            names = " <-> ".join(ResourceId.parse(str(v)).name for v in p.get("vnets", []))
            lines.append(terminal_line(f"{p.get('severity', '?'):<8}  {verb:<6}  {names}: "
                                       f"{(p.get('policy') or {}).get('reason')}"))
    return lines
