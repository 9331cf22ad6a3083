"""The optional ER-transit event topic: absent unless asked for; Entra-only; the function identity may only
send to it (EventGrid Data Sender on that topic); the app gets its endpoint and nothing secret."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.infra.bicep_templates import (
    all_resources,
    module,
    one,
    param_default,
    render,
    resources,
    roles_file,
    template,
)
from tests.infra.test_bicep_security import role_assignment
from tests.infra.test_bicep_wiring import app_settings

TOPIC = "app/eventtopic.bicep"


def check_topic(body: dict[str, Any]) -> None:
    properties = body["properties"]
    assert properties["disableLocalAuth"] is True, "keys and SAS tokens must be refused"
    assert properties["inputSchema"] == "CloudEventSchemaV1_0"


def test_the_topic_is_absent_unless_the_event_topic_parameter_asks_for_it() -> None:
    assert param_default("main.bicep", "eventTopic") is False
    body, condition, loop = module("main.bicep", "events")
    assert render(condition) == "eventTopic" and loop is None
    assert template("main.bicep")["modules"]["events"]["detail"]["path"] == TOPIC
    custom_topics = [r for r in all_resources() if r.type == "Microsoft.EventGrid/topics" and not r.existing]
    assert [r.file for r in custom_topics] == [TOPIC], "the custom topic exists only in the optional module"
    function = module("main.bicep", "function")[0]["params"]
    assert render(function["eventTopicEndpoint"]) == "conditional(eventTopic, events.outputs.endpoint, )"


def test_the_topic_takes_cloudevents_with_local_auth_disabled() -> None:
    check_topic(one(TOPIC, "Microsoft.EventGrid/topics").body)


@pytest.mark.parametrize(("key", "value"), [("disableLocalAuth", False), ("inputSchema", "EventGridSchema")])
def test_the_topic_check_catches_a_weakened_topic(key: str, value: Any) -> None:
    body = copy.deepcopy(one(TOPIC, "Microsoft.EventGrid/topics").body)
    body["properties"][key] = value
    with pytest.raises(AssertionError):
        check_topic(body)


def test_the_function_identity_gets_data_sender_on_that_topic_and_nothing_else_there() -> None:
    assignments = [r for r in resources(TOPIC) if r.type == "Microsoft.Authorization/roleAssignments"]
    assert [role_assignment(r) for r in assignments] == [
        (TOPIC, "eventGridDataSender", "functionPrincipalId", "topic")]
    assert roles_file()["eventGridDataSender"]["name"] == "EventGrid Data Sender"
    assert render(module("main.bicep", "events")[0]["params"]["functionPrincipalId"]) == (
        "identities.outputs.functionPrincipalId")
    others = [role_assignment(r)[1] for r in all_resources()
              if r.type == "Microsoft.Authorization/roleAssignments" and r.file != TOPIC]
    assert "eventGridDataSender" not in others, "Data Sender is granted on the topic only"


def test_the_app_gets_the_endpoint_and_its_own_id_as_source_but_no_key() -> None:
    settings = app_settings()
    assert settings["EVENTGRID_TOPIC_ENDPOINT"] == "eventTopicEndpoint"
    assert render(settings["EVENTGRID_EVENT_SOURCE"]) == "resource_id(Microsoft.Web/sites, name)"
    assert "EVENTGRID_TOPIC_KEY" not in settings
    conditional = template("app/function.bicep")["variables"]["eventTopicSettings"]["value"]["operator"]
    assert render(conditional["operands"]["condition"]) == "empty(eventTopicEndpoint)"
