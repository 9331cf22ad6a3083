"""parse_resources(previous=...) reuses what it parsed of shared resource objects and gives the same topology."""

from __future__ import annotations

import copy
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.core.snapshot import parse_resources
from tests.builders import Resource
from tests.unit.test_diff_reference import mutated
from tests.unit.test_properties import TopologySpec, render, topology_specs


def patched(before: list[Resource], after: list[Resource]) -> list[Resource]:
    """`after` where every resource equal to one of `before` is that very object (as patch_copy shares them)."""
    by_id = {r["id"]: r for r in before}
    return [by_id[r["id"]] if by_id.get(r["id"]) == r else r for r in after]


def odd(resources: list[Resource], *, apart: bool) -> list[Resource]:
    """Resources that make the parser warn (a peering without a remote VNet, a gateway whose VNet is not in the
    snapshot) and, with `apart`, a peering given apart from its VNet."""
    out = copy.deepcopy(resources)
    vnets = [r for r in out if r["type"].endswith("virtualNetworks")]
    if len(vnets) > 2:
        vnets[0]["properties"]["virtualNetworkPeerings"].append({"name": "broken", "properties": {}})
        out.remove(vnets[1])  # its gateway's VNet is not in the snapshot any more
        if apart:
            out.append({"id": vnets[0]["id"] + "/virtualNetworkPeerings/apart", "name": "apart",
                        "type": "Microsoft.Network/virtualNetworks/virtualNetworkPeerings",
                        "properties": {"remoteVirtualNetwork": {"id": vnets[-1]["id"]}, "peeringState": "Connected",
                                       "useRemoteGateways": True}})
    return out


@settings(max_examples=80, deadline=None)
@given(topology_specs(), st.data(), st.sampled_from(["plain", "odd", "apart before", "apart after"]))
def test_a_patched_copy_parses_the_same_with_or_without_the_previous_topology(spec: TopologySpec,
                                                                              data: st.DataObject,
                                                                              shape: str) -> None:
    before = render(spec)
    after = render(data.draw(mutated(spec)))
    if shape != "plain":
        before, after = odd(before, apart=shape == "apart before"), odd(after, apart=shape == "apart after")
    after = patched(before, after)
    random.Random(data.draw(st.integers(0, 9))).shuffle(after)
    previous = parse_resources(before, source="live read", reusable=True)
    fresh = parse_resources(after, source="live read")
    reused = parse_resources(after, source="live read", previous=previous, reusable=True)
    assert reused == fresh
    assert reused.warnings == fresh.warnings
    # Again from the reused one (entries are handed on), and from a parse with another source (nothing reused).
    assert parse_resources(after, source="live read", previous=reused) == fresh
    other = parse_resources(after, source="snapshot", previous=previous)
    assert other == parse_resources(after, source="snapshot")
    assert other.warnings == parse_resources(after, source="snapshot").warnings


def test_unchanged_objects_are_reused_and_changed_ones_parsed_again() -> None:
    from benchmarks.bench_transit import generate

    before, _ = generate(200)
    previous = parse_resources(before, source="live read", reusable=True)
    gateway = next(r for r in before if r["type"].endswith("virtualNetworkGateways"))
    flipped = {**gateway, "properties": {**gateway["properties"], "allowRemoteVnetTraffic":
                                         not gateway["properties"]["allowRemoteVnetTraffic"]}}
    after = [flipped if r is gateway else r for r in before]
    reused = parse_resources(after, source="live read", previous=previous, reusable=True)
    assert reused == parse_resources(after, source="live read")
    same = [v for v in reused.vnets if reused.vnets[v] is previous.vnets[v]]
    assert len(same) == len(previous.vnets)  # every VNet object reused
    changed = [g for g in reused.gateways if reused.gateways[g] is not previous.gateways[g]]
    assert [g.value for g in changed] == [gateway["id"]]


def test_only_a_reusable_parse_keeps_its_input_alive() -> None:
    from benchmarks.bench_transit import generate

    before, _ = generate(200)
    assert parse_resources(before).memo == {}  # the CLI's parse: its input can be freed once parsed
    assert len(parse_resources(before, reusable=True).memo) == len(before)
