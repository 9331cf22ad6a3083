"""The deployment matches the code's contract: every .bicep parses, app settings carry the names the code
reads, azd finds the template, its parameters and the function app."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pycep import BicepParser

from tests.infra.bicep_templates import (
    INFRA,
    REPO_ROOT,
    bicep_files,
    module,
    one,
    param_default,
    render,
    template,
)

FUNCTION = "app/function.bicep"


def app_settings() -> dict[str, Any]:
    """{name: value} of every app setting the template can create (base and optional)."""
    variables = template(FUNCTION)["variables"]
    settings: dict[str, Any] = {}
    for entry in variables["baseSettings"]["value"]:
        settings[entry["name"]] = entry["value"]
    for optional in ("teamsSetting", "slackSetting", "jsonSetting", "allowedHostsSetting", "policySetting",
                     "eventTopicSettings"):
        conditional = variables[optional]["value"]["operator"]
        assert conditional["type"] == "conditional" and conditional["operands"]["true_value"] == []
        for entry in conditional["operands"]["false_value"]:
            settings[entry["name"]] = entry["value"]
    return settings


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: p.relative_to(INFRA).as_posix())
def test_every_bicep_file_parses(path: Path) -> None:
    parsed = BicepParser().parse(file_path=path)
    assert parsed.get("resources") or parsed.get("modules"), f"{path.name} declares nothing"


def test_no_construct_the_offline_parsers_cannot_read() -> None:
    for path in bicep_files():
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"^\s*type\s+\w+\s*=", text, re.MULTILINE), f"{path.name}: user-defined type"
        assert not re.search(r"\[\s*for\b[^\]]*:\s*if\b", text), f"{path.name}: for ... : if loop"
        assert "br/public:" not in text, f"{path.name}: registry modules cannot be checked offline"


def test_site_uses_the_settings_variables() -> None:
    site = one(FUNCTION, "Microsoft.Web/sites").body
    assert render(site["properties"]["siteConfig"]["appSettings"]) == (
        "concat(baseSettings, teamsSetting, slackSetting, jsonSetting, allowedHostsSetting, policySetting, "
        "eventTopicSettings)"
    )


def test_app_settings_are_the_names_the_code_reads() -> None:
    settings = app_settings()
    assert set(settings) == {
        "AzureWebJobsStorage__accountName",
        "AzureWebJobsStorage__credential",
        "AzureWebJobsStorage__clientId",
        "AuditorStorage__blobServiceUri",
        "AuditorStorage__queueServiceUri",
        "AuditorStorage__credential",
        "AuditorStorage__clientId",
        "AZURE_CLIENT_ID",
        "WATCHED_SUBSCRIPTIONS",
        "STATE_CONTAINER",
        "AUDIT_CONTAINER",
        "REPORT_CONTAINER",
        "RECHECK_QUEUE",
        "RECONCILE_SCHEDULE",
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
        "TEAMS_WEBHOOK_URL",
        "SLACK_WEBHOOK_URL",
        "JSON_WEBHOOK_URL",
        "WEBHOOK_ALLOWED_HOSTS",
        "POLICY_FILE",
        "EVENTGRID_TOPIC_ENDPOINT",
        "EVENTGRID_EVENT_SOURCE",
    }


def test_storage_connections_are_identity_based() -> None:
    settings = app_settings()
    for prefix in ("AzureWebJobsStorage", "AuditorStorage"):
        assert settings[f"{prefix}__credential"] == "managedidentity"
        assert settings[f"{prefix}__clientId"] == "identityClientId"
    assert settings["AZURE_CLIENT_ID"] == "identityClientId"
    assert "AzureWebJobsStorage" not in settings, "no connection string with a key"
    assert not any("AccountKey" in str(v) or "SharedAccessSignature" in str(v) for v in settings.values())
    identity = module("main.bicep", "function")[0]["params"]
    assert render(identity["identityClientId"]) == "identities.outputs.functionClientId"


def test_webhook_settings_are_key_vault_references() -> None:
    settings = app_settings()
    for name, uri in (
        ("TEAMS_WEBHOOK_URL", "teamsSecretUri"),
        ("SLACK_WEBHOOK_URL", "slackSecretUri"),
        ("JSON_WEBHOOK_URL", "jsonSecretUri"),
    ):
        assert settings[name] == f"@Microsoft.KeyVault(SecretUri=${{{uri}}})"
    function = module("main.bicep", "function")[0]["params"]
    assert render(function["teamsSecretUri"]) == "vault.outputs.teamsSecretUri"
    outputs = template("app/keyvault.bicep")["outputs"]
    assert "secretUri" in str(render(outputs["teamsSecretUri"]["value"]))
    assert "secretUriWithVersion" not in str(outputs), "versionless, so a rotated secret is picked up"


def test_names_and_defaults_match_the_code() -> None:
    main = template("main.bicep")["variables"]
    assert main["stateContainerName"]["value"] == "er-transit-state"
    assert main["auditContainerName"]["value"] == "er-transit-audit"
    assert main["recheckQueueName"]["value"] == "er-transit-recheck"
    assert main["reportContainerName"]["value"] == "er-transit-report"
    assert param_default("main.bicep", "reconcileSchedule") == "0 */15 * * * *"
    function = module("main.bicep", "function")[0]["params"]
    for name in ("stateContainerName", "auditContainerName", "recheckQueueName", "reportContainerName",
                 "reconcileSchedule"):
        assert function[name] == name
    settings = app_settings()
    assert settings["STATE_CONTAINER"] == "stateContainerName"
    assert settings["AUDIT_CONTAINER"] == "auditContainerName"
    assert settings["RECHECK_QUEUE"] == "recheckQueueName"
    assert settings["REPORT_CONTAINER"] == "reportContainerName"
    assert render(settings["WATCHED_SUBSCRIPTIONS"]) == "join(watchedSubscriptionIds, ,)"
    assert function["watchedSubscriptionIds"] == "watchedSubscriptionIds"


def test_always_ready_instances_keep_the_event_function_warm_only_when_asked() -> None:
    # Off by default (billed while idle); when set, the instances serve the Event Grid function by its own name.
    assert param_default("main.bicep", "alwaysReadyInstances") == 0
    assert param_default(FUNCTION, "alwaysReadyInstances") == 0
    assert module("main.bicep", "function")[0]["params"]["alwaysReadyInstances"] == "alwaysReadyInstances"
    site = one(FUNCTION, "Microsoft.Web/sites").body
    scale = site["properties"]["functionAppConfig"]["scaleAndConcurrency"]
    conditional = scale["alwaysReady"]["operator"]
    assert conditional["type"] == "conditional" and conditional["operands"]["false_value"] == []
    assert render(conditional["operands"]["condition"]) == "greater_than(alwaysReadyInstances, 0)"
    [ready] = conditional["operands"]["true_value"]
    function_app = (REPO_ROOT / "function_app.py").read_text(encoding="utf-8")
    assert ready["name"] == "function:on_resource_event" and '@app.function_name("on_resource_event")' in function_app
    assert ready["instanceCount"] == "alwaysReadyInstances"


def test_azd_finds_the_template_and_the_function_app() -> None:
    azure = yaml.safe_load((REPO_ROOT / "azure.yaml").read_text(encoding="utf-8"))
    assert azure["infra"] == {"provider": "bicep", "path": "infra", "module": "main"}
    [(service, config)] = azure["services"].items()
    assert config == {"project": ".", "language": "python", "host": "function"}
    assert param_default(FUNCTION, "serviceName") == service
    hook = azure["hooks"]["postdeploy"]["posix"]["run"]
    assert (REPO_ROOT / hook).is_file()


def test_parameters_file_covers_every_required_parameter() -> None:
    parameters = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    declared = template("main.bicep")["parameters"]
    assert set(parameters) <= set(declared)
    required = {name for name, p in declared.items() if p["default"] is None}
    assert required <= set(parameters), f"azd would prompt for {required - set(parameters)}"
    for name in ("teamsWebhookUrl", "slackWebhookUrl", "jsonWebhookUrl"):
        assert re.fullmatch(r"\$\{[A-Z_]+=\}", parameters[name]["value"]), "from the azd env, never a literal"


def test_funcignore_keeps_infra_and_tests_out_of_the_package() -> None:
    ignored = (REPO_ROOT / ".funcignore").read_text(encoding="utf-8").split()
    for entry in ("infra", "tests", ".venv", "node_modules", "local.settings.json"):
        assert entry in ignored
    for kept in ("shared", "function_app.py", "host.json", "requirements.txt"):
        assert kept not in ignored
