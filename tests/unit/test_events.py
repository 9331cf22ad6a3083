"""Event Grid deliveries -> Trigger / Skip / MalformedEventError, decoded the way the Functions host decodes them."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from azure.functions.eventgrid import EventGridEventInConverter
from azure.functions.meta import Datum

from shared.adapters.events import (
    UPN_CLAIM,
    MalformedEventError,
    Skip,
    Trigger,
    WatchedOperations,
    load_watched_operations,
    parse_event,
)

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"
WATCHED_FILE = Path(__file__).resolve().parents[2] / "shared" / "adapters" / "watched_operations.json"
SUB = "00000000-0000-0000-0000-000000000001"
GW_ID = f"/subscriptions/{SUB}/resourceGroups/hub-rg/providers/Microsoft.Network/virtualNetworkGateways/ergw-hub"


def fixture_event(name: str) -> dict[str, Any]:
    delivery = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    assert isinstance(delivery, list) and len(delivery) == 1
    event: dict[str, Any] = delivery[0]
    return event


def host_decode(event: Any) -> Any:
    """What the Functions host hands the function for one event of the delivery."""
    return EventGridEventInConverter.decode(Datum(json.dumps(event), "json"), trigger_metadata=None)


@pytest.fixture
def gateway_write() -> dict[str, Any]:
    return fixture_event("eventgrid-gateway-write.json")


def test_gateway_write_fixture_decoded_by_host_is_a_trigger(gateway_write: dict[str, Any]) -> None:
    trigger = parse_event(host_decode(gateway_write))

    assert trigger == Trigger(
        event_id="42be9035-af4f-5774-9b60-4fde91f16028",
        event_type="Microsoft.Resources.ResourceWriteSuccess",
        operation="Microsoft.Network/virtualNetworkGateways/write",
        resource_id=GW_ID,
        subscription_id=SUB,
        caller="alice@contoso.example",
        caller_object_id="11111111-2222-3333-4444-555555555555",
        correlation_id="8c29ff75-7bad-5960-8a16-58d0499794ed",
        # the host parses eventTime into a datetime (microseconds): the 7th digit is lost
        event_time="2024-03-22T05:31:12.123456Z",
        status="Succeeded",
    )


def test_connection_delete_fixture_as_raw_dict_is_a_trigger_with_the_time_as_given() -> None:
    event = fixture_event("eventgrid-connection-delete.json")

    trigger = parse_event(event)

    assert isinstance(trigger, Trigger)
    assert trigger.event_type == "Microsoft.Resources.ResourceDeleteSuccess"
    assert trigger.operation == "Microsoft.Network/connections/delete"
    assert trigger.resource_id.endswith("/providers/Microsoft.Network/connections/conn-hub")
    assert trigger.caller == "netadmin@contoso.example"
    assert trigger.correlation_id == "d9d2b272-2c21-5315-af85-3b1d459f4380"
    assert trigger.event_time == "2024-03-22T05:31:12.1234567Z"


def test_raw_json_text_is_accepted(gateway_write: dict[str, Any]) -> None:
    assert parse_event(json.dumps(gateway_write)) == parse_event(gateway_write)


def test_cloud_events_schema_is_accepted_raw_and_decoded(gateway_write: dict[str, Any]) -> None:
    cloud_event = {
        "specversion": "1.0",
        "id": "ce-1",
        "source": f"/subscriptions/{SUB}",
        "type": "Microsoft.Resources.ResourceWriteSuccess",
        "time": "2024-03-22T05:31:12.1234567Z",
        "subject": GW_ID,
        "data": gateway_write["data"],
    }

    raw = parse_event(cloud_event)
    decoded = parse_event(host_decode(cloud_event))

    assert isinstance(raw, Trigger) and isinstance(decoded, Trigger)
    assert (raw.event_id, raw.resource_id, raw.caller) == ("ce-1", GW_ID, "alice@contoso.example")
    assert decoded.event_id == "ce-1" and decoded.operation == raw.operation


def test_trigger_copies_no_claims_other_than_identity(gateway_write: dict[str, Any]) -> None:
    gateway_write["data"]["claims"]["http://schemas.microsoft.com/claims/authnmethodsreferences"] = "pwd"
    gateway_write["data"]["claims"]["secret_token"] = "eyJhbGciOiJSUzI1NiJ9.SECRET"

    trigger = parse_event(gateway_write)

    assert "SECRET" not in repr(trigger) and "pwd" not in repr(trigger)


# -- relevance ------------------------------------------------------------------------------------------------------
def test_unwatched_event_type_is_skipped_with_reason(gateway_write: dict[str, Any]) -> None:
    gateway_write["eventType"] = "Microsoft.Resources.ResourceActionSuccess"

    decision = parse_event(host_decode(gateway_write))

    assert isinstance(decision, Skip)
    assert decision.event_id == gateway_write["id"]
    assert "Microsoft.Resources.ResourceActionSuccess" in decision.reason and "not watched" in decision.reason


def test_unwatched_event_type_is_skipped_even_without_data(gateway_write: dict[str, Any]) -> None:
    gateway_write["eventType"] = "Microsoft.Storage.BlobCreated"
    del gateway_write["data"]

    assert isinstance(parse_event(gateway_write), Skip)


def test_unwatched_operation_is_skipped(gateway_write: dict[str, Any]) -> None:
    gateway_write["data"]["operationName"] = "Microsoft.Compute/virtualMachines/write"

    decision = parse_event(gateway_write)

    assert isinstance(decision, Skip)
    assert "Microsoft.Compute/virtualMachines/write" in decision.reason


def test_operation_and_event_type_match_case_insensitively(gateway_write: dict[str, Any]) -> None:
    gateway_write["eventType"] = "microsoft.resources.resourcewritesuccess"
    gateway_write["data"]["operationName"] = "MICROSOFT.NETWORK/VIRTUALNETWORKGATEWAYS/WRITE"

    trigger = parse_event(gateway_write)

    assert isinstance(trigger, Trigger)
    assert trigger.operation == "MICROSOFT.NETWORK/VIRTUALNETWORKGATEWAYS/WRITE"  # as given


def test_watched_operations_are_read_from_the_committed_file_lower_cased() -> None:
    raw = json.loads(WATCHED_FILE.read_text(encoding="utf-8"))

    watched = load_watched_operations()

    assert watched.operations == frozenset(o.lower() for o in raw["operations"])
    assert watched.event_types == frozenset(t.lower() for t in raw["eventTypes"])
    assert load_watched_operations() is watched  # cached


def _watched_pairs() -> list[tuple[str, str]]:
    raw = json.loads(WATCHED_FILE.read_text(encoding="utf-8"))
    return [(t, o) for t in raw["eventTypes"] for o in raw["operations"]]


@pytest.mark.parametrize(("event_type", "operation"), _watched_pairs())
def test_every_watched_entry_is_accepted(gateway_write: dict[str, Any], event_type: str, operation: str) -> None:
    gateway_write["eventType"] = event_type
    gateway_write["data"]["operationName"] = operation

    trigger = parse_event(host_decode(gateway_write))

    assert isinstance(trigger, Trigger)
    assert (trigger.event_type, trigger.operation) == (event_type, operation)


def test_an_explicit_watch_list_overrides_the_file(gateway_write: dict[str, Any]) -> None:
    only_deletes = WatchedOperations(
        frozenset({"microsoft.resources.resourcedeletesuccess"}),
        frozenset({"microsoft.network/virtualnetworkgateways/delete"}),
    )

    assert isinstance(parse_event(gateway_write, watched=only_deletes), Skip)


# -- resource id and caller -----------------------------------------------------------------------------------------
def test_subject_is_used_when_resource_uri_is_missing(gateway_write: dict[str, Any]) -> None:
    del gateway_write["data"]["resourceUri"]
    gateway_write["subject"] = GW_ID.upper()
    del gateway_write["data"]["subscriptionId"]

    trigger = parse_event(gateway_write)

    assert isinstance(trigger, Trigger)
    assert trigger.resource_id == GW_ID.upper()
    assert trigger.subscription_id == SUB.upper()  # taken from the id when data.subscriptionId is absent


def test_caller_is_the_upn_claim_first(gateway_write: dict[str, Any]) -> None:
    trigger = parse_event(gateway_write)
    assert isinstance(trigger, Trigger) and trigger.caller == "alice@contoso.example"


def test_caller_without_upn_is_the_object_id_with_the_display_name_labelled(gateway_write: dict[str, Any]) -> None:
    del gateway_write["data"]["claims"][UPN_CLAIM]
    trigger = parse_event(gateway_write)
    assert isinstance(trigger, Trigger)
    assert trigger.caller == 'object id 11111111-2222-3333-4444-555555555555 (display name "Network Admin")'


def test_a_display_name_alone_is_labelled_as_one(gateway_write: dict[str, Any]) -> None:
    claims = gateway_write["data"]["claims"]
    del claims[UPN_CLAIM]
    for key in [k for k in claims if "objectidentifier" in k or k == "oid"]:
        del claims[key]
    trigger = parse_event(gateway_write)
    assert isinstance(trigger, Trigger) and trigger.caller == 'display name "Network Admin"'


def test_a_service_principal_is_its_object_id_and_app(gateway_write: dict[str, Any]) -> None:
    claims = gateway_write["data"]["claims"]
    del claims[UPN_CLAIM], claims["name"]
    trigger = parse_event(gateway_write)
    assert isinstance(trigger, Trigger)
    assert trigger.caller == "object id 11111111-2222-3333-4444-555555555555 (app c44b4083-3bb0-49c1-b47d-974e53cbdf3c)"


def test_caller_falls_back_to_appid(gateway_write: dict[str, Any]) -> None:
    claims = gateway_write["data"]["claims"]
    del claims[UPN_CLAIM], claims["name"]
    for key in [k for k in claims if "objectidentifier" in k or k == "oid"]:
        del claims[key]
    trigger = parse_event(gateway_write)
    assert isinstance(trigger, Trigger) and trigger.caller == "app:c44b4083-3bb0-49c1-b47d-974e53cbdf3c"


def test_caller_is_unknown_without_identity_claims(gateway_write: dict[str, Any]) -> None:
    del gateway_write["data"]["claims"]
    trigger = parse_event(gateway_write)
    assert isinstance(trigger, Trigger)
    assert (trigger.caller, trigger.caller_object_id) == ("unknown", None)


# -- malformed --------------------------------------------------------------------------------------------------------
def _without(event: dict[str, Any], *path: str) -> dict[str, Any]:
    out = copy.deepcopy(event)
    node = out
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return out


def _with(event: dict[str, Any], value: Any, *path: str) -> dict[str, Any]:
    out = copy.deepcopy(event)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


def _malformed_cases() -> list[Any]:
    base = fixture_event("eventgrid-gateway-write.json")
    no_id = _with(_without(base, "data", "resourceUri"), None, "subject")
    return [
        pytest.param(_without(base, "data"), "no 'data'", id="missing-data"),
        pytest.param(_with(base, None, "data"), "no 'data'", id="null-data"),
        pytest.param(_with(base, ["a"], "data"), "'data' must be a JSON object, got array", id="data-array"),
        pytest.param(_with(base, "text", "data"), "'data' must be a JSON object, got string", id="data-string"),
        pytest.param(no_id, "neither data.resourceUri nor subject", id="no-resource-id"),
        pytest.param(_without(base, "data", "operationName"), "data.operationName", id="no-operation"),
        pytest.param(_with(base, 42, "data", "operationName"), "got number", id="operation-number"),
        pytest.param(_with(base, {"x": 1}, "data", "resourceUri"), "got object", id="resource-uri-object"),
        pytest.param(_with(base, "eyJ.SECRET", "data", "claims"), "got string", id="claims-string"),
        pytest.param(_without(base, "eventType"), "eventType", id="no-event-type"),
        pytest.param(_without(base, "id"), "has no id", id="no-id"),
        pytest.param(_with(base, True, "id"), "got boolean", id="id-boolean"),
        pytest.param(
            _with(_without(base, "data", "subscriptionId"), "vnet-hub", "data", "resourceUri"),
            "does not start with /subscriptions/",
            id="relative-resource-id",
        ),
    ]


@pytest.mark.parametrize(("event", "message"), _malformed_cases())
def test_malformed_event_raises_an_actionable_error(event: dict[str, Any], message: str) -> None:
    with pytest.raises(MalformedEventError) as caught:
        parse_event(event)

    assert message in str(caught.value)
    assert "SECRET" not in str(caught.value)


@pytest.mark.parametrize(("event", "message"), _malformed_cases())
def test_malformed_event_decoded_by_the_host_raises_too(event: dict[str, Any], message: str) -> None:
    with pytest.raises(MalformedEventError):
        parse_event(host_decode(event))


@pytest.mark.parametrize(
    ("garbage", "message"),
    [
        ("not json {", "not JSON"),
        (b"\xff\xfe", "not UTF-8"),
        ("[1, 2]", "JSON array of 2 events"),
        ("42", "got number"),
        (None, "got null"),
        (object(), "got object"),
    ],
)
def test_garbage_is_malformed(garbage: Any, message: str) -> None:
    with pytest.raises(MalformedEventError, match=message):
        parse_event(garbage)


def test_malformed_error_is_a_value_error() -> None:
    assert issubclass(MalformedEventError, ValueError)


def test_every_watched_event_type_is_an_event_grid_system_event_name() -> None:
    from azure.eventgrid import SystemEventNames

    from shared.adapters.events import is_system_event_name

    raw = json.loads(WATCHED_FILE.read_text(encoding="utf-8"))
    names = {str(n.value) for n in SystemEventNames}
    assert set(raw["eventTypes"]) <= names
    assert SystemEventNames.ResourceWriteSuccessEventName.value in raw["eventTypes"]
    assert is_system_event_name("microsoft.resources.resourcedeletesuccess")
    assert not is_system_event_name("Microsoft.Resources.ResourceWriteSucess")  # misspelt
