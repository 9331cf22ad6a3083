"""What-if: a change applied to the raw snapshot gives exactly the diff of the snapshot and the changed snapshot."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.core.diff import diff_pairs
from shared.core.snapshot import parse_resources
from shared.core.transit import compute_pairs
from shared.core.views import diff_json
from shared.core.whatif import (
    ChangeError,
    PropertySet,
    Scope,
    apply_changes,
    changes_from_template,
    parse_set,
    whatif,
)
from tests.builders import RG, SUB, Resource, lab, small_topology

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "whatif"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def reference_diff(before: list[Resource], after: list[Resource]) -> dict[str, Any]:
    """The diff the alerts would print for two snapshots (built independently of what-if)."""
    b, a = parse_resources(before), parse_resources(after)
    bp, ap = compute_pairs(b), compute_pairs(a)
    return diff_json(diff_pairs(bp, ap, before_topology=b, after_topology=a), warnings=ap.warnings)


def whatif_diff(resources: list[Resource], sets: list[PropertySet] = (), deletes: list[str] = (),  # type: ignore[assignment]
                **kwargs: Any) -> dict[str, Any]:
    result = whatif(resources, sets, deletes, **kwargs)
    return diff_json(result.diff, warnings=result.after_pairs.warnings)


def opened(doc: dict[str, Any]) -> list[tuple[str, str]]:
    return [tuple(p["endpoints"][i]["name"] for i in (0, 1)) for p in doc["opened"]]  # type: ignore[misc]


def closed(doc: dict[str, Any]) -> list[tuple[str, str]]:
    return [tuple(p["endpoints"][i]["name"] for i in (0, 1)) for p in doc["closed"]]  # type: ignore[misc]


# -- --set / --delete ----------------------------------------------------------------------------------------------

def test_enabling_both_flags_opens_the_pair_with_the_flags_as_causes() -> None:
    doc = whatif_diff(lab(), [parse_set("ergw-01", "allowRemoteVnetTraffic=true"),
                              parse_set("ergw-02", "allowRemoteVnetTraffic=true")])
    assert opened(doc) == [("hub-01", "hub-02")] and closed(doc) == []
    assert [c["text"] for c in doc["opened"][0]["cause"]] == ["ergw-01 allowRemoteVnetTraffic false -> true",
                                                              "ergw-02 allowRemoteVnetTraffic false -> true"]
    assert doc == reference_diff(lab(), lab(enabled=(1, 2)))


def test_deleting_a_connection_closes_its_pairs() -> None:
    doc = whatif_diff(lab(enabled=(1, 2, 3)), deletes=["conn-02"])
    assert closed(doc) == [("hub-01", "hub-02"), ("hub-02", "hub-03")] and opened(doc) == []
    assert doc["closed"][0]["cause"][0]["text"] == "connection conn-02 removed"


def test_set_by_id_in_any_casing_and_properties_prefix() -> None:
    gw3 = lab()[8]["id"]
    doc = whatif_diff(lab(enabled=(1,)), [parse_set(gw3.upper(), "properties.allowRemoteVnetTraffic=true")])
    assert opened(doc) == [("hub-01", "hub-03")]


def test_set_on_an_embedded_peering_by_parent_and_child_name() -> None:
    before = small_topology([{"spokes": [{"use_remote": False}]}, {}])
    doc = whatif_diff(before, [parse_set("spoke-11/to-hub-1", "useRemoteGateways=true")])
    assert doc == reference_diff(before, small_topology([{"spokes": [{}]}, {}]))
    assert opened(doc) == [("hub-2", "spoke-11")]


def test_set_on_a_circuit_private_peering_closes_everything_on_it() -> None:
    before = small_topology([{}, {}], circuits=1)
    doc = whatif_diff(before, [parse_set("er-0/AzurePrivatePeering", "state=Disabled")])
    assert doc == reference_diff(before, small_topology([{}, {}], circuits=1,
                                                        circuit_states={0: {"private_peering": "Disabled"}}))
    assert closed(doc) == [("hub-1", "hub-2")]


def test_set_tags_and_null() -> None:
    out = apply_changes(lab(), [parse_set("hub-01", "tags.env=prod"),
                                parse_set("ergw-01", "allowRemoteVnetTraffic=null")])
    hub = next(r for r in out if r["name"] == "hub-01")
    gw = next(r for r in out if r["name"] == "ergw-01")
    assert hub["tags"] == {"env": "prod"} and gw["properties"]["allowRemoteVnetTraffic"] is None


def test_parse_set_values() -> None:
    assert parse_set("x", "a=true").value is True
    assert parse_set("x", "a=\"true\"").value == "true"
    assert parse_set("x", "a=Disabled").value == "Disabled"
    assert parse_set("x", "a.b=[1, 2]").value == [1, 2]
    with pytest.raises(ChangeError, match="expected PROPERTY=VALUE"):
        parse_set("x", "novalue")


def test_apply_changes_leaves_its_input_alone() -> None:
    resources = lab()
    snapshot = copy.deepcopy(resources)
    apply_changes(resources, [parse_set("ergw-01", "allowRemoteVnetTraffic=true")], ["conn-02"])
    assert resources == snapshot


@pytest.mark.parametrize(("ref", "message"), [
    ("ergw-09", "no resource named 'ergw-09'"),
    ("/subscriptions/x/resourceGroups/y/providers/Microsoft.Network/connections/c", "no resource /subscriptions/x"),
])
def test_unknown_resource_is_a_clear_error(ref: str, message: str) -> None:
    with pytest.raises(ChangeError, match=message):
        apply_changes(lab(), [parse_set(ref, "allowRemoteVnetTraffic=true")])
    with pytest.raises(ChangeError, match=message):
        apply_changes(lab(), deletes=[ref])


def test_ambiguous_name_is_a_clear_error() -> None:
    resources = [*lab(), *[r for r in lab() if r["name"] == "hub-01"]]
    resources[-1] = {**resources[-1], "id": resources[-1]["id"].replace(RG, "rg-other")}
    with pytest.raises(ChangeError, match="ambiguous"):
        apply_changes(resources, [parse_set("hub-01", "tags.x=1")])


# -- property: what-if == diff(snapshot, snapshot with the change) -------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(start=st.sets(st.integers(1, 3)), flips=st.sets(st.integers(1, 3), min_size=1))
def test_flag_flips_on_the_lab_equal_the_diff_of_the_two_snapshots(start: set[int], flips: set[int]) -> None:
    end = start ^ flips
    sets = [parse_set(f"ergw-0{i}", f"allowRemoteVnetTraffic={'true' if i in end else 'false'}") for i in flips]
    assert whatif_diff(lab(tuple(sorted(start))), sets) == reference_diff(lab(tuple(sorted(start))),
                                                                         lab(tuple(sorted(end))))


spoke = st.fixed_dictionaries({"use_remote": st.booleans(), "gateway_transit": st.booleans()})
hub = st.fixed_dictionaries({"allow_remote": st.sampled_from([True, False, None]),
                             "circuits": st.sets(st.integers(0, 1), max_size=2).map(lambda s: tuple(sorted(s))),
                             "spokes": st.lists(spoke, max_size=2)})

FLAG = {True: "true", False: "false", None: "null"}


@settings(max_examples=60, deadline=None)
@given(hubs=st.lists(hub, min_size=2, max_size=3), data=st.data())
def test_random_changes_on_generated_topologies_equal_the_diff(hubs: list[dict[str, Any]], data: st.DataObject) -> None:
    after = copy.deepcopy(hubs)
    i = data.draw(st.integers(0, len(hubs) - 1), label="hub")
    kind = data.draw(st.sampled_from(["flag", "spoke", "connection"]), label="kind")
    sets: list[PropertySet] = []
    deletes: list[str] = []
    if kind == "flag":
        value = data.draw(st.sampled_from([True, False, None]))
        after[i]["allow_remote"] = value
        sets.append(parse_set(f"ergw-{i + 1}", f"allowRemoteVnetTraffic={FLAG[value]}"))
    elif kind == "spoke" and hubs[i]["spokes"]:
        j = data.draw(st.integers(0, len(hubs[i]["spokes"]) - 1))
        after[i]["spokes"][j]["use_remote"] = not hubs[i]["spokes"][j]["use_remote"]
        sets.append(parse_set(f"spoke-{i + 1}{j + 1}/to-hub-{i + 1}",
                              f"useRemoteGateways={FLAG[after[i]['spokes'][j]['use_remote']]}"))
    elif kind == "connection" and hubs[i]["circuits"]:
        c = hubs[i]["circuits"][0]
        after[i]["circuits"] = tuple(x for x in hubs[i]["circuits"] if x != c)
        deletes.append(f"conn-{i + 1}-{c}")
    before_res = small_topology(hubs)
    assert whatif_diff(before_res, sets, deletes) == reference_diff(before_res, small_topology(after))


# -- compiled ARM templates ----------------------------------------------------------------------------------------

def template_changes(name: str, resources: list[Resource], scope: Scope | None = None) -> Any:
    return changes_from_template(fixture(name), scope=scope, resources=resources)


def test_template_with_parameters_variables_and_resource_ids_equals_the_direct_change() -> None:
    before = lab(enabled=(1,))
    changes = template_changes("template-enable-gw.json", before)
    assert [p.resource["name"] for p in changes.puts] == ["ergw-03"]  # the storage account is not transit
    put = changes.puts[0].resource
    assert put["id"] == lab()[8]["id"] and put["tags"] == {"owner": "team-net"}
    assert put["properties"]["ipConfigurations"][0]["properties"]["subnet"]["id"].endswith(
        "/virtualNetworks/hub-03/subnets/GatewaySubnet")
    doc = whatif_diff(before, puts=changes.puts)
    assert opened(doc) == [("hub-01", "hub-03")]
    assert doc == reference_diff(before, lab(enabled=(1, 3)))


def test_template_creating_a_hub_gateway_and_connection_opens_it_to_every_open_hub() -> None:
    before = lab(enabled=(1, 2))
    changes = template_changes("template-new-hub.json", before)
    assert [p.resource["type"] for p in changes.puts] == ["Microsoft.Network/virtualNetworks",
                                                          "Microsoft.Network/virtualNetworkGateways",
                                                          "Microsoft.Network/connections"]
    conn = changes.puts[2].resource
    assert conn["properties"]["peer"]["id"] == lab()[0]["id"]
    doc = whatif_diff(before, puts=changes.puts)
    assert opened(doc) == [("hub-01", "hub-04"), ("hub-02", "hub-04")]
    assert doc["opened"][0]["endpoints"][1]["tags"] == {"env": "prod"}


def test_symbolic_name_template_skips_existing_and_writes_the_child_peering() -> None:
    before = small_topology([{"spokes": [{"use_remote": False}]}, {}])
    changes = template_changes("template-symbolic-peering.json", before)
    assert [p.resource["name"] for p in changes.puts] == ["to-hub-1"]  # `existing` hub is only a reference
    doc = whatif_diff(before, puts=changes.puts)
    assert doc == reference_diff(before, small_topology([{"spokes": [{}]}, {}]))


def test_nested_module_with_inner_scope_parameters() -> None:
    before = lab(enabled=(1,))
    changes = template_changes("template-nested-module.json", before)
    assert [p.resource["name"] for p in changes.puts] == ["ergw-02"]
    assert opened(whatif_diff(before, puts=changes.puts)) == [("hub-01", "hub-02")]


def test_unsupported_function_is_reported_never_guessed() -> None:
    with pytest.raises(ChangeError, match=r"cannot evaluate expression .*uniqueString\(\) is not supported"):
        template_changes("template-unsupported.json", lab())


def test_template_scope_is_explicit_when_the_snapshot_spans_resource_groups() -> None:
    other = [{**r, "id": r["id"].replace(RG, "rg-two")} for r in lab()]
    spread = [*lab(), *other]
    with pytest.raises(ChangeError, match="pass --scope"):
        template_changes("template-new-hub.json", spread)
    scope = Scope.parse(f"/subscriptions/{SUB}/resourceGroups/rg-two")
    changes = template_changes("template-new-hub.json", spread, scope)
    assert "/resourceGroups/rg-two/" in changes.puts[0].resource["id"]


def test_missing_parameter_value_is_an_error() -> None:
    doc = fixture("template-enable-gw.json")
    del doc["parameters"]["gatewayName"]["defaultValue"]
    with pytest.raises(ChangeError, match="parameter 'gatewayName' has no value"):
        changes_from_template(doc, resources=lab())


def test_copy_loop_is_an_error() -> None:
    doc = fixture("template-enable-gw.json")
    doc["resources"][0]["copy"] = {"name": "gws", "count": 2}
    with pytest.raises(ChangeError, match="copy loop"):
        changes_from_template(doc, resources=lab())


def test_false_condition_skips_the_resource() -> None:
    doc = fixture("template-enable-gw.json")
    doc["resources"][0]["condition"] = "[equals(parameters('hubName'), 'hub-99')]"
    assert changes_from_template(doc, resources=lab()).puts == ()


def test_a_document_that_is_neither_is_rejected() -> None:
    with pytest.raises(ChangeError, match="not an ARM template"):
        changes_from_template({"value": []})


# -- az deployment group what-if JSON ------------------------------------------------------------------------------

def test_rest_what_if_modify_uses_the_predicted_after_and_skips_other_change_types() -> None:
    before = lab(enabled=(1,))
    changes = changes_from_template(fixture("whatif-rest-modify-gateway.json"))
    assert [p.resource["name"] for p in changes.puts] == ["ergw-02", "appi-lab"]
    doc = whatif_diff(before, puts=changes.puts, delete_ids=changes.delete_ids)
    assert doc == reference_diff(before, lab(enabled=(1, 2)))


def test_cli_what_if_delete_closes_the_pairs() -> None:
    before = lab(enabled=(1, 2))
    changes = changes_from_template(fixture("whatif-cli-delete-connection.json"))
    assert changes.delete_ids and not changes.puts
    doc = whatif_diff(before, puts=changes.puts, delete_ids=changes.delete_ids)
    assert closed(doc) == [("hub-01", "hub-02")]
    assert doc == reference_diff(before, [r for r in before if r["name"] != "conn-01"])


def test_what_if_without_payloads_asks_for_full_resource_payloads() -> None:
    with pytest.raises(ChangeError, match="FullResourcePayloads"):
        changes_from_template(fixture("whatif-resource-id-only.json"))


def test_failed_what_if_is_an_error() -> None:
    with pytest.raises(ChangeError, match="InvalidTemplate"):
        changes_from_template(fixture("whatif-failed.json"))


def test_what_if_modify_of_a_vnet_without_peerings_keeps_its_peerings() -> None:
    before = small_topology([{"spokes": [{}]}, {}])
    hub1 = next(r for r in before if r["name"] == "hub-1")
    after = {k: v for k, v in hub1.items()}
    after["properties"] = {"addressSpace": {"addressPrefixes": ["10.1.0.0/16"]}}
    doc = {"status": "Succeeded", "changes": [{"resourceId": hub1["id"], "changeType": "Modify", "after": after}]}
    changes = changes_from_template(doc)
    assert whatif_diff(before, puts=changes.puts)["closed"] == []
