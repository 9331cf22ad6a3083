"""Issue 16, item 1: no role of the function identity can delete or re-policy the audit container, and the
locked-policy path locks it at deploy time."""

from __future__ import annotations

import copy
import fnmatch
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.infra.bicep_templates import INFRA, REPO_ROOT, Resource, all_resources, render, resources, roles_file

STORAGE = "Microsoft.Storage/storageAccounts"
CONTAINERS = f"{STORAGE}/blobServices/containers"
# What would let the identity remove the evidence: delete or rewrite the container, remove, shorten or lock its
# immutability policy, delete or reconfigure the account, or grant itself more.
FORBIDDEN_ACTIONS = (
    f"{CONTAINERS}/delete",
    f"{CONTAINERS}/write",
    f"{CONTAINERS}/immutabilityPolicies/write",
    f"{CONTAINERS}/immutabilityPolicies/delete",
    f"{CONTAINERS}/immutabilityPolicies/lock/action",
    f"{CONTAINERS}/immutabilityPolicies/extend/action",
    f"{STORAGE}/blobServices/write",
    f"{STORAGE}/delete",
    f"{STORAGE}/write",
    "Microsoft.Authorization/roleAssignments/write",
    "Microsoft.Authorization/roleDefinitions/write",
)
# On audit blobs: only read, create and append.
FORBIDDEN_DATA_ACTIONS = (
    f"{CONTAINERS}/blobs/delete",
    f"{CONTAINERS}/blobs/write",
    f"{CONTAINERS}/blobs/move/action",
    f"{CONTAINERS}/blobs/deleteBlobVersion/action",
    f"{CONTAINERS}/blobs/permanentDelete/action",
    f"{CONTAINERS}/blobs/immutableStorage/runAsSuperUser/action",
)
# Scopes (as rbac.bicep and watched-subscription.bicep name them) that hold the audit container. A watched
# subscription may be the hosting one (the default), so a subscription-wide grant counts.
SCOPES_OVER_THE_AUDIT_CONTAINER = {"auditContainer", "auditStorage", None}


def permissions(resource: Resource, role: str, definitions: dict[str, Resource]) -> tuple[list[str], list[str]]:
    if role.startswith("custom:"):
        [p] = definitions[role.split(":", 1)[1]].body["properties"]["permissions"]
        return list(p["actions"]), list(p["dataActions"])
    built_in = roles_file()[role]
    return list(built_in["actions"]), list(built_in["dataActions"])


def role_of(resource: Resource, definitions: dict[str, Resource]) -> str:
    definition = render(resource.body["properties"]["roleDefinitionId"])
    if isinstance(definition, str) and definition.endswith(".id") and definition[:-3] in definitions:
        return "custom:" + definition[:-3]
    prefix = "subscription_resource_id(Microsoft.Authorization/roleDefinitions, roles."
    assert definition.startswith(prefix), definition
    return definition[len(prefix) : -len(".id)")]


def powers_over_the_audit_container(found: list[Resource]) -> list[str]:
    """Every (assignment, permission) of the function identity that could remove or rewrite audit evidence."""
    definitions = {r.symbol: r for r in found if r.type == "Microsoft.Authorization/roleDefinitions"}
    problems = []
    for r in found:
        if r.type != "Microsoft.Authorization/roleAssignments":
            continue
        if render(r.body["properties"]["principalId"]) != "functionPrincipalId":
            continue
        scope = render(r.body.get("scope"))
        if scope not in SCOPES_OVER_THE_AUDIT_CONTAINER:
            continue
        role = role_of(r, definitions)
        actions, data_actions = permissions(r, role, definitions)
        for granted, forbidden in ((actions, FORBIDDEN_ACTIONS), (data_actions, FORBIDDEN_DATA_ACTIONS)):
            for pattern in granted:
                for action in forbidden:
                    if fnmatch.fnmatchcase(action.lower(), pattern.lower()):
                        problems.append(f"{r.file} {r.symbol} ({role} on {scope}): {pattern} allows {action}")
    return problems


def test_no_role_of_the_function_identity_can_delete_or_re_policy_the_audit_container() -> None:
    found = list(all_resources())
    assert powers_over_the_audit_container(found) == []
    # And it can still do its job there: read, create and append audit blobs.
    appender = next(r for r in found if r.symbol == "auditAppenderRole")
    [p] = appender.body["properties"]["permissions"]
    assert sorted(p["dataActions"]) == [f"{CONTAINERS}/blobs/add/action", f"{CONTAINERS}/blobs/read"]


def _with_assignment(role: str, scope: str | None) -> list[Resource]:
    found = list(all_resources())
    model = next(r for r in found if r.symbol == "functionQueueContributor")
    body = copy.deepcopy(model.body)
    body["scope"] = scope
    accessor = body["properties"]["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]  # roles.X.id
    accessor["operator"]["operands"]["operand_2"]["operator"]["operands"]["operand_1"] = role
    return [*found, Resource(model.file, "extra", model.type, False, body, None, None)]


@pytest.mark.parametrize(("role", "scope"), [
    ("storageBlobDataOwner", "auditStorage"),      # the old grant: containers/* on the whole account
    ("storageBlobDataContributor", "auditContainer"),  # containers/delete, blobs/delete
    ("storageBlobDataOwner", None),                # subscription-wide
])
def test_the_check_catches_a_control_plane_grant_over_the_audit_container(role: str, scope: str | None) -> None:
    found = _with_assignment(role, scope)
    assert render(found[-1].body["properties"]["roleDefinitionId"]).endswith(f"roles.{role}.id)")
    assert powers_over_the_audit_container(found)


def test_the_check_ignores_the_host_account_and_catches_a_widened_custom_role() -> None:
    assert powers_over_the_audit_container(_with_assignment("storageBlobDataOwner", "storage")) == []
    found = copy.deepcopy(list(all_resources()))
    appender = next(r for r in found if r.symbol == "auditAppenderRole")
    appender.body["properties"]["permissions"][0]["dataActions"].append(f"{CONTAINERS}/blobs/write")
    assert any("blobs/write" in p for p in powers_over_the_audit_container(found))
    appender.body["properties"]["permissions"][0]["actions"].append(f"{CONTAINERS}/*")
    assert any("immutabilityPolicies/write" in p for p in powers_over_the_audit_container(found))


# -- auditPolicyLocked: locked at deploy time by the postprovision hook ---------------------------------------------

def test_the_postprovision_hook_is_wired_for_both_shells() -> None:
    azure = yaml.safe_load((REPO_ROOT / "azure.yaml").read_text(encoding="utf-8"))
    hook = azure["hooks"]["postprovision"]
    assert hook["posix"]["run"] == "./infra/scripts/lock-audit-policy.sh"
    assert hook["windows"]["run"] == "./infra/scripts/lock-audit-policy.ps1"
    assert all((REPO_ROOT / h["run"]).is_file() for h in hook.values())
    assert os.access(REPO_ROOT / hook["posix"]["run"], os.X_OK)
    outputs = (INFRA / "main.bicep").read_text(encoding="utf-8")
    for name in ("AZURE_RESOURCE_GROUP", "AUDIT_STORAGE_ACCOUNT_NAME", "AUDIT_CONTAINER", "AUDIT_RETENTION_DAYS"):
        assert f"output {name} " in outputs


FAKE_AZ = """#!/bin/sh
echo "$*" >> "$AZ_LOG"
case "$*" in
  *"immutability-policy show"*"--query state"*) cat "$AZ_STATE" ;;
  *"immutability-policy show"*"--query immutabilityPeriodSinceCreationInDays"*) cat "$AZ_PERIOD" ;;
  *"immutability-policy show"*"--query etag"*) echo '"0x8DC0FFEE"' ;;
  *"immutability-policy create"*) echo Unlocked > "$AZ_STATE"; echo 400 > "$AZ_PERIOD" ;;
  *"immutability-policy lock"*) echo Locked > "$AZ_STATE" ;;
esac
"""


def run_hook(tmp_path: Path, *, locked: str, state: str, period: str = "0") -> list[str]:
    (tmp_path / "bin").mkdir(exist_ok=True)
    az = tmp_path / "bin" / "az"
    az.write_text(FAKE_AZ)
    az.chmod(0o755)
    (tmp_path / "state").write_text(state + "\n")
    (tmp_path / "period").write_text(period + "\n")
    log = tmp_path / "az.log"
    log.write_text("")
    env = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "AZ_LOG": str(log), "AZ_STATE": str(tmp_path / "state"),
           "AZ_PERIOD": str(tmp_path / "period"), "AUDIT_POLICY_LOCKED": locked, "AZURE_RESOURCE_GROUP": "rg-x",
           "AUDIT_STORAGE_ACCOUNT_NAME": "stauditx", "AUDIT_CONTAINER": "er-transit-audit",
           "AUDIT_RETENTION_DAYS": "400"}
    subprocess.run(["sh", str(INFRA / "scripts" / "lock-audit-policy.sh")], env=env, check=True, timeout=30,
                   capture_output=True)
    return [line for line in log.read_text().splitlines() if " show " not in f" {line} "]


def test_the_hook_does_nothing_unless_auditpolicylocked(tmp_path: Path) -> None:
    assert run_hook(tmp_path, locked="false", state="") == []


def test_the_hook_creates_and_locks_the_policy_with_protected_appends(tmp_path: Path) -> None:
    calls = run_hook(tmp_path, locked="true", state="")
    where = "-g rg-x --account-name stauditx -c er-transit-audit"
    assert calls == [
        f"storage container immutability-policy create {where} --period 400 --allow-protected-append-writes true"
        " -o none",
        f"storage container immutability-policy lock {where} --if-match \"0x8DC0FFEE\" -o none",
    ]


def test_the_hook_locks_an_unlocked_policy_and_leaves_a_locked_one_alone(tmp_path: Path) -> None:
    assert [c.split()[3] for c in run_hook(tmp_path, locked="true", state="Unlocked", period="365")] == [
        "create", "lock"]
    assert run_hook(tmp_path, locked="true", state="Locked", period="400") == []
    assert [c.split()[3] for c in run_hook(tmp_path, locked="true", state="Locked", period="365")] == ["extend"]


def test_the_template_leaves_a_policy_to_be_locked_to_the_hook() -> None:
    [policy] = [r for r in resources("app/audit-storage.bicep")
                if r.type == f"{CONTAINERS}/immutabilityPolicies"]
    assert render(policy.condition) == "not(auditPolicyLocked)"


