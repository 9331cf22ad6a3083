"""The ER-transit report page: per-circuit matrices, domain pairs, audit timeline, as one self-contained HTML file.

Pure: the caller reads the snapshot, the policy and the audit log and writes the page; nothing here does I/O.
The transit rules stay in `transit.compute_pairs` (open / pending cells and domain pairs are read from its pairs)
and the hover texts are `explain`'s own Explanation texts.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.core.audit_query import (
    DELIVERY,
    AuditFilter,
    LoggedRecord,
    cause_texts,
    changes,
    parse_recorded_at,
    short_time,
    vnet_name,
    who_of,
)
from shared.core.explain import (
    CircuitAttempt,
    Explanation,
    RouteAttempt,
    _Candidate,
    _circuit_gaps,
    _flag_gaps,
    explain_pair,
)
from shared.core.model import PairIndex, PairSet, ResourceId, Route, Topology, TransitPair
from shared.core.policy import Policy, Selector, Verdict, evaluate
from shared.core.report_assets import REPORT_CSS, REPORT_SCRIPT
from shared.core.transit import VNET_GATEWAY, WAN_GATEWAY, Endpoint
from shared.core.views import _endpoint_json

OPEN, PENDING, BLOCKED, NOT_APPLICABLE = "open", "pending", "blocked", "n/a"
# Circuits with at most this many gateways are also drawn as a diagram (more would not be readable).
DIAGRAM_MAX_GATEWAYS = 12
# The timeline shows the newest runs first, at most this many (the audit log keeps every one).
TIMELINE_MAX_ROWS = 2000
WARNINGS_SHOWN = 500
# Hover texts are sent as templates: the five names of a cell (A's VNet, B's VNet, A's gateway, B's gateway, the
# circuit) become these private-use characters, so the ~100,000 cells of an enterprise estate share a few
# hundred strings. A text that already holds such a character is sent literally, marked by LITERAL.
_SLOTS = [chr(0xE000 + i) for i in range(5)]
_LITERAL = chr(0xE005)
_PRIVATE = re.compile("[\ue000-\ue0ff]")


@dataclass(frozen=True, slots=True)
class Cell:
    """One gateway pair on one circuit: `blocked_by` names the gateways whose flag blocks it.

    The hover text is kept as a template over the cell's five names (see `_template`); `text` is the text itself.
    """

    state: str
    blocked_by: tuple[ResourceId, ...] = ()
    by_circuit: bool = False
    template: str = ""
    names: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return expand_template(self.template, self.names)


@dataclass(frozen=True, slots=True)
class CircuitMatrix:
    circuit: ResourceId
    usable: bool
    problems: tuple[str, ...]  # why the circuit itself carries nothing (explain's circuit gaps)
    gateways: tuple[ResourceId, ...]  # sorted by id, as compute_pairs orders them
    cells: Mapping[tuple[int, int], Cell]  # (i, j) with i < j


@dataclass(slots=True)
class DomainPair:
    """The open VNet pairs between two gateways' domains (hub and spokes), gateways in id order."""

    gateways: tuple[ResourceId, ResourceId]
    circuits: set[ResourceId] = field(default_factory=set)
    vnet_pairs: int = 0
    pending: int = 0
    warned: int = 0
    forbidden: int = 0
    unexpected: int = 0
    policy_notes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class AuditView:
    """What the caller read from an audit log: its records (oldest first, parts joined), how many lines it has,
    and whether the chain verified (`problem` says where it broke, or what could not be read)."""

    source: str
    records: Sequence[LoggedRecord]
    lines: int
    verified: bool
    problem: str | None = None


# ------------------------------------------------------------------------------------------------ matrices

def _representative(ep: Endpoint) -> ResourceId | None:
    """The VNet that stands for a domain in explanations: a gateway's home VNet, else a hub's first VNet."""
    if ep.kind == VNET_GATEWAY:
        return next(iter(ep.domain), None)  # transit puts the home VNet first
    return min(ep.domain) if ep.domain else None


def _flag_checks(ea: Endpoint, eb: Endpoint) -> list[tuple[Endpoint, str, bool | None]] | None:
    """The flag each side must set for a route between them (as transit.route_verdict reads them); None: n/a."""
    if ea.kind == VNET_GATEWAY and eb.kind == VNET_GATEWAY:
        return [(ea, "allowRemoteVnetTraffic", ea.allow_vnet), (eb, "allowRemoteVnetTraffic", eb.allow_vnet)]
    if ea.kind == WAN_GATEWAY and eb.kind == WAN_GATEWAY:
        return None if ea.virtual_wan is not None and ea.virtual_wan == eb.virtual_wan else []
    return [(e, "allowNonVirtualWanTraffic" if e.kind == WAN_GATEWAY else "allowVirtualWanTraffic", e.allow_wan)
            for e in (ea, eb)]


# Slot ids: explanations of closed routes are written once per kind of route, with these as the names.
_SLOT_IDS = [ResourceId.parse("/" + slot) for slot in _SLOTS]


def _candidate(ep: Endpoint, gateway: ResourceId) -> _Candidate:
    return _Candidate(gateway=gateway, kind=ep.kind, membership=[], gateway_missing=[], circuits=list(ep.circuits),
                      allow_vnet=ep.allow_vnet, allow_wan=ep.allow_wan, virtual_wan=ep.virtual_wan)


@dataclass(frozen=True, slots=True)
class _Side:
    """What a matrix needs of one gateway, worked out once (ids hashed by their key strings in the hot loop)."""

    ep: Endpoint
    key: str
    name: str
    rep: ResourceId | None
    rep_name: str
    members: frozenset[str]
    odd: bool  # a name holds a private-use character, which would mix with the template slots
    shape: tuple[Any, ...]  # what a closed route's explanation depends on, besides names and the circuit

    @classmethod
    def of(cls, ep: Endpoint) -> _Side:
        rep = _representative(ep)
        names = " ".join(r.name for r in (ep.id, rep, ep.virtual_wan) if r is not None)
        return cls(ep=ep, key=ep.id.key, name=ep.id.name, rep=rep, rep_name=rep.name if rep is not None else "",
                   members=frozenset(v.key for v in ep.domain), odd=bool(_PRIVATE.search(names)),
                   shape=(ep.kind, ep.allow_vnet, ep.allow_wan, ep.virtual_wan.key if ep.virtual_wan else None))


class _MatrixBuilder:
    """The cells of every circuit; what repeats across ~100,000 cells of an enterprise estate is computed once."""

    def __init__(self, topology: Topology, pairs: PairSet, endpoints: Mapping[ResourceId, Endpoint],
                 routes: Mapping[tuple[str, str, str], bool]) -> None:
        self.topology, self.pairs, self.endpoints, self.routes = topology, pairs, endpoints, routes
        self.closed: dict[tuple[Any, ...], tuple[str, str, bool, tuple[int, ...]]] = {}

    def explain(self, a: ResourceId, b: ResourceId) -> str:
        return explain_pair(self.topology, a, b, pairs=self.pairs, endpoints=self.endpoints).text()

    def cell(self, circuit: ResourceId, sa: _Side, sb: _Side, circuit_gaps: tuple[str, ...], circuit_name: str
             ) -> Cell:
        a, b, ea, eb = sa.rep, sb.rep, sa.ep, sb.ep
        names = (sa.rep_name, sb.rep_name, sa.name, sb.name, circuit_name)
        where = f"circuit {circuit_name}, {sa.name} <-> {sb.name}"
        if a is None or b is None:
            return Cell(NOT_APPLICABLE, template=_template(
                f"{where}: not applicable: no VNet is behind {(sa if a is None else sb).name}", names), names=names)
        route_pending = self.routes.get((circuit.key, sa.key, sb.key) if sa.key < sb.key else
                                        (circuit.key, sb.key, sa.key))
        if route_pending is not None:
            state = PENDING if route_pending else OPEN
            return Cell(state, template=_template(f"{where}: {state}\n{self.explain(a, b)}", names), names=names)
        if a.key == b.key or not sa.members.isdisjoint(sb.members):
            return Cell(NOT_APPLICABLE, template=_template(
                f"{where}: not applicable: the same VNets are behind both gateways\n{self.explain(a, b)}", names),
                names=names)
        pair = ((a.key, b.key) if a.key < b.key else (b.key, a.key)) in self.pairs.pairs
        if pair or sa.odd or sb.odd:
            state, tpl, by_circuit, blockers = self._closed(circuit, ea, eb, circuit_gaps, literal=(a, b))
            if pair:  # open over another route: the pair's own explanation says which
                tpl = tpl.split("\n", 1)[0] + "\n" + self.explain(a, b)
            template = _template(tpl, names)
        else:
            shape = (circuit.key, sa.shape, sb.shape)
            found = self.closed.get(shape)
            if found is None:
                found = self.closed[shape] = self._closed(circuit, ea, eb, circuit_gaps, literal=None)
            state, template, by_circuit, blockers = found
        return Cell(state, blocked_by=tuple((ea.id, eb.id)[i] for i in blockers), by_circuit=by_circuit,
                    template=template, names=names)

    def _closed(self, circuit: ResourceId, ea: Endpoint, eb: Endpoint, circuit_gaps: tuple[str, ...], *,
                literal: tuple[ResourceId, ResourceId] | None) -> tuple[str, str, bool, tuple[int, ...]]:
        """A closed route's state, text (over slot names unless `literal` gives the VNets), whether the circuit
        blocks it, and which sides' flags do (0: A, 1: B).

        The text is explain_pair's, restricted to this circuit and gateway pair (its full form scans every gateway
        of the estate).
        """
        a, b, ga, gb, c = _SLOT_IDS if literal is None else (*literal, ea.id, eb.id, circuit)
        gaps = tuple(_template(g, ("", "", "", "", circuit.name)) for g in circuit_gaps) if literal is None else \
            circuit_gaps
        checks = _flag_checks(ea, eb)
        blockers = tuple(i for i, (_, _, value) in enumerate(checks or ()) if value is False)
        flags = sorted({flag for _, flag, value in checks or () if value is False})
        if checks is None:
            head, state = ("not applicable: hubs of one Virtual WAN talk over its backbone, not ExpressRoute",
                           NOT_APPLICABLE)
        elif gaps:
            head, state = "blocked by the circuit", BLOCKED
        elif blockers:
            head, state = f"blocked by {' and '.join((ga, gb)[i].name for i in blockers)} ({', '.join(flags)})", \
                BLOCKED
        else:
            head, state = "not applicable: no route between these domains", NOT_APPLICABLE
        missing = tuple(_flag_gaps(_candidate(ea, ga), _candidate(eb, gb)))
        attempt = CircuitAttempt(c, gaps, (RouteAttempt((ga, gb), missing),))
        body = Explanation(a=a, b=b, open=False, missing=tuple(dict.fromkeys((*gaps, *missing))),
                           circuits=(attempt,)).text()
        text = f"circuit {c.name}, {ga.name} <-> {gb.name}: {head}\n{body}"
        return state, text, bool(gaps), blockers if state == BLOCKED else ()


def circuit_matrices(topology: Topology, pairs: PairSet, endpoints: Mapping[ResourceId, Endpoint], *,
                     paths: OpenPaths | None = None) -> list[CircuitMatrix]:
    """Per circuit, every pair of the gateways (VNet and Virtual WAN) linked to it, with its state and why.

    A cell is open (or pending) when compute_pairs carries some VNet pair over that circuit and gateway pair.
    `paths`: `domain_pairs(pairs)` when already computed.
    """
    by_circuit: dict[ResourceId, list[Endpoint]] = {}
    for ep in sorted(endpoints.values(), key=lambda e: e.id):
        for circuit in ep.circuits:
            by_circuit.setdefault(circuit, []).append(ep)
    builder = _MatrixBuilder(topology, pairs, endpoints, (paths or domain_pairs(pairs)).routes)
    sides = {g: _Side.of(e) for g, e in endpoints.items()}
    out = []
    for circuit, eps in sorted(by_circuit.items()):
        gaps = tuple(_circuit_gaps(topology, circuit))
        row = [sides[e.id] for e in eps]
        name = circuit.name
        cells = {(i, j): builder.cell(circuit, row[i], row[j], gaps, name)
                 for i in range(len(eps)) for j in range(i + 1, len(eps))}
        out.append(CircuitMatrix(circuit=circuit, usable=not gaps, problems=gaps,
                                 gateways=tuple(e.id for e in eps), cells=cells))
    return out


# ------------------------------------------------------------------------------------------------ domain pairs

class _PolicyCache:
    """Policy verdicts for many VNet pairs: two VNets that every rule side matches alike get the same verdict."""

    def __init__(self, policy: Policy, topology: Topology, now: datetime) -> None:
        self.policy, self.topology, self.now = policy, topology, now
        self.signatures: dict[tuple[bool, ...], int] = {}
        self.docs: dict[str, tuple[int, dict[str, Any]]] = {}
        self.verdicts: dict[tuple[int, int], Verdict] = {}

    def _doc(self, vnet: ResourceId) -> tuple[int, dict[str, Any]]:
        found = self.docs.get(vnet.key)
        if found is None:
            doc = _endpoint_json(self.topology, vnet, [])

            def side(selectors: tuple[Selector, ...]) -> bool:
                return not selectors or any(s.matches(doc) for s in selectors)
            signature = tuple(m for rule in self.policy.rules for m in (side(rule.a), side(rule.b)))
            found = self.docs[vnet.key] = (self.signatures.setdefault(signature, len(self.signatures)), doc)
        return found

    def verdict(self, a: ResourceId, b: ResourceId) -> Verdict:
        (sig_a, doc_a), (sig_b, doc_b) = self._doc(a), self._doc(b)
        found = self.verdicts.get((sig_a, sig_b))
        if found is None:
            found = self.verdicts[(sig_a, sig_b)] = evaluate(self.policy, {"endpoints": [doc_a, doc_b]}, now=self.now)
        return found


@dataclass(frozen=True, slots=True)
class OpenPaths:
    """The open VNet pairs grouped by the two gateways that carry them, and the pair totals.

    routes: (circuit, gateway, gateway) keys, gateways in key order -> True when every VNet pair it carries is still
    pending.
    """

    groups: list[DomainPair]
    confirmed: int
    pending: int
    routes: Mapping[tuple[str, str, str], bool]


def _pairs_with_routes(pairs: PairSet) -> Iterable[tuple[ResourceId, ResourceId, tuple[Route, ...]]]:
    if isinstance(pairs.pairs, PairIndex):
        return pairs.pairs.routes_by_pair()
    return ((p.a, p.b, p.routes) for p in pairs.pairs.values())


def domain_pairs(pairs: PairSet, *, topology: Topology | None = None, policy: Policy | None = None,
                 now: datetime | None = None) -> OpenPaths:
    """The open VNet pairs grouped by the two gateways that carry them (a pair over two gateway pairs is in both).

    With a policy (and the topology and time it is read at), each group counts its forbidden and unexpected pairs.
    One pass over the pairs (an enterprise estate has hundreds of thousands); what a pair's routes say (pending,
    warnings, groups) is worked out once per routes tuple, which compute_pairs shares between many pairs.
    """
    judge = _PolicyCache(policy, topology, now) if policy is not None and topology is not None and now else None
    # id(routes) -> [routes, a, b, pairs, forbidden, unexpected, notes]: the routes tuples live in `pairs`
    tally: dict[int, list[Any]] = {}
    for a, b, routes in _pairs_with_routes(pairs):
        entry = tally.get(id(routes))
        if entry is None:
            entry = tally[id(routes)] = [routes, a, b, 0, 0, 0, []]
        entry[3] += 1
        if judge is not None:
            verdict = judge.verdict(a, b)
            if verdict.kind in ("forbidden", "unexpected"):
                entry[4 if verdict.kind == "forbidden" else 5] += 1
                if len(entry[6]) < 3:
                    entry[6].append(f"{a.name} <-> {b.name}: {verdict.reason}")
    groups: dict[tuple[ResourceId, ResourceId], DomainPair] = {}
    route_pending: dict[tuple[str, str, str], bool] = {}
    pending_total = 0
    for routes, a, b, count, forbidden, unexpected, notes in tally.values():
        pair = TransitPair(a=a, b=b, routes=routes)
        pending, warned = pair.pending, bool(pair.warnings)
        pending_total += count * pending
        touched: dict[tuple[ResourceId, ResourceId], DomainPair] = {}
        for route in routes:
            g1, g2 = route.gateways
            key = (g1, g2) if g1 < g2 else (g2, g1)
            group = touched.get(key) or groups.get(key)
            if group is None:
                group = groups[key] = DomainPair(gateways=key)
            touched[key] = group
            group.circuits.add(route.circuit)
            rkey = (route.circuit.key, key[0].key, key[1].key)
            route_pending[rkey] = route_pending.get(rkey, True) and route.pending
        for group in touched.values():
            group.vnet_pairs += count
            group.pending += count * pending
            group.warned += count * warned
            group.forbidden += forbidden
            group.unexpected += unexpected
            group.policy_notes.extend(notes[:3 - len(group.policy_notes)])
    return OpenPaths(groups=[groups[k] for k in sorted(groups)], confirmed=len(pairs.pairs) - pending_total,
                     pending=pending_total, routes=route_pending)


# ------------------------------------------------------------------------------------------------ timeline

def timeline(records: Iterable[LoggedRecord]) -> list[dict[str, Any]]:
    """One row per run of the audit log, oldest first: `audit list`'s reading of it (parts joined, who, causes,
    the alert id and where it was delivered), without the delivery records themselves."""
    rows = []
    for change in reversed(changes(records, AuditFilter(outcomes=None))):
        doc = change.logged.record
        if doc.get("outcome") == DELIVERY:
            continue
        trigger = doc.get("trigger") if isinstance(doc.get("trigger"), Mapping) else {}
        assert isinstance(trigger, Mapping)
        when = parse_recorded_at(doc.get("eventTime")) or change.logged.recorded_at
        rows.append({
            "time": short_time(when) + " UTC", "seq": change.logged.seq, "who": who_of(doc) or None,
            "outcome": str(doc.get("outcome") or ""),
            "trigger": " ".join(str(x).removeprefix("Microsoft.Network/")
                                for x in (trigger.get("kind"), trigger.get("operation")) if x),
            "resource": vnet_name(trigger.get("resourceId")) if trigger.get("resourceId") else "",
            "opened": len(doc.get("opened") or []), "closed": len(doc.get("closed") or []),
            "pending": len(doc.get("pending") or []), "causes": cause_texts(doc, "opened", "closed"),
            "baseline": bool(doc.get("baseline")), "detail": doc.get("detail"),
            "alerts": [change.alert_id] if change.alert_id else [], "deliveries": list(change.deliveries),
        })
    return rows


# ------------------------------------------------------------------------------------------------ page data

def _template(text: str, names: Sequence[str]) -> str:
    """`text` with the cell's names replaced by slot characters (longest name first), or marked literal.

    Names hold no slot character (else the text would, and goes literally), so a name never matches across a slot
    already placed, and whatever the order of replacement the template expands back to the exact text.
    """
    if _PRIVATE.search(text):
        return _LITERAL + text
    slots: dict[str, str] = {}
    for i, name in enumerate(names):
        if name and name not in slots:
            slots[name] = _SLOTS[i]
    for name in sorted(slots, key=len, reverse=True):
        text = text.replace(name, slots[name])
    return text


def expand_template(template: str, names: Sequence[str]) -> str:
    """The inverse of `_template` (the page's script does the same)."""
    if template.startswith(_LITERAL):
        return template[1:]
    return re.sub("[\ue000-\ue004]", lambda m: names[ord(m.group(0)) - 0xE000], template)


def _domain_json(topology: Topology, ep: Endpoint) -> dict[str, Any]:
    rep = _representative(ep)
    if ep.kind == VNET_GATEWAY:
        hub_id = rep
        spokes = max(0, len(ep.domain) - 1)
        flags = {"allowRemoteVnetTraffic": ep.allow_vnet, "allowVirtualWanTraffic": ep.allow_wan}
    else:
        wgw = topology.wan_gateways.get(ep.id)
        hub_id = wgw.hub if wgw is not None else None
        spokes = len(ep.domain)
        flags = {"allowNonVirtualWanTraffic": ep.allow_wan}
    home = topology.vnets.get(hub_id) if hub_id is not None else None
    members = [topology.vnets.get(v) for v in ep.domain]
    search = " ".join(
        [ep.id.name, *(v.name for v in ep.domain), *{v.subscription for v in ep.domain},
         *(p for m in members if m is not None for p in m.address_prefixes)]).lower()
    return {
        "id": ep.id.value, "name": ep.id.name, "kind": ep.kind, "hub": hub_id.name if hub_id else "?",
        "hubId": hub_id.value if hub_id else "", "rep": rep.name if rep else "", "spokes": spokes,
        "prefixes": list(home.address_prefixes) if home is not None else [],
        "sub": ep.id.subscription, "flags": {k: v for k, v in flags.items()}, "search": search,
        "settling": ep.settling,
    }


def report_data(topology: Topology, pairs: PairSet, endpoints: Mapping[ResourceId, Endpoint], *, source: str,
                generated_at: datetime, policy: Policy | None = None, audit: AuditView | None = None,
                ) -> dict[str, Any]:
    """Everything the page shows, as JSON-ready data (names as the resources spell them; nothing escaped yet)."""
    paths = domain_pairs(pairs, topology=topology, policy=policy, now=generated_at)
    matrices = circuit_matrices(topology, pairs, endpoints, paths=paths)
    groups = paths.groups
    order = sorted(endpoints, key=lambda g: g)
    index = {g: i for i, g in enumerate(order)}
    domains = [_domain_json(topology, endpoints[g]) for g in order]
    templates: dict[str, int] = {}
    circuits = []
    circuit_index = {m.circuit: i for i, m in enumerate(matrices)}
    for m in matrices:
        codes, tips = [], []
        for i in range(len(m.gateways)):
            for j in range(i + 1, len(m.gateways)):
                cell = m.cells[(i, j)]
                codes.append(_code(cell, m.gateways[i], m.gateways[j]))
                tips.append(templates.setdefault(cell.template, len(templates)))
        res = topology.circuits.get(m.circuit)
        circuits.append({"id": m.circuit.value, "name": m.circuit.name, "usable": m.usable,
                         "problems": list(m.problems), "known": res is not None,
                         "gw": [index[g] for g in m.gateways], "cells": "".join(codes), "tips": tips})
    counts = {
        "vnets": sum(1 for v in topology.vnets.values() if v.present),
        "gateways": sum(1 for g in topology.gateways.values() if g.is_expressroute),
        "wanGateways": len(topology.wan_gateways),
        "circuits": len(set(topology.circuits) | set(circuit_index)),  # with gateways or in the snapshot
        "openPairs": paths.confirmed,
        "pendingPairs": paths.pending,
        "domainPairs": len(groups),
        "warnings": len(pairs.warnings),
    }
    return {
        "source": source, "generatedAt": generated_at.isoformat(), "counts": counts,
        "policy": policy.source if policy is not None else None,
        "domains": domains, "circuits": circuits, "templates": list(templates),
        "pairs": [[index[g.gateways[0]], index[g.gateways[1]], sorted(circuit_index[c] for c in g.circuits),
                   g.vnet_pairs, g.pending, g.warned, g.forbidden, g.unexpected, g.policy_notes] for g in groups],
        "warnings": list(pairs.warnings),
        "audit": None if audit is None else {
            "source": audit.source, "verified": audit.verified, "problem": audit.problem,
            "records": audit.lines, "runs": timeline(audit.records)},
    }


def _code(cell: Cell, row: ResourceId, col: ResourceId) -> str:
    """One character per cell: o open, p pending, a/b/x blocked by the row's / column's / both flags, c by the
    circuit, n not applicable."""
    if cell.state == OPEN:
        return "o"
    if cell.state == PENDING:
        return "p"
    if cell.state == NOT_APPLICABLE:
        return "n"
    if cell.by_circuit:
        return "c"
    by_row, by_col = row in cell.blocked_by, col in cell.blocked_by
    return "x" if by_row and by_col else "a" if by_row else "b"


# ------------------------------------------------------------------------------------------------ HTML

def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _script_json(data: Any) -> str:
    """JSON safe inside <script type="application/json">: no `<`, `>` or `&` can end or confuse the element."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


def _summary_html(data: Mapping[str, Any]) -> str:
    c = data["counts"]
    cards = [("VNets", c["vnets"]), ("ER gateways", c["gateways"]), ("Virtual WAN ER gateways", c["wanGateways"]),
             ("circuits", c["circuits"]), ("open pairs", c["openPairs"]), ("pending pairs", c["pendingPairs"]),
             ("domain pairs", c["domainPairs"]), ("warnings", c["warnings"])]
    items = "".join(f'<div class="card" data-count="{_e(k)}"><b>{v:,}</b><span>{_e(k)}</span></div>' for k, v in cards)
    audit = data.get("audit")
    prov = [f"<dt>made</dt><dd>{_e(data['generatedAt'])}</dd>", f"<dt>from</dt><dd>{_e(data['source'])}</dd>"]
    if data.get("policy"):
        prov.append(f"<dt>policy</dt><dd>{_e(data['policy'])}</dd>")
    if audit is not None:
        verdict = (f'<span class="ok">audit chain verified ({audit["records"]:,} records)</span>' if audit["verified"]
                   else f'<span class="bad">audit chain NOT verified: {_e(audit["problem"])}</span>')
        prov.append(f"<dt>audit log</dt><dd>{_e(audit['source'])}: <span id=\"audit-verdict\">{verdict}</span></dd>")
    return f'<section id="summary"><div class="cards">{items}</div><dl class="prov">{"".join(prov)}</dl></section>'


def _timeline_html(audit: Mapping[str, Any] | None) -> str:
    if audit is None:
        return ""
    runs = audit["runs"]
    shown = list(reversed(runs))[:TIMELINE_MAX_ROWS]
    rows = []
    for r in shown:
        klass = "chg" if r["opened"] or r["closed"] else ("fail" if r["outcome"] not in (
            "committed", "no change", "duplicate") else "")
        causes = "<br>".join(_e(c) for c in r["causes"][:5]) + (
            f"<br>… {len(r['causes']) - 5} more" if len(r["causes"]) > 5 else "")
        what = _e(r["trigger"]) + (f" <i>{_e(r['resource'])}</i>" if r["resource"] else "")
        note = " (baseline)" if r["baseline"] else ""
        detail = f"<br><small>{_e(r['detail'])}</small>" if r.get("detail") else ""
        rows.append(
            f'<tr class="{klass}"><td>{_e(r["time"])}</td><td>{_e(r["who"] or "—")}</td><td>{what}</td>'
            f'<td>{_e(r["outcome"])}{note}{detail}</td><td>{causes or "—"}</td><td class="num">{r["opened"]}</td>'
            f'<td class="num">{r["closed"]}</td><td class="num">{r["pending"]}</td>'
            f'<td><code>{"<br>".join(_e(a) for a in r["alerts"]) or "—"}</code>'
            f'{"".join(f"<br><small>{_e(d)}</small>" for d in r["deliveries"])}</td></tr>')
    more = (f"<p>Showing the newest {TIMELINE_MAX_ROWS:,} of {len(runs):,} runs.</p>"
            if len(runs) > TIMELINE_MAX_ROWS else "")
    return (f'<section id="timeline"><h2>Timeline (audit log)</h2>{more}<div class="scroll"><table class="list">'
            "<thead><tr>"
            "<th>time</th><th>who</th><th>trigger</th><th>outcome</th><th>cause</th><th>opened</th><th>closed</th>"
            f'<th>pending</th><th>alert id</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div></section>')


def _circuits_html(data: Mapping[str, Any]) -> str:
    parts = []
    for i, c in enumerate(data["circuits"]):
        if not c["gw"]:
            continue
        n = len(c["gw"])
        opened = c["cells"].count("o")
        blocked = sum(c["cells"].count(k) for k in "abxc")
        state = "" if c["usable"] else f' <span class="bad">carries nothing: {_e("; ".join(c["problems"]))}</span>'
        unknown = "" if c["known"] else ' <span class="warn">not in the snapshot: assumed usable</span>'
        is_open = " open" if n <= DIAGRAM_MAX_GATEWAYS else ""
        parts.append(
            f'<details class="circuit" data-circuit="{i}"{is_open}><summary><b>{_e(c["name"])}</b> · {n} gateways · '
            f'{opened} open · {blocked} blocked{state}{unknown}</summary><div class="host"></div></details>')
    return ('<section id="circuits"><h2>Circuits</h2><p class="hint">Each matrix pairs the gateways linked to the '
            "circuit; hover a cell for the explanation. Large circuits are drawn when opened.</p>"
            + "".join(parts) + "</section>")


LEGEND = ('<p class="legend"><span class="cell o">⇄</span> open <span class="cell p">◔</span> pending (settling) '
          '<span class="cell a">✕②</span> blocked, by the flag of the gateway named (② here) '
          '<span class="cell c">⊘</span> blocked by the circuit <span class="cell n">·</span> not applicable'
          '<span class="pol-f">forbidden</span><span class="pol-u">unexpected</span> by the policy</p>')


def render_report(data: Mapping[str, Any], *, title: str = "ER-transit report") -> str:
    """The whole page: static summary and timeline, the rest drawn by the inline script from the inline data."""
    warnings = data["warnings"]
    warn_items = "".join(f"<li>{_e(w)}</li>" for w in warnings[:WARNINGS_SHOWN])
    warn_more = f"<p>… and {len(warnings) - WARNINGS_SHOWN:,} more.</p>" if len(warnings) > WARNINGS_SHOWN else ""
    warn_html = (f'<section id="warnings"><details><summary>{len(warnings):,} warning(s)</summary><ul>{warn_items}'
                 f"</ul>{warn_more}</details></section>") if warnings else ""
    csp = (f"default-src 'none'; script-src {_csp_hash(REPORT_SCRIPT)}; style-src {_csp_hash(REPORT_CSS)}; "
           "img-src data:; base-uri 'none'; form-action 'none'")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{_e(csp)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{REPORT_CSS}</style></head><body>"
        f"<header><h1>{_e(title)}</h1></header><main>"
        + _summary_html(data) + LEGEND + _circuits_html(data)
        + '<section id="paths"><h2>Open paths by domain pair</h2>'
        '<p class="hint">One row per pair of gateways (hub and its spokes on each side). Search by VNet name, '
        'prefix, subscription or circuit; the page address may carry it as <code>#q=…</code>.</p>'
        '<input id="q" type="search" placeholder="VNet, prefix, subscription, circuit" autocomplete="off">'
        '<p id="match-count"></p><table class="list" id="pair-table"><thead><tr><th>domain A (hub)</th><th>spokes</th>'
        '<th>⇄</th><th>domain B (hub)</th><th>spokes</th><th>circuits</th><th>VNet pairs</th><th>pending</th>'
        '<th>policy</th></tr></thead><tbody></tbody></table><button id="more" type="button" hidden>show more</button>'
        "</section>"
        + _timeline_html(data.get("audit")) + warn_html
        + f'</main><script type="application/json" id="report-data">{_script_json(data)}</script>'
        f"<script>{REPORT_SCRIPT}</script></body></html>\n"
    )


def build_report(topology: Topology, pairs: PairSet, endpoints: Mapping[ResourceId, Endpoint], *, source: str,
                 generated_at: datetime, policy: Policy | None = None, audit: AuditView | None = None) -> str:
    """The report page for a topology (and its computed pairs and endpoints) as one HTML string."""
    return render_report(report_data(topology, pairs, endpoints, source=source, generated_at=generated_at,
                                     policy=policy, audit=audit))
