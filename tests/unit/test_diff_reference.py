"""The diff equals a straightforward reference implementation of the same rules, on generated topologies.

`diff_pairs` is tuned for half a million pairs (integer codes, dependency groups resolved once, causes shared by
the pairs that depend on the same changes). The reference below does the obvious thing for every pair: compare
the key sets, list every resource the pair depends on by scanning the topology, compare each one's transit
properties in both topologies. Both must agree on every pair, cause and pending flag.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.core.diff import Diff, diff_pairs, facets_of
from shared.core.model import PairSet, ResourceId, Topology, TransitPair, is_settling
from shared.core.snapshot import parse_resources
from shared.core.transit import VNET_GATEWAY, compute_pairs, endpoints_of
from shared.core.views import ChangeDocs, change_json
from tests.builders import Resource, recase_references
from tests.unit.test_properties import PEERING_STATE, STATE, TopologySpec, pairs_of, render, topology_specs

REFERENCE_SETTINGS = settings(max_examples=80, deadline=None)


# -- the reference ----------------------------------------------------------------------------------------------

def reference_dependencies(topology: Topology, pair: TransitPair) -> list[ResourceId]:
    """Every resource the pair depends on: each route's circuit, gateways and their links, and how each VNet
    sits behind each gateway of the route (itself, the two peerings of gateway transit, or a hub connection)."""
    endpoints = endpoints_of(topology)
    deps: list[ResourceId] = []
    for route in pair.routes:
        deps.append(route.circuit)
        for gid in route.gateways:
            deps.append(gid)
            ep = endpoints.get(gid)
            if ep is None:
                continue
            if ep.kind == VNET_GATEWAY:
                deps += [c.id for c in topology.connections.values()
                         if c.is_expressroute and c.gateway == gid and c.circuit == route.circuit]
            else:
                hub = topology.wan_gateways[gid].hub
                if hub is not None:
                    deps.append(hub)
            for vnet in (pair.a, pair.b):
                if vnet not in ep.domain:
                    continue
                deps.append(vnet)
                if ep.kind == VNET_GATEWAY:
                    home = topology.gateways[gid].vnet
                    if home is None or vnet == home:
                        continue
                    deps += [p.id for p in topology.vnets[home].peerings if p.remote_vnet == vnet]
                    spoke = topology.vnets.get(vnet)
                    deps += [p.id for p in spoke.peerings if p.remote_vnet == home] if spoke else []
                else:
                    hub = topology.wan_gateways[gid].hub
                    deps += [hc.id for hc in topology.hub_connections.values()
                             if hub is not None and hc.hub == hub and hc.remote_vnet == vnet]
    return deps


def lowered(value: Any) -> Any:
    if isinstance(value, str):
        return value.lower()
    if isinstance(value, (list, tuple)):
        return [lowered(v) for v in value]
    return value


def reference_causes(before: Topology, after: Topology, deps: list[ResourceId]) -> list[tuple[Any, ...]]:
    causes: list[tuple[Any, ...]] = []
    for rid in set(deps):
        old, new = facets_of(before, rid), facets_of(after, rid)
        if old is None and new is None:
            continue
        if old is None:
            assert new is not None
            causes.append((rid.key, new[0], new[1], "added", None, None, None))
        elif new is None:
            causes.append((rid.key, old[0], old[1], "removed", None, None, None))
        else:
            causes += [(rid.key, new[0], new[1], "modified", prop, old[2].get(prop), value)
                       for prop, value in new[2].items() if lowered(old[2].get(prop)) != lowered(value)]
    decisive = [c for c in causes if c[4] != "provisioningState"]
    return sorted(decisive or causes) or [("/", "unknown")]


def reference_diff(before: PairSet, after: PairSet, tb: Topology, ta: Topology) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {"opened": [], "closed": []}
    for key in sorted(set(after.pairs) - set(before.pairs)):
        pair = after.pairs[key]
        out["opened"].append((key, pair.routes, reference_causes(tb, ta, reference_dependencies(ta, pair)),
                              pair.pending))
    for key in sorted(set(before.pairs) - set(after.pairs)):
        pair = before.pairs[key]
        deps = reference_dependencies(tb, pair)
        settling = any((f := facets_of(ta, rid)) is not None and is_settling(f[2].get("provisioningState"))
                       for rid in deps)
        out["closed"].append((key, pair.routes, reference_causes(tb, ta, deps), settling))
    return out


def seen(diff: Diff) -> dict[str, list[Any]]:
    """The diff in the reference's terms (causes as sortable tuples, the unknown cause as ("/", "unknown"))."""
    def causes(change: Any) -> list[tuple[Any, ...]]:
        got = [("/", "unknown") if c.kind == "unknown" else
               (c.resource.key, c.kind, c.label, c.change, c.prop, c.old, c.new) for c in change.causes]
        return sorted(got)

    return {verb: [(c.pair.key, c.pair.routes, causes(c), c.pending) for c in getattr(diff, verb)]
            for verb in ("opened", "closed")}


def check_against_reference(before: list[Resource], after: list[Resource]) -> Diff:
    tb, pb = pairs_of(before)
    ta, pa = pairs_of(after)
    diff = diff_pairs(pb, pa, before_topology=tb, after_topology=ta)
    assert seen(diff) == reference_diff(pb, pa, tb, ta)
    for change in diff.opened:
        assert change.topology is ta
    for change in diff.closed:
        assert change.topology is tb
    # Causes come out in one documented order: by text (case-insensitively), then by resource.
    for change in (*diff.opened, *diff.closed):
        assert list(change.causes) == sorted(change.causes, key=lambda c: (c.text.lower(), c.resource))
    # The pairs as plain mappings (no integer codes) take the general path and must give the same diff.
    plain = diff_pairs(PairSet(dict(pb.pairs)), PairSet(dict(pa.pairs)), before_topology=tb, after_topology=ta)
    assert plain == diff
    # As the auditor parses a live read against its working copy: each resource equal to its committed copy is
    # that very object, and the parse reuses what it made of it, so the diff finds unchanged VNets and peerings
    # by identity. The diff is the same.
    tb2 = parse_resources(before, reusable=True)
    committed = {r["id"].lower(): r for r in before}
    shared = [committed[r["id"].lower()] if committed.get(r["id"].lower()) == r else r for r in after]
    ta2 = parse_resources(shared, previous=tb2, reusable=True)
    diff2 = diff_pairs(compute_pairs(tb2), compute_pairs(ta2), before_topology=tb2, after_topology=ta2)
    assert seen(diff2) == seen(diff)
    # Documents made once per routes tuple, endpoint and causes equal those made pair by pair.
    docs = ChangeDocs()
    for change in (*diff.opened, *diff.closed):
        eps = endpoints_of(change.topology)
        assert docs.doc(change, eps) == change_json(change, eps)
    return diff


# -- generated changes --------------------------------------------------------------------------------------------

@st.composite
def mutated(draw: st.DrawFn, spec: TopologySpec) -> TopologySpec:
    """`spec` with a few of the changes an estate sees: flags, states, links and spokes added or removed."""
    out = copy.deepcopy(spec)
    for _ in range(draw(st.integers(1, 4))):
        hub = out.hubs[draw(st.integers(0, len(out.hubs) - 1))]
        what = draw(st.sampled_from(["allow_remote", "allow_wan", "state", "admin", "drop_link", "link_state",
                                     "spoke", "drop_spoke", "circuit", "wan"]))
        if what in ("allow_remote", "allow_wan"):
            setattr(hub, what, draw(st.sampled_from([True, False, None])))
        elif what == "state":
            hub.state = draw(STATE)
        elif what == "admin":
            hub.admin_state = draw(st.sampled_from([None, "Enabled", "Disabled"]))
        elif what == "drop_link" and hub.links:
            hub.links.pop(draw(st.integers(0, len(hub.links) - 1)))
        elif what == "link_state" and hub.links:
            k = draw(st.integers(0, len(hub.links) - 1))
            hub.links[k] = (hub.links[k][0], hub.links[k][1], draw(STATE))
        elif what == "spoke" and hub.spokes:
            spoke = hub.spokes[draw(st.integers(0, len(hub.spokes) - 1))]
            spoke.hub_state, spoke.spoke_state = draw(PEERING_STATE), draw(PEERING_STATE)
            spoke.use_remote = draw(st.booleans())
        elif what == "drop_spoke" and hub.spokes:
            hub.spokes.pop()
        elif what == "circuit":
            c = out.circuits[draw(st.integers(0, len(out.circuits) - 1))]
            c.provider_state = draw(st.sampled_from(["Provisioned", "NotProvisioned"]))
            c.state = draw(STATE)
        elif what == "wan" and out.wan_hubs:
            w = out.wan_hubs[draw(st.integers(0, len(out.wan_hubs) - 1))]
            w.allow_non_wan, w.state = draw(st.sampled_from([True, False, None])), draw(STATE)
    return out


@REFERENCE_SETTINGS
@given(topology_specs(), st.data())
def test_diff_of_a_few_changes_equals_the_reference(spec: TopologySpec, data: st.DataObject) -> None:
    check_against_reference(render(spec), render(data.draw(mutated(spec))))


@REFERENCE_SETTINGS
@given(topology_specs(), topology_specs())
def test_diff_of_two_unrelated_topologies_equals_the_reference(spec_a: TopologySpec, spec_b: TopologySpec) -> None:
    check_against_reference(render(spec_a), render(spec_b))


@REFERENCE_SETTINGS
@given(topology_specs(), st.data())
def test_diff_with_references_recased_on_one_side_equals_the_reference(spec: TopologySpec,
                                                                       data: st.DataObject) -> None:
    after = recase_references(render(data.draw(mutated(spec))), str.upper)
    check_against_reference(render(spec), after)


def test_a_flag_flip_on_a_hub_with_many_spokes_names_one_cause_for_every_pair() -> None:
    from tests.unit.test_properties import CircuitSpec, HubSpec, SpokeSpec

    spokes = [SpokeSpec(True, True, "Connected", "Connected") for _ in range(6)]
    hubs = [HubSpec(allow_remote=i != 0, allow_wan=False, gateway_type="ExpressRoute", admin_state=None,
                    state="Succeeded", links=[(0, "ExpressRoute", "Succeeded")], spokes=list(spokes))
            for i in range(3)]
    spec = TopologySpec(circuits=[CircuitSpec("Provisioned", "Enabled", "Succeeded", True)], hubs=hubs)
    after = copy.deepcopy(spec)
    after.hubs[0].allow_remote = True
    diff = check_against_reference(render(spec), render(after))
    assert len(diff.opened) == 7 * 14 and diff.closed == ()
    assert {tuple(c.text for c in ch.causes) for ch in diff.opened} == {
        ("ergw-0 allowRemoteVnetTraffic false -> true",)}
