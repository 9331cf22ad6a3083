"""The report page's data (matrices, domain pairs, timeline) against compute_pairs, and its escaping."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.core.audit_query import LoggedRecord, PartJoiner
from shared.core.explain import explain_pair
from shared.core.model import PairSet, ResourceId, Topology
from shared.core.policy import evaluate, parse_policy
from shared.core.report import (
    BLOCKED,
    NOT_APPLICABLE,
    OPEN,
    PENDING,
    AuditView,
    _template,
    build_report,
    circuit_matrices,
    domain_pairs,
    expand_template,
    report_data,
    timeline,
)
from shared.core.snapshot import parse_resources
from shared.core.transit import compute_pairs, endpoints_of, route_verdict
from shared.core.views import pair_json
from tests.builders import (
    Resource,
    circuit,
    connection,
    gateway,
    hub_and_spoke,
    hub_connection,
    lab,
    small_topology,
    virtual_hub,
    vnet,
    wan_gateway,
)
from tests.unit.test_properties import TopologySpec, render, topology_specs

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def computed(resources: list[Resource]) -> tuple[Topology, PairSet, Any]:
    topology = parse_resources(resources)
    return topology, compute_pairs(topology), endpoints_of(topology)


def cells_by_name(resources: list[Resource]) -> dict[tuple[str, str, str], Any]:
    topology, pairs, endpoints = computed(resources)
    out = {}
    for m in circuit_matrices(topology, pairs, endpoints):
        for (i, j), cell in m.cells.items():
            out[(m.circuit.name, m.gateways[i].name, m.gateways[j].name)] = cell
    return out


# -- the lab ---------------------------------------------------------------------------------------------------------

def test_lab_matrix_after_enabling_gateways_1_and_2_opens_1_2_and_gateway_3_blocks_the_rest() -> None:
    cells = cells_by_name(lab(enabled=(1, 2)))
    assert set(cells) == {("er-lab", "ergw-01", "ergw-02"), ("er-lab", "ergw-01", "ergw-03"),
                          ("er-lab", "ergw-02", "ergw-03")}
    assert cells[("er-lab", "ergw-01", "ergw-02")].state == OPEN
    for other in ("ergw-01", "ergw-02"):
        cell = cells[("er-lab", other, "ergw-03")]
        assert cell.state == BLOCKED
        assert [g.name for g in cell.blocked_by] == ["ergw-03"]
        assert "ergw-03 allowRemoteVnetTraffic is false" in cell.text
        assert f"{other} allowRemoteVnetTraffic" not in cell.text


def test_lab_matrix_with_only_gateway_2_enabled_shows_gateway_1_blocking_its_pair_with_2() -> None:
    cells = cells_by_name(lab(enabled=(2,)))
    assert [g.name for g in cells[("er-lab", "ergw-01", "ergw-02")].blocked_by] == ["ergw-01"]
    assert [g.name for g in cells[("er-lab", "ergw-01", "ergw-03")].blocked_by] == ["ergw-01", "ergw-03"]


def test_open_cell_hover_text_is_the_explain_text_of_the_two_hubs() -> None:
    resources = lab(enabled=(1, 2))
    topology, pairs, endpoints = computed(resources)
    cell = cells_by_name(resources)[("er-lab", "ergw-01", "ergw-02")]
    hubs = sorted(v for v in topology.vnets if v.name in ("hub-01", "hub-02"))
    assert cell.text.endswith(explain_pair(topology, hubs[0], hubs[1]).text())


def test_unusable_circuit_blocks_every_cell_by_the_circuit() -> None:
    resources = small_topology([{}, {}], circuits=1, circuit_states={0: {"provider_state": "NotProvisioned"}})
    topology, pairs, endpoints = computed(resources)
    (m,) = circuit_matrices(topology, pairs, endpoints)
    assert not m.usable and m.problems
    (cell,) = m.cells.values()
    assert cell.state == BLOCKED and cell.by_circuit and "NotProvisioned" in cell.text


def test_settling_gateway_makes_its_cells_pending() -> None:
    resources = lab(enabled=(1, 2))
    for r in resources:
        if r["name"] == "ergw-02":
            r["properties"]["provisioningState"] = "Updating"
    assert cells_by_name(resources)[("er-lab", "ergw-01", "ergw-02")].state == PENDING


def test_virtual_wan_hubs_of_one_wan_are_not_applicable_and_a_hub_blocks_by_its_own_flag() -> None:
    er = circuit("er-w")
    vhubs = [virtual_hub(f"vhub-{i}", "wan-a") for i in (1, 2)]
    members = [vnet(f"vwan-{i}", f"10.5{i}.0.0/24") for i in (1, 2)]
    hub = vnet("hub-01", "10.1.0.0/16")
    gw = gateway("ergw-01", hub, allow_remote=True, allow_wan=True)
    resources = [er, *vhubs, *members, hub, gw, connection("conn-01", gw, er["id"]),
                 hub_connection(vhubs[0], members[0]), hub_connection(vhubs[1], members[1]),
                 wan_gateway("wgw-1", vhubs[0], [er["id"]], allow_non_wan=True),
                 wan_gateway("wgw-2", vhubs[1], [er["id"]], allow_non_wan=False)]
    cells = cells_by_name(resources)
    assert cells[("er-w", "wgw-1", "wgw-2")].state == NOT_APPLICABLE
    assert cells[("er-w", "wgw-1", "ergw-01")].state == OPEN  # gateways in id order: expressRouteGateways first
    blocked = cells[("er-w", "wgw-2", "ergw-01")]
    assert blocked.state == BLOCKED and [g.name for g in blocked.blocked_by] == ["wgw-2"]
    assert "wgw-2 allowNonVirtualWanTraffic is false" in blocked.text


# -- against compute_pairs on generated topologies -------------------------------------------------------------------

def routes_of(pairs: PairSet) -> dict[tuple[str, ...], bool]:
    """(circuit, gateway, gateway) -> whether every VNet pair it carries is pending, read from compute_pairs."""
    out: dict[tuple[str, ...], bool] = {}
    for p in pairs.pairs.values():
        for r in p.routes:
            key = (r.circuit.key, *sorted(g.key for g in r.gateways))
            out[key] = out.get(key, True) and r.pending
    return out


@settings(max_examples=80, deadline=None)
@given(topology_specs())
def test_matrix_cells_agree_with_compute_pairs_and_route_verdict(spec: TopologySpec) -> None:
    topology, pairs, endpoints = computed(render(spec))
    routes = routes_of(pairs)
    seen = set()
    for m in circuit_matrices(topology, pairs, endpoints):
        assert list(m.gateways) == sorted(g for g, e in endpoints.items() if m.circuit in e.circuits)
        for (i, j), cell in m.cells.items():
            ga, gb = m.gateways[i], m.gateways[j]
            key = (m.circuit.key, *sorted((ga.key, gb.key)))
            seen.add(key)
            if cell.state in (OPEN, PENDING):
                assert key in routes and (cell.state == PENDING) == routes[key]
            else:
                assert key not in routes
            allowed, _ = route_verdict(endpoints[ga], endpoints[gb])
            if cell.state == BLOCKED:
                assert cell.by_circuit or not allowed
                assert set(cell.blocked_by) <= {ga, gb}
                assert cell.by_circuit or cell.blocked_by
            assert cell.text.startswith(f"circuit {m.circuit.name}, {ga.name} <-> {gb.name}: ")
    # Every route compute_pairs found is a cell of some matrix.
    assert set(routes) <= seen


@settings(max_examples=80, deadline=None)
@given(topology_specs())
def test_closed_cell_text_is_part_of_the_full_explanation_of_its_hubs(spec: TopologySpec) -> None:
    topology, pairs, endpoints = computed(render(spec))
    for m in circuit_matrices(topology, pairs, endpoints):
        for (i, j), cell in m.cells.items():
            if cell.state != BLOCKED:
                continue
            ea, eb = endpoints[m.gateways[i]], endpoints[m.gateways[j]]
            a = next(iter(ea.domain)) if ea.kind == "vnetGateway" else min(ea.domain)
            b = next(iter(eb.domain)) if eb.kind == "vnetGateway" else min(eb.domain)
            full = explain_pair(topology, a, b).text().splitlines()
            for line in cell.text.splitlines()[1:]:
                assert line in full, (line, full)


@settings(max_examples=80, deadline=None)
@given(topology_specs())
def test_domain_pairs_group_exactly_the_pairs_of_compute_pairs(spec: TopologySpec) -> None:
    topology, pairs, endpoints = computed(render(spec))
    expected: dict[tuple[str, str], set[tuple[str, str]]] = {}
    circuits: dict[tuple[str, str], set[str]] = {}
    for key, p in pairs.pairs.items():
        for r in p.routes:
            g = tuple(sorted(x.key for x in r.gateways))
            expected.setdefault(g, set()).add(key)  # type: ignore[arg-type]
            circuits.setdefault(g, set()).add(r.circuit.key)  # type: ignore[arg-type]
    groups = domain_pairs(pairs).groups
    assert {tuple(g.key for g in d.gateways): d.vnet_pairs for d in groups} == {k: len(v) for k, v in
                                                                               expected.items()}
    assert {tuple(g.key for g in d.gateways): {c.key for c in d.circuits} for d in groups} == circuits
    for d in groups:
        keys = expected[tuple(g.key for g in d.gateways)]  # type: ignore[index]
        assert d.pending == sum(pairs.pairs[k].pending for k in keys)


def test_domain_pairs_of_hubs_with_spokes_count_every_vnet_pair_once() -> None:
    resources = small_topology([{"spokes": [{}, {}]}, {"spokes": [{}]}, {"allow_remote": False}])
    topology, pairs, endpoints = computed(resources)
    (group,) = domain_pairs(pairs).groups
    assert [g.name for g in group.gateways] == ["ergw-1", "ergw-2"]
    assert group.vnet_pairs == 3 * 2 == len(pairs.pairs)


def test_policy_counts_forbidden_and_unexpected_pairs_as_evaluate_does() -> None:
    resources = small_topology([{"spokes": [{}, {}]}, {"spokes": [{}]}, {}])
    topology, pairs, _ = computed(resources)
    policy = parse_policy("forbidden:\n  - name: no-spoke-11\n    a: {name: spoke-11}\n"
                          "allowed:\n  - name: hubs\n    a: {name: 'hub-*'}\n")
    groups = domain_pairs(pairs, topology=topology, policy=policy, now=NOW).groups
    eps = endpoints_of(topology)
    verdicts = [evaluate(policy, pair_json(p, topology, endpoints=eps), now=NOW).kind for p in pairs.pairs.values()]
    assert sum(g.forbidden for g in groups) == verdicts.count("forbidden") > 0
    assert sum(g.unexpected for g in groups) == verdicts.count("unexpected") > 0
    assert any("forbidden by 'no-spoke-11'" in note for g in groups for note in g.policy_notes)


# -- hover text templates ----------------------------------------------------------------------------------------------

NAMES = st.lists(st.text(min_size=0, max_size=6), min_size=5, max_size=5)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60), NAMES)
def test_hover_text_templates_expand_back_to_the_exact_text(text: str, names: list[str]) -> None:
    combined = text + "".join(names[:3]) + text
    assert expand_template(_template(combined, names), names) == combined


def test_template_replaces_the_longer_of_two_overlapping_names() -> None:
    names = ["hub-1", "hub-10", "gw", "gw-x", "er"]
    text = "hub-10 <-> hub-1 via gw-x and gw on er"
    assert expand_template(_template(text, names), names) == text
    assert "hub" not in _template(text, names)


# -- timeline ---------------------------------------------------------------------------------------------------------

def logged(records: list[dict[str, Any]]) -> list[LoggedRecord]:
    """Records as the audit reader yields them (parts joined)."""
    joiner, out = PartJoiner(), []
    for i, rec in enumerate(records, 1):
        rec = {"time": "2026-11-20T09:00:00Z", **rec}
        found = joiner.feed(rec, file="audit-2026-11-20.jsonl", line=i, recorded_at=NOW)
        if found is not None:
            out.append(found)
    return out


def test_timeline_joins_parts_and_takes_alert_ids_from_delivery_records() -> None:
    cause = [{"text": "ergw-01 allowRemoteVnetTraffic false -> true"}]
    records = [
        {"seq": 1, "runId": "r1", "outcome": "committed", "caller": "bob", "eventTime": "2026-11-20T09:00:00Z",
         "trigger": {"kind": "event", "operation": "Microsoft.Network/virtualNetworkGateways/write",
                     "resourceId": "/x/ergw-01"}, "opened": [{"cause": cause}] * 3, "closed": [], "part": 1,
         "parts": 2},
        {"seq": 2, "runId": "r1", "outcome": "committed", "opened": [{"cause": cause}] * 2, "closed": [{"cause": []}],
         "part": 2, "parts": 2},
        {"seq": 3, "runId": "r1", "outcome": "delivery", "delivered": ["abc123:slack", "abc123:teams"],
         "undelivered": []},
    ]
    (row,) = timeline(logged(records))
    assert (row["opened"], row["closed"], row["who"], row["alerts"]) == (5, 1, "bob", ["abc123"])
    assert row["deliveries"] == ["slack", "teams"]
    assert row["causes"] == ["ergw-01 allowRemoteVnetTraffic false -> true"]
    assert row["trigger"] == "event virtualNetworkGateways/write" and row["resource"] == "ergw-01"
    assert row["time"] == "2026-11-20 09:00:00 UTC"


# -- the page --------------------------------------------------------------------------------------------------------

# ARM names cannot hold "/", so the names are hostile without it; callers, causes and sources carry the rest.
HOSTILE = ['<script>alert(1)<script>', '"><img src=x onerror=alert(2)>', "<style><b>x", "it's \u2028 & \ue001"]
HOSTILE_TEXT = ["</script><script>alert(3)</script>", "</style><b>y", "<!--", "]]>"]


def hostile_topology() -> list[Resource]:
    er = circuit(HOSTILE[2])
    hubs = [vnet(HOSTILE[i], f"10.{i + 1}.0.0/16", tags={"owner": HOSTILE[1]}) for i in range(2)]
    gws = [gateway(HOSTILE[3] + str(i), hubs[i], allow_remote=True) for i in range(2)]
    spoke = vnet("spoke<!--", "10.9.0.0/24")
    hub_and_spoke(hubs[0], spoke)
    return [er, *hubs, *gws, spoke, *(connection(f"c{i}", gws[i], er["id"]) for i in range(2))]


def page_of(resources: list[Resource], **kwargs: Any) -> tuple[str, dict[str, Any]]:
    topology, pairs, endpoints = computed(resources)
    page = build_report(topology, pairs, endpoints, source=kwargs.pop("source", "test <snapshot>"),
                        generated_at=NOW, **kwargs)
    data = json.loads(re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page,
                                re.S).group(1))  # type: ignore[union-attr]
    return page, data


def test_hostile_names_callers_and_sources_never_reach_the_page_as_markup() -> None:
    records = logged([{"seq": 1, "runId": "r", "outcome": "committed", "caller": HOSTILE_TEXT[0],
                       "eventTime": HOSTILE[1], "detail": HOSTILE_TEXT[1], "alertId": HOSTILE_TEXT[0],
                       "trigger": {"kind": "event", "operation": HOSTILE_TEXT[0], "resourceId": "/x/" + HOSTILE[0]},
                       "opened": [{"cause": [{"text": HOSTILE_TEXT[1]}]}], "closed": []},
                      {"seq": 2, "runId": "r", "outcome": "delivery", "delivered": [HOSTILE_TEXT[0] + ":x"]}])
    audit = AuditView(source=HOSTILE_TEXT[1], records=records, lines=2, verified=False, problem=HOSTILE_TEXT[0])
    page, data = page_of(hostile_topology(), source=HOSTILE_TEXT[0] + HOSTILE_TEXT[2], audit=audit)
    assert page.count("<script") == 2 and page.count("</script>") == 2
    assert page.count("</style>") == 1 and page.count("<style>") == 1
    for markup in ("<img", "<b>x", "<b>y", "onerror=alert(2)>", "<!--", "<script>alert"):
        assert markup not in page
    # The data still carries the names exactly (the script writes them with textContent only).
    assert {d["hub"] for d in data["domains"]} == {HOSTILE[0], HOSTILE[1]}
    assert data["circuits"][0]["name"] == HOSTILE[2]
    assert data["pairs"] and data["pairs"][0][3] == 2  # both hubs and the spoke: hub0+spoke with hub1
    # Every hover text is recoverable, even where a name holds a template character.
    texts = [expand_template(data["templates"][t], [data["domains"][data["circuits"][0]["gw"][0]]["rep"],
                                                    data["domains"][data["circuits"][0]["gw"][1]]["rep"],
                                                    data["domains"][data["circuits"][0]["gw"][0]]["name"],
                                                    data["domains"][data["circuits"][0]["gw"][1]]["name"],
                                                    HOSTILE[2]]) for t in data["circuits"][0]["tips"]]
    assert all(t.startswith(f"circuit {HOSTILE[2]}, ") for t in texts)


def test_page_script_never_sets_html_from_data() -> None:
    from shared.core.report_assets import REPORT_SCRIPT

    assert "innerHTML" not in REPORT_SCRIPT and "outerHTML" not in REPORT_SCRIPT
    assert "insertAdjacentHTML" not in REPORT_SCRIPT and "document.write" not in REPORT_SCRIPT


def test_page_allows_no_request_to_any_host() -> None:
    page, _ = page_of(lab(enabled=(1, 2)))
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page).group(1)  # type: ignore[union-attr]
    csp = html.unescape(csp)
    assert "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert not re.search(r"\b(src|href)=", page)
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "") and "https://" not in page


def test_summary_counts_match_compute_pairs() -> None:
    resources = small_topology([{"spokes": [{}]}, {}, {"allow_remote": False}])
    topology, pairs, endpoints = computed(resources)
    data = report_data(topology, pairs, endpoints, source="s", generated_at=NOW)
    assert data["counts"]["openPairs"] == len(pairs.pairs) == 2
    # Circuits: er-0 (three gateways) and er-1 (in the snapshot, no gateway): both counted.
    assert data["counts"]["vnets"] == 4 and data["counts"]["gateways"] == 3 and data["counts"]["circuits"] == 2
    assert data["audit"] is None and data["policy"] is None


def test_big_circuit_cells_share_few_templates() -> None:
    hubs = [{"allow_remote": i % 3 != 0} for i in range(30)]
    topology, pairs, endpoints = computed(small_topology(hubs, circuits=1))
    data = report_data(topology, pairs, endpoints, source="s", generated_at=NOW)
    (c,) = data["circuits"]
    assert len(c["tips"]) == 30 * 29 // 2 and len(data["templates"]) <= 10
    assert ResourceId.parse(c["id"]).name == "er-0"
