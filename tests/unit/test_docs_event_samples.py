"""The Azure docs' resource event samples (Event Grid schema and CloudEvents 1.0) through the event parser, raw and as
the Functions worker builds them (`EventGridEventInConverter`). Sources: tests/fixtures/azure-docs/README.md."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from azure.functions.eventgrid import EventGridEventInConverter
from azure.functions.meta import Datum

from shared.adapters.events import Skip, Trigger, parse_event

DOCS = Path(__file__).resolve().parents[1] / "fixtures" / "azure-docs"
GATEWAY = ("/subscriptions/{subscription-id}/resourceGroups/{resource-group}/providers/Microsoft.Network/"
           "virtualNetworkGateways/ergw-01")
CONNECTION = ("/subscriptions/{subscription-id}/resourceGroups/{resource-group}/providers/Microsoft.Network/"
              "connections/c1")
SAMPLES = {
    "eventgrid-schema-resource-write.json": ("4db48cba-50a2-455a-93b4-de41a3b5b7f6", "write"),
    "eventgrid-schema-resource-delete.json": ("19a69642-1aad-4a96-a5ab-8d05494513ce", "delete"),
    "cloudevents-resource-write.json": ("4db48cba-50a2-455a-93b4-de41a3b5b7f6", "write"),
    "cloudevents-resource-delete.json": ("19a69642-1aad-4a96-a5ab-8d05494513ce", "delete"),
}


def sample(name: str) -> dict[str, Any]:
    delivery = json.loads((DOCS / name).read_text(encoding="utf-8"))
    assert isinstance(delivery, list) and len(delivery) == 1  # Event Grid delivers arrays
    event: dict[str, Any] = delivery[0]
    return event


def as_worker_builds_it(event: dict[str, Any]) -> Any:
    return EventGridEventInConverter.decode(Datum(json.dumps(event), "json"), trigger_metadata=None)


def on_network_resource(event: dict[str, Any], resource: str, operation: str) -> dict[str, Any]:
    """The sample moved from a storage account to a network resource (operation, resource id, subject)."""
    event = json.loads(json.dumps(event))
    event["subject"] = resource
    event["data"]["resourceUri"] = resource
    event["data"]["operationName"] = operation
    event["data"]["authorization"]["action"] = operation
    event["data"]["authorization"]["scope"] = resource
    return event


@pytest.mark.parametrize("name", sorted(SAMPLES))
@pytest.mark.parametrize("decode", [lambda e: e, as_worker_builds_it], ids=["raw", "worker"])
def test_docs_storage_sample_is_well_formed_but_not_watched(name: str, decode: Any) -> None:
    event_id, verb = SAMPLES[name]
    assert parse_event(decode(sample(name))) == Skip(
        f"operation 'Microsoft.Storage/storageAccounts/{verb}' is not watched", event_id)


def test_the_worker_builds_an_event_grid_event_or_a_cloud_event_by_schema() -> None:
    assert isinstance(as_worker_builds_it(sample("eventgrid-schema-resource-write.json")), func.EventGridEvent)
    assert isinstance(as_worker_builds_it(sample("cloudevents-resource-write.json")), func.CloudEvent)


@pytest.mark.parametrize("name", ["eventgrid-schema-resource-write.json", "cloudevents-resource-write.json"])
def test_docs_write_sample_on_a_gateway_is_a_trigger_raw_and_as_the_worker_builds_it(name: str) -> None:
    event = on_network_resource(sample(name), GATEWAY, "Microsoft.Network/virtualNetworkGateways/write")
    expected = Trigger(
        event_id="4db48cba-50a2-455a-93b4-de41a3b5b7f6", event_type="Microsoft.Resources.ResourceWriteSuccess",
        operation="Microsoft.Network/virtualNetworkGateways/write", resource_id=GATEWAY,
        subscription_id="{subscription-id}", caller="{user-name}", caller_object_id="{ID}", correlation_id="{ID}",
        event_time="2018-07-19T18:38:04.6117357Z", status="Succeeded")
    assert parse_event(event) == expected
    # The worker parses the time into a datetime: microseconds, so the 7th fractional digit is gone.
    decoded = parse_event(as_worker_builds_it(event))
    assert isinstance(decoded, Trigger) and decoded.event_time is not None
    assert decoded.event_time.startswith("2018-07-19T18:38:04.611735")
    assert decoded == dataclasses.replace(expected, event_time=decoded.event_time)


@pytest.mark.parametrize("name", ["eventgrid-schema-resource-delete.json", "cloudevents-resource-delete.json"])
def test_docs_delete_sample_on_a_connection_is_a_trigger_with_its_caller(name: str) -> None:
    event = on_network_resource(sample(name), CONNECTION, "Microsoft.Network/connections/delete")
    for decoded in (event, as_worker_builds_it(event)):
        trigger = parse_event(decoded)
        assert isinstance(trigger, Trigger)
        assert (trigger.event_type, trigger.operation, trigger.resource_id, trigger.caller, trigger.event_time) == (
            "Microsoft.Resources.ResourceDeleteSuccess", "Microsoft.Network/connections/delete", CONNECTION,
            "{user-name}", "2018-07-19T19:24:12.763881Z")
