"""The Event Grid path: the filter is the code's watched-operation list, delivery is to the function,
failed deliveries are retried then dead-lettered, and dead letters raise an alert."""

from __future__ import annotations

import copy
from pathlib import PurePosixPath
from typing import Any

import pytest

from tests.infra.bicep_templates import (
    INFRA,
    REPO_ROOT,
    WATCHED_OPERATIONS,
    by_symbol,
    module,
    one,
    param_default,
    render,
    resolve,
    template,
    watched_operations,
)

EVENTS = "app/events.bicep"


def check_event_filter(body: dict[str, Any]) -> None:
    """The subscription's filter is exactly the data file's event types and operations, nothing more."""
    event_filter = body["properties"]["filter"]
    assert render(event_filter["includedEventTypes"]) == "watched.eventTypes"
    assert [render(f) for f in event_filter["advancedFilters"]] == [
        {"operatorType": "StringIn", "key": "data.operationName", "values": "watched.operations"}
    ]
    assert set(event_filter) == {"includedEventTypes", "advancedFilters"}, "no other filter may narrow or widen it"


def check_delivery(body: dict[str, Any], parsed: dict[str, Any]) -> None:
    properties = body["properties"]
    destination = properties["destination"]
    assert destination["endpointType"] == "AzureFunction"
    assert destination["properties"]["resourceId"] == "${functionAppId}/functions/${functionName}"
    assert resolve(EVENTS, "functionName", parsed) == "on_resource_event"
    retry = properties["retryPolicy"]
    attempts = resolve(EVENTS, retry["maxDeliveryAttempts"], parsed)
    ttl = resolve(EVENTS, retry["eventTimeToLiveInMinutes"], parsed)
    assert isinstance(attempts, int) and 1 < attempts <= 30
    assert isinstance(ttl, int) and 60 <= ttl <= 1440
    dead_letter = properties["deadLetterWithResourceIdentity"]
    assert dead_letter["identity"] == {"type": "UserAssigned", "userAssignedIdentity": "deadLetterIdentityId"}
    assert dead_letter["deadLetterDestination"] == {
        "endpointType": "StorageBlob",
        "properties": {"resourceId": "storageAccountId", "blobContainerName": "deadLetterContainerName"},
    }


def event_subscription(parsed: dict[str, Any] | None = None) -> dict[str, Any]:
    return one(EVENTS, "Microsoft.EventGrid/systemTopics/eventSubscriptions", parsed).body


def test_watched_operations_are_loaded_from_the_file_the_code_reads() -> None:
    variable = template(EVENTS)["variables"]["watched"]["value"]["function"]
    assert variable["type"] == "load_json_content"
    loaded = (INFRA / PurePosixPath(EVENTS).parent / variable["parameters"]["file_path"]).resolve()
    assert loaded == WATCHED_OPERATIONS.resolve()


def test_data_file_holds_write_and_delete_success_of_network_operations_only() -> None:
    data = watched_operations()
    assert data["eventTypes"] == [
        "Microsoft.Resources.ResourceWriteSuccess",
        "Microsoft.Resources.ResourceDeleteSuccess",
    ]
    operations = data["operations"]
    assert len(operations) == 18
    assert len({o.lower() for o in operations}) == len(operations), "duplicates"
    # Event Grid's StringIn accepts at most 25 values per advanced filter.
    assert len(operations) <= 25
    for operation in operations:
        assert operation.startswith("Microsoft.Network/"), operation
        assert operation.endswith(("/write", "/delete")), operation


def test_event_subscription_filter_is_the_watched_operation_list() -> None:
    check_event_filter(event_subscription())


def test_event_subscription_delivers_to_the_function_with_retry_and_dead_letter() -> None:
    check_delivery(event_subscription(), template(EVENTS))


def test_event_subscription_waits_for_the_code_to_exist() -> None:
    resource = one(EVENTS, "Microsoft.EventGrid/systemTopics/eventSubscriptions")
    assert resource.condition == "subscribeEvents"
    assert render(resource.body["parent"]) == "topic"


def test_system_topic_watches_the_subscription() -> None:
    topic = one(EVENTS, "Microsoft.EventGrid/systemTopics").body
    assert topic["location"] == "global"
    assert topic["properties"]["topicType"] == "Microsoft.Resources.Subscriptions"
    assert render(topic["properties"]["source"]) == "subscription().id"
    # pycep keeps the quotes of an interpolated object key.
    identities = {"'${deadLetterIdentityId}'": {}}
    assert render(topic["identity"]) == {"type": "UserAssigned", "userAssignedIdentities": identities}


def test_dead_letters_go_to_the_dead_letter_container_of_the_auditor_storage() -> None:
    assert template("main.bicep")["variables"]["deadLetterContainerName"]["value"] == "er-transit-deadletter"
    storage_params = module("main.bicep", "storage")[0]["params"]
    assert storage_params["deadLetterContainerName"] == "deadLetterContainerName"
    watch_params = module("main.bicep", "watch")[0]["params"]
    assert render(watch_params["deadLetterContainerName"]) == "storage.outputs.deadLetterContainerName"
    assert render(watch_params["storageAccountId"]) == "storage.outputs.id"
    assert render(watch_params["deadLetterIdentityId"]) == "identities.outputs.deadLetterIdentityId"
    nested = module("app/watched-subscription.bicep", "events")[0]["params"]
    assert nested["deadLetterContainerName"] == "deadLetterContainerName"
    assert nested["storageAccountId"] == "storageAccountId"


def test_one_topic_and_subscription_per_watched_subscription() -> None:
    body, _, loop = module("main.bicep", "watch")
    assert loop["detail"]["array_name"] == "watchedSubscriptionIds"
    assert render(body["scope"]) == f"subscription({loop['detail']['item_name']})"
    assert template("app/watched-subscription.bicep")["globals"]["scope"]["value"] == "subscription"
    assert param_default("main.bicep", "subscribeEvents") is False


def test_dead_lettered_event_raises_an_alert() -> None:
    alert = by_symbol(EVENTS, "deadLettered").body
    assert render(alert["properties"]["scopes"]) == ["topic.id"]
    [criterion] = alert["properties"]["criteria"]["allOf"]
    assert criterion["metricName"] == "DeadLetteredCount"
    assert criterion["operator"] == "GreaterThan" and criterion["threshold"] == 0


def test_repeated_function_failures_raise_an_alert() -> None:
    alert = by_symbol("app/monitoring.bicep", "functionFailures").body
    assert render(alert["properties"]["scopes"]) == ["appInsights.id"]
    [criterion] = alert["properties"]["criteria"]["allOf"]
    assert criterion["metricName"] == "requests/failed"
    assert criterion["operator"] == "GreaterThanOrEqual"
    assert resolve("app/monitoring.bicep", criterion["threshold"]) >= 2


def test_function_named_in_the_endpoint_exists_in_the_code() -> None:
    function_app = REPO_ROOT / "function_app.py"
    if not function_app.exists():
        pytest.skip("function_app.py not written yet")
    assert "def on_resource_event(" in function_app.read_text(encoding="utf-8")


_DELETE = object()


def _mutate(path: list[Any], value: Any) -> dict[str, Any]:
    parsed = copy.deepcopy(template(EVENTS))
    resource = parsed["resources"]["toFunction"]["config"]["config"]
    target = resource
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return parsed


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (["properties", "filter", "advancedFilters", 0, "operatorType"], "StringBeginsWith"),
        (["properties", "filter", "advancedFilters", 0, "key"], "subject"),
        (["properties", "filter", "advancedFilters"], []),
        (["properties", "filter", "includedEventTypes"], ["Microsoft.Resources.ResourceWriteSuccess"]),
        (["properties", "filter", "subjectBeginsWith"], "/subscriptions/x/resourceGroups/y"),
    ],
)
def test_filter_check_catches_a_broken_filter(path: list[Any], value: Any) -> None:
    with pytest.raises(AssertionError):
        check_event_filter(event_subscription(_mutate(path, value)))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (["properties", "destination", "endpointType"], "WebHook"),
        (["properties", "retryPolicy"], _DELETE),
        (["properties", "retryPolicy", "maxDeliveryAttempts"], 1),
        (["properties", "deadLetterWithResourceIdentity"], _DELETE),
        (["properties", "deadLetterWithResourceIdentity", "deadLetterDestination", "properties"], {}),
    ],
)
def test_delivery_check_catches_broken_delivery(path: list[Any], value: Any) -> None:
    parsed = _mutate(path, value)
    with pytest.raises((AssertionError, KeyError)):
        check_delivery(event_subscription(parsed), parsed)
