"""Least privilege and protection: the exact role assignments, no secret defaults or outputs, storage
locked to HTTPS/TLS 1.2/identity, the audit container under WORM, the function HTTPS-only."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.infra.bicep_templates import (
    INFRA,
    Resource,
    all_resources,
    bicep_files,
    by_symbol,
    module,
    one,
    param_default,
    render,
    resources,
    roles_file,
    template,
)

# Built-in role definition ids, from the Azure built-in roles reference (independent of infra/roles.json).
BUILT_IN_ROLES = {
    "reader": "acdd72a7-3385-48ef-bd42-f606fba81ae7",
    "storageBlobDataOwner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "storageBlobDataContributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "storageQueueDataContributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "keyVaultSecretsUser": "4633458b-17de-408a-b874-0445c86b69e6",
    "monitoringMetricsPublisher": "3913510d-42f4-4e42-8a64-420c390055eb",
    "eventGridDataSender": "d5a91429-5739-47e2-a06b-3470a27159e7",
}

# (file, role, principal, scope): every role assignment the deployment may make, and no other.
# Scope None: the deployment scope of the file (watched-subscription.bicep targets a subscription).
ALLOWED_ASSIGNMENTS = {
    ("app/rbac.bicep", "storageBlobDataOwner", "functionPrincipalId", "storage"),
    ("app/rbac.bicep", "custom:auditAppenderRole", "functionPrincipalId", "auditContainer"),
    ("app/rbac.bicep", "custom:stateWriterRole", "functionPrincipalId", "stateContainer"),
    ("app/rbac.bicep", "custom:stateWriterRole", "functionPrincipalId", "reportContainer"),
    ("app/rbac.bicep", "storageQueueDataContributor", "functionPrincipalId", "auditStorage"),
    ("app/rbac.bicep", "keyVaultSecretsUser", "functionPrincipalId", "vault"),
    ("app/rbac.bicep", "monitoringMetricsPublisher", "functionPrincipalId", "appInsights"),
    ("app/rbac.bicep", "storageBlobDataContributor", "deadLetterPrincipalId", "deadLetterContainer"),
    ("app/watched-subscription.bicep", "reader", "functionPrincipalId", None),
    ("app/eventtopic.bicep", "eventGridDataSender", "functionPrincipalId", "topic"),
}


def role_assignment(resource: Resource) -> tuple[str, str, str, str | None]:
    properties = resource.body["properties"]
    definition = render(properties["roleDefinitionId"])
    prefix = "subscription_resource_id(Microsoft.Authorization/roleDefinitions, roles."
    custom = {r.symbol for r in resources(resource.file) if r.type == "Microsoft.Authorization/roleDefinitions"}
    if isinstance(definition, str) and definition.endswith(".id") and definition[: -len(".id")] in custom:
        role = "custom:" + definition[: -len(".id")]
    else:
        assert definition.startswith(prefix) and definition.endswith(".id)"), definition
        role = definition[len(prefix) : -len(".id)")]
    assert properties["principalType"] == "ServicePrincipal"
    return resource.file, role, render(properties["principalId"]), render(resource.body.get("scope"))


def check_storage_account(body: dict[str, Any]) -> None:
    properties = body["properties"]
    assert properties["supportsHttpsTrafficOnly"] is True
    assert properties["minimumTlsVersion"] == "TLS1_2"
    assert properties["allowBlobPublicAccess"] is False
    assert properties["allowSharedKeyAccess"] is False


def check_audit_immutability(parsed: dict[str, Any]) -> None:
    policies = [
        r
        for r in resources("app/audit-storage.bicep", parsed)
        if r.type == "Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies"
    ]
    assert len(policies) == 1, "exactly one immutability policy"
    [policy] = policies
    assert render(policy.body["parent"]) == "auditContainer", "only the audit container is immutable"
    assert policy.body["name"] == "default"
    properties = policy.body["properties"]
    assert properties["allowProtectedAppendWrites"] is True
    assert "allowProtectedAppendWritesAll" not in properties
    days = properties["immutabilityPeriodSinceCreationInDays"]
    days = parsed["parameters"][days]["default"] if isinstance(days, str) else days
    assert isinstance(days, int) and days >= 1
    # Deployed unless it is to be locked (the postprovision hook creates and locks it; a locked policy rejects
    # updates, so the template must then leave it alone).
    assert render(policy.condition) == "not(auditPolicyLocked)"
    assert parsed["parameters"]["auditPolicyLocked"]["default"] is False


def check_function_site(body: dict[str, Any]) -> None:
    properties = body["properties"]
    assert properties["httpsOnly"] is True
    assert properties["siteConfig"]["minTlsVersion"] == "1.2"
    assert properties["siteConfig"]["ftpsState"] == "Disabled"
    assert body["identity"]["type"] == "UserAssigned"
    assert properties["keyVaultReferenceIdentity"] == "identityId"
    config = properties["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    assert config["deployment"]["storage"]["authentication"] == {
        "type": "UserAssignedIdentity",
        "userAssignedIdentityResourceId": "identityId",
    }


def test_roles_file_holds_the_real_built_in_role_ids() -> None:
    roles = {key: value["id"] for key, value in roles_file().items() if isinstance(value, dict)}
    assert roles_file()["storageBlobDataOwner"]["actions"][0].endswith("/blobServices/containers/*")
    assert roles == BUILT_IN_ROLES
    for key, value in roles_file().items():
        if isinstance(value, dict):
            assert value["why"].strip(), f"{key}: say why the role is needed"


def test_role_assignments_are_exactly_the_allowed_ones() -> None:
    found = [role_assignment(r) for r in all_resources() if r.type == "Microsoft.Authorization/roleAssignments"]
    assert len(found) == len(set(found)), "duplicate role assignment"
    assert set(found) == ALLOWED_ASSIGNMENTS


def test_role_assignment_modules_load_the_roles_file() -> None:
    for relative in ("app/rbac.bicep", "app/watched-subscription.bicep", "app/eventtopic.bicep"):
        loaded = template(relative)["variables"]["roles"]["value"]["function"]
        assert loaded["type"] == "load_json_content"
        assert loaded["parameters"]["file_path"] == "../roles.json"


def test_custom_roles_are_the_two_data_only_ones_and_no_literal_role_ids() -> None:
    custom = {r.symbol: r for r in all_resources() if r.type == "Microsoft.Authorization/roleDefinitions"}
    assert set(custom) == {"auditAppenderRole", "stateWriterRole"}
    for role in custom.values():
        assert role.file == "app/rbac.bicep"
        [permissions] = role.body["properties"]["permissions"]
        assert permissions["actions"] == [] and permissions["notActions"] == [], "no control-plane action"
        assert render(role.body["properties"]["assignableScopes"]) == ["resource_group().id"]
    for path in bicep_files():
        text = path.read_text(encoding="utf-8").lower()
        for role_id in BUILT_IN_ROLES.values():
            assert role_id not in text, f"{path.name}: use roles.json, not a literal role id"
        # Owner, Contributor, User Access Administrator.
        for broad in (
            "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
            "b24988ac-6180-42a0-ab88-20f7382dd24c",
            "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
        ):
            assert broad not in text


def test_the_right_identities_get_the_roles() -> None:
    rbac = module("main.bicep", "rbac")[0]["params"]
    assert render(rbac["functionPrincipalId"]) == "identities.outputs.functionPrincipalId"
    assert render(rbac["deadLetterPrincipalId"]) == "identities.outputs.deadLetterPrincipalId"
    watch = module("main.bicep", "watch")[0]["params"]
    assert render(watch["functionPrincipalId"]) == "identities.outputs.functionPrincipalId"


def test_secure_parameters_have_no_default() -> None:
    secure = 0
    for path in bicep_files():
        relative = path.relative_to(INFRA).as_posix()
        for name, parameter in (template(relative).get("parameters") or {}).items():
            if any(d["type"] == "secure" for d in parameter["decorators"]):
                secure += 1
                assert parameter["default"] is None, f"{relative}: @secure() param {name} has a default"
    assert secure == 6, "the three webhook URLs, in main.bicep and keyvault.bicep"


def test_webhook_parameters_are_secure() -> None:
    for relative in ("main.bicep", "app/keyvault.bicep"):
        parameters = template(relative)["parameters"]
        for name in ("teamsWebhookUrl", "slackWebhookUrl", "jsonWebhookUrl"):
            assert {"type": "secure"} in parameters[name]["decorators"], f"{relative}: {name}"


def test_no_output_carries_a_secret() -> None:
    for path in bicep_files():
        relative = path.relative_to(INFRA).as_posix()
        parsed = template(relative)
        secure = {
            name
            for name, parameter in (parsed.get("parameters") or {}).items()
            if any(d["type"] == "secure" for d in parameter["decorators"])
        }
        for name, output in (parsed.get("outputs") or {}).items():
            text = str(render(output["value"]))
            # Testing whether a secret was given is fine; carrying its value is not.
            for parameter in secure:
                text = text.replace(f"empty({parameter})", "")
            assert not any(s in text for s in secure), f"{relative}: output {name} exposes a secure parameter"
            assert "list_keys" not in text and "listKeys" not in text and "secretUriWithVersion" not in text
        assert "listKeys(" not in path.read_text(encoding="utf-8")


def test_secrets_are_uri_typed_and_only_created_when_given() -> None:
    secrets = [r for r in resources("app/keyvault.bicep") if r.type == "Microsoft.KeyVault/vaults/secrets"]
    assert {r.body["name"] for r in secrets} == {"teams-webhook-url", "slack-webhook-url", "json-webhook-url"}
    for secret in secrets:
        assert secret.body["properties"]["contentType"] == "text/uri"
        parameter = secret.body["properties"]["value"]
        assert render(secret.condition) == f"not(empty({parameter}))"


def test_key_vault_is_rbac_only_and_recoverable() -> None:
    properties = one("app/keyvault.bicep", "Microsoft.KeyVault/vaults").body["properties"]
    assert properties["enableRbacAuthorization"] is True
    assert properties["enableSoftDelete"] is True
    assert properties["enablePurgeProtection"] is True
    assert "accessPolicies" not in properties


@pytest.mark.parametrize("relative", ["app/storage.bicep", "app/audit-storage.bicep"])
def test_storage_accounts_are_https_tls12_private_and_keyless(relative: str) -> None:
    check_storage_account(one(relative, "Microsoft.Storage/storageAccounts").body)


def test_no_container_is_public() -> None:
    containers = [
        r
        for relative in ("app/storage.bicep", "app/audit-storage.bicep")
        for r in resources(relative)
        if r.type == "Microsoft.Storage/storageAccounts/blobServices/containers"
    ]
    assert len(containers) == 5  # deployment, dead letters, state, audit, report page
    assert all(c.body["properties"]["publicAccess"] == "None" for c in containers)


def test_audit_container_is_worm_with_protected_appends_and_state_stays_mutable() -> None:
    check_audit_immutability(template("app/audit-storage.bicep"))
    assert by_symbol("app/audit-storage.bicep", "stateContainer").body["name"] == "stateContainerName"
    assert param_default("app/audit-storage.bicep", "auditContainerName") == "er-transit-audit"
    assert param_default("app/audit-storage.bicep", "stateContainerName") == "er-transit-state"


def test_state_and_audit_live_apart_from_the_host_storage() -> None:
    host = {r.symbol for r in resources("app/storage.bicep")}
    assert {"stateContainer", "auditContainer", "auditImmutability", "recheckQueue"}.isdisjoint(host)
    params = module("main.bicep", "function")[0]["params"]
    assert render(params["auditBlobEndpoint"]) == "auditStorage.outputs.blobEndpoint"
    assert render(params["auditQueueEndpoint"]) == "auditStorage.outputs.queueEndpoint"
    assert render(params["storageAccountName"]) == "storage.outputs.name"


def test_function_app_is_https_only_flex_python_311_with_its_identity() -> None:
    check_function_site(one("app/function.bicep", "Microsoft.Web/sites").body)
    plan = one("app/function.bicep", "Microsoft.Web/serverfarms").body
    assert plan["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    assert plan["properties"]["reserved"] is True


def test_basic_auth_publishing_is_off() -> None:
    policies = [
        r for r in resources("app/function.bicep") if r.type == "Microsoft.Web/sites/basicPublishingCredentialsPolicies"
    ]
    assert {p.body["name"] for p in policies} == {"ftp", "scm"}
    assert all(p.body["properties"]["allow"] is False for p in policies)


def test_application_insights_takes_entra_authenticated_telemetry_only() -> None:
    component = one("app/monitoring.bicep", "Microsoft.Insights/components").body
    assert component["properties"]["DisableLocalAuth"] is True
    assert render(component["properties"]["WorkspaceResourceId"]) == "workspace.id"


def _storage_with(path: list[str], value: Any) -> dict[str, Any]:
    parsed = copy.deepcopy(template("app/storage.bicep"))
    target = parsed["resources"]["account"]["config"]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return parsed


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("supportsHttpsTrafficOnly", False),
        ("minimumTlsVersion", "TLS1_0"),
        ("allowBlobPublicAccess", True),
        ("allowSharedKeyAccess", True),
    ],
)
def test_storage_check_catches_a_weakened_account(key: str, value: Any) -> None:
    parsed = _storage_with(["properties", key], value)
    with pytest.raises(AssertionError):
        check_storage_account(one("app/storage.bicep", "Microsoft.Storage/storageAccounts", parsed).body)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("allowProtectedAppendWrites", False),
        ("parent", "stateContainer"),
        ("immutabilityPeriodSinceCreationInDays", 0),
    ],
)
def test_immutability_check_catches_a_weakened_policy(key: str, value: Any) -> None:
    parsed = copy.deepcopy(template("app/audit-storage.bicep"))
    body = parsed["resources"]["auditImmutability"]["config"]["config"]
    (body["properties"] if key != "parent" else body)[key] = value
    with pytest.raises(AssertionError):
        check_audit_immutability(parsed)


def test_immutability_check_catches_a_removed_policy() -> None:
    parsed = copy.deepcopy(template("app/audit-storage.bicep"))
    del parsed["resources"]["auditImmutability"]
    with pytest.raises(AssertionError):
        check_audit_immutability(parsed)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (["properties", "httpsOnly"], False),
        (["properties", "siteConfig", "minTlsVersion"], "1.0"),
        (["properties", "siteConfig", "ftpsState"], "AllAllowed"),
        (["properties", "functionAppConfig", "runtime", "version"], "3.9"),
    ],
)
def test_site_check_catches_a_weakened_site(path: list[str], value: Any) -> None:
    body = copy.deepcopy(one("app/function.bicep", "Microsoft.Web/sites").body)
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(AssertionError):
        check_function_site(body)


def test_role_check_catches_an_extra_or_broader_assignment() -> None:
    reader = by_symbol("app/watched-subscription.bicep", "reader")
    broader = copy.deepcopy(reader.body)
    broader["properties"]["roleDefinitionId"]["function"]["parameters"]["resource_name_1"] = "'b24988ac'"
    with pytest.raises(AssertionError):
        role_assignment(Resource(reader.file, "contributor", reader.type, False, broader, None, None))
    wrong_principal = copy.deepcopy(reader.body)
    wrong_principal["properties"]["principalId"] = "deadLetterPrincipalId"
    found = role_assignment(Resource(reader.file, "x", reader.type, False, wrong_principal, None, None))
    assert found not in ALLOWED_ASSIGNMENTS
