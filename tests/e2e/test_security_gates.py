"""Security findings of issue 16 through the CLI: gates fail closed and cannot be bent by resource owners."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.builders import SUB, lab, rid

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "examples" / "lab"


def cli(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shared.cli", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env=env)


def write(tmp_path: Path, name: str, doc: object) -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
    return path


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


# -- 8: whatif fails closed ----------------------------------------------------------------------------------------

GW1 = rid("virtualNetworkGateways", "ergw-01")
SCRIPT = f"/subscriptions/{SUB}/resourceGroups/rg-er-lab/providers/Microsoft.Resources/deploymentScripts/flip-it"


def whatif_doc(*changes: dict[str, Any]) -> dict[str, Any]:
    return {"status": "Succeeded", "properties": {"changes": list(changes)}}


def test_whatif_unsupported_change_of_a_gateway_exits_2_naming_it(tmp_path: Path) -> None:
    doc = whatif_doc({"resourceId": GW1, "changeType": "Unsupported",
                      "unsupportedReason": "uses reference() of a resource deployed in this template"})
    line = one_error_line(cli("whatif", write(tmp_path, "s.json", lab()), "--template", write(tmp_path, "w.json", doc)))
    assert "cannot judge 1 change(s)" in line and "Unsupported of " + GW1 in line and "reference()" in line


def test_whatif_deployment_script_exits_2_even_when_nothing_else_changes(tmp_path: Path) -> None:
    doc = whatif_doc({"resourceId": SCRIPT, "changeType": "Create", "after": {"properties": {"azCliVersion": "2.60"}}},
                     {"resourceId": GW1, "changeType": "NoChange"})
    line = one_error_line(cli("whatif", write(tmp_path, "s.json", lab()), "--template", write(tmp_path, "w.json", doc)))
    assert "Create of " + SCRIPT in line and "can change anything" in line


def test_whatif_unknown_change_type_on_a_gateway_exits_2(tmp_path: Path) -> None:
    doc = whatif_doc({"resourceId": GW1, "changeType": "Transmogrify"})
    line = one_error_line(cli("whatif", write(tmp_path, "s.json", lab()), "--template", write(tmp_path, "w.json", doc)))
    assert "Transmogrify of " + GW1 in line and "unknown changeType" in line


def test_whatif_unsupported_change_of_an_unrelated_type_is_still_judged(tmp_path: Path) -> None:
    storage = f"/subscriptions/{SUB}/resourceGroups/rg-er-lab/providers/Microsoft.Storage/storageAccounts/st1"
    doc = whatif_doc({"resourceId": storage, "changeType": "Unsupported"})
    done = cli("whatif", write(tmp_path, "s.json", lab()), "--template", write(tmp_path, "w.json", doc), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["opened"] == []


def test_whatif_template_with_a_deployment_script_exits_2(tmp_path: Path) -> None:
    template = {"$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
                "contentVersion": "1.0.0.0",
                "resources": [{"type": "Microsoft.Resources/deploymentScripts", "apiVersion": "2023-08-01",
                               "name": "flip-it", "kind": "AzureCLI",
                               "properties": {"azCliVersion": "2.60.0", "retentionInterval": "PT1H",
                                              "scriptContent": "az network vnet-gateway update ..."}}]}
    line = one_error_line(cli("whatif", write(tmp_path, "s.json", lab()), "--template",
                              write(tmp_path, "t.json", template)))
    assert "deployment script 'flip-it'" in line and "fails closed" in line


# -- 7: the policy cannot be bent by resource owners ----------------------------------------------------------------

OTHER_SUB = "00000000-0000-0000-0000-0000000000ff"


def enable_gw1(tmp_path: Path, policy: str, snapshot: object | None = None) -> subprocess.CompletedProcess[str]:
    return cli("whatif", write(tmp_path, "s.json", snapshot if snapshot is not None else lab(enabled=(2,))),
               "--set", "ergw-01", "allowRemoteVnetTraffic=true", "--policy", write(tmp_path, "p.yaml", policy),
               "--json")


def test_forbidden_beats_an_acceptance_of_the_same_pair(tmp_path: Path) -> None:
    policy = (f"forbidden:\n  - name: labs-apart\n    a: {{subscription: {SUB}, name: hub-01}}\n"
              f"accepted:\n  - name: hub-01-ok\n    a: {{subscription: {SUB}, name: hub-01}}\n    reason: CHG-9\n")
    done = enable_gw1(tmp_path, policy)
    assert done.returncode == 1, done.stderr
    [opened] = json.loads(done.stdout)["opened"]
    assert opened["severity"] == "critical" and opened["policy"]["rule"] == "labs-apart"
    assert "acceptance 'hub-01-ok' does not override" in opened["policy"]["reason"]


def test_an_acceptance_by_name_alone_is_refused(tmp_path: Path) -> None:
    policy = write(tmp_path, "p.yaml", "accepted:\n  - name: hub-03-migration\n    a: {name: hub-03}\n    reason: r\n")
    line = one_error_line(cli("policy", "check", policy))
    assert f"{policy}:3: accepted rule 'hub-03-migration' side a must name a scope" in line


def test_a_vnet_named_like_an_accepted_one_in_another_subscription_stays_unexpected(tmp_path: Path) -> None:
    # The owner of another subscription names a VNet "hub-01": the acceptance, scoped by subscription, ignores it.
    text = json.dumps(lab(enabled=(2,))).replace(SUB, OTHER_SUB)
    policy = f"accepted:\n  - name: hub-01-ok\n    a: {{subscription: {SUB}, name: hub-01}}\n    reason: CHG-9\n"
    [opened] = json.loads(enable_gw1(tmp_path, policy, text).stdout)["opened"]
    assert (opened["severity"], opened["policy"]["kind"]) == ("warning", "unexpected")
    [opened] = json.loads(enable_gw1(tmp_path, policy).stdout)["opened"]
    assert (opened["severity"], opened["policy"]["kind"]) == ("info", "accepted")


@pytest.mark.parametrize("kind", ["allowed", "accepted"])
def test_tags_can_never_lower_a_severity(tmp_path: Path, kind: str) -> None:
    policy = write(tmp_path, "p.yaml", f"{kind}:\n  - name: t\n    a: {{subscription: {SUB}, tag: {{ok: 'yes'}}}}\n"
                                       "    reason: r\n")
    line = one_error_line(cli("policy", "check", policy))
    assert f"{kind} rule 't' selects by tag" in line and "never lower it" in line


def test_yaml_aliases_are_refused(tmp_path: Path) -> None:
    policy = write(tmp_path, "p.yaml", "forbidden:\n  - name: a\n    a: &hubs [{name: hub-01}, {name: hub-02}]\n"
                                       "    b: *hubs\n")
    line = one_error_line(cli("policy", "check", policy))
    assert f"{policy}:3: YAML anchors and aliases" in line


def test_a_policy_larger_than_the_cap_is_refused(tmp_path: Path) -> None:
    rules = "".join(f"  - name: r{i}\n    a: {{subscription: {SUB}, name: hub-{i:06d}}}\n" for i in range(4000))
    policy = write(tmp_path, "p.yaml", "forbidden:\n" + rules)
    line = one_error_line(cli("policy", "check", policy))
    assert "at most 262144 are read" in line


def test_policy_check_warns_about_rules_naming_vnets_by_name_alone(tmp_path: Path) -> None:
    policy = write(tmp_path, "p.yaml", "forbidden:\n  - name: n\n    a: {name: hub-01}\n"
                                       f"  - name: scoped\n    a: {{subscription: {SUB}, name: hub-02}}\n")
    done = cli("policy", "check", policy)
    assert done.returncode == 0 and done.stdout.endswith("ok (2 forbidden, 0 allowed, 0 accepted; unexpected = "
                                                         "warning)\n")
    assert done.stderr.splitlines() == [f"warning: {policy}:2: forbidden rule 'n' side a selects VNets by name "
                                        "alone: a VNet of that name in any subscription matches, and owners choose "
                                        "names; add subscription, resourceGroup or id"]


# -- 9: replay never touches an Azure store -------------------------------------------------------------------------

def test_replay_ignores_azure_store_settings_and_writes_its_own_folder(tmp_path: Path, azurite: Any) -> None:
    from azure.storage.blob import BlobServiceClient

    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "AuditorStorage": azurite.connection_string,
           "AuditorStorage__blobServiceUri": azurite.blob_url, "STATE_CONTAINER": "replay-must-not-state",
           "AUDIT_CONTAINER": "replay-must-not-audit", "RECHECK_QUEUE": "replay-must-not-queue"}
    done = cli("replay", "examples/replay-lab", "--store", tmp_path / "store", "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 8
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    assert not [c.name for c in service.list_containers(name_starts_with="replay-must-not")]
    assert sorted((tmp_path / "store").glob("audit-*.jsonl"))
    assert cli("audit", "verify", "--store", tmp_path / "store", env=env).returncode == 0


# -- 6: what others write is escaped wherever it is printed or rendered ---------------------------------------------

GOLDEN = REPO / "tests" / "golden"
LINK = "[click here](https://evil.example/x)"


def alert_with(tmp_path: Path, **fields: Any) -> Path:
    alert = json.loads((GOLDEN / "lab-diff.json").read_text(encoding="utf-8"))
    alert.update(fields)
    return write(tmp_path, "alert.json", alert)


def texts_of(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [t for v in node.values() for t in texts_of(v)]
    if isinstance(node, list):
        return [t for v in node for t in texts_of(v)]
    return [node] if isinstance(node, str) else []


def test_teams_facts_and_text_show_a_markdown_link_in_a_display_name_as_text(tmp_path: Path) -> None:
    done = cli("render", "--channel", "teams", alert_with(tmp_path, caller=LINK + " **boss**",
                                                          correlationId="- [x](https://evil.example)"))
    assert done.returncode == 0, done.stderr
    texts = texts_of(json.loads(done.stdout))
    assert not [t for t in texts if "](https://evil" in t or "**boss**" in t]
    assert "\\[click here\\](https:\u200b//evil.example/x) \\*\\*boss\\*\\*" in texts
    assert "\\- \\[x\\](https:\u200b//evil.example)" in texts


def test_slack_text_neutralises_mentions_formatting_backticks_and_bare_links(tmp_path: Path) -> None:
    done = cli("render", "--channel", "slack", alert_with(tmp_path, caller="<!channel> *urgent* `rm` https://evil.example"))
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    [changed_by] = [f for f in body["blocks"][1]["fields"] if f["text"].startswith("*Changed by*")]
    assert changed_by["verbatim"] is True
    assert changed_by["text"] == ("*Changed by*\n&lt;!channel&gt; *\u200burgent*\u200b `\u200brm`\u200b "
                                  "https:\u200b//evil.example")
    assert all(b["text"].get("verbatim") for b in body["blocks"] if b.get("type") == "section" and "text" in b)


HOSTILE = "hub-01\n::error::pwned\x1b[31m\u202e"


def hostile_lab() -> list[dict[str, Any]]:
    """The lab with hub-01 renamed (its id, every reference and its name) to something a terminal must not obey."""
    text = json.dumps(lab(enabled=(1, 2))).replace('virtualNetworks/hub-01"', 'virtualNetworks/HOSTILE"')
    text = text.replace('virtualNetworks/hub-01/', 'virtualNetworks/HOSTILE/').replace('"hub-01"', '"HOSTILE"')
    return list(json.loads(text.replace("HOSTILE", json.dumps(HOSTILE)[1:-1])))


def test_terminal_output_shows_control_characters_and_never_starts_a_runner_command(tmp_path: Path) -> None:
    for args in (["pairs", write(tmp_path, "s.json", hostile_lab())],
                 ["diff", write(tmp_path, "b.json", lab()), write(tmp_path, "a.json", hostile_lab())],
                 ["explain", write(tmp_path, "e.json", hostile_lab()), rid("virtualNetworks", HOSTILE), "hub-02"]):
        done = cli(*args)
        assert done.returncode == 0, done.stderr
        assert "\x1b" not in done.stdout and "\u202e" not in done.stdout
        assert not [line for line in done.stdout.splitlines() if line.lstrip().startswith(("::", "##"))]
        assert "hub-01\\n::error::pwned\\x1b[31m\\u202e" in done.stdout


# -- 5: "Changed by" names only the author of a change among the causes --------------------------------------------

STORY = REPO / "examples" / "replay-lab"


def gateway_event(gateway: str, claims: dict[str, str], event_id: str) -> Any:
    from azure.functions.eventgrid import EventGridEventInConverter
    from azure.functions.meta import Datum

    [doc] = json.loads((STORY / "03-enable-gw1" / "event.json").read_text(encoding="utf-8"))
    text = json.dumps(doc).replace("ergw-01", gateway).replace(doc["id"], event_id)
    doc = json.loads(text)
    doc["data"]["claims"] = claims
    return EventGridEventInConverter.decode(Datum(json.dumps(doc), "json"), trigger_metadata=None)


@pytest.fixture
def local_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from shared import entrypoints

    live = tmp_path / "live.json"
    monkeypatch.setenv("TOPOLOGY_SNAPSHOT", str(live))
    monkeypatch.setenv("STORE_DIR", str(tmp_path / "store"))
    for key in ("WATCHED_SUBSCRIPTIONS", "AuditorStorage", "AuditorStorage__blobServiceUri", "TEAMS_WEBHOOK_URL",
                "SLACK_WEBHOOK_URL", "JSON_WEBHOOK_URL", "POLICY_FILE", "EVENTGRID_TOPIC_ENDPOINT"):
        monkeypatch.delenv(key, raising=False)
    entrypoints.reset()
    yield live
    entrypoints.reset()


def run_event(live: Path, resources: list[dict[str, Any]], event: Any) -> None:
    import function_app

    live.write_text(json.dumps(resources), encoding="utf-8")
    function_app.on_resource_event(event)


UPN = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"
OID = "http://schemas.microsoft.com/identity/claims/objectidentifier"


def test_an_event_on_another_resource_does_not_name_its_caller_as_the_author(
        local_app: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_event(local_app, lab(enabled=(2,)), gateway_event("ergw-02", {UPN: "bob@contoso.example"}, "e-1"))
    capsys.readouterr()
    # Someone enabled ergw-01 without an event reaching us; carol's event on ergw-03 reveals it.
    run_event(local_app, lab(enabled=(1, 2)), gateway_event("ergw-03", {UPN: "carol@contoso.example"}, "e-2"))
    out = capsys.readouterr().out
    assert "ER transit opened: hub-01" in out
    assert "changed by:" not in out
    assert ("detected by: event Microsoft.Network/virtualNetworkGateways/write on ergw-03 from "
            "carol@contoso.example (not among the causes)") in out


def test_the_author_of_a_change_among_the_causes_is_named_and_a_display_name_is_labelled(
        local_app: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_event(local_app, lab(enabled=(2,)), gateway_event("ergw-02", {UPN: "bob@contoso.example"}, "e-1"))
    capsys.readouterr()
    run_event(local_app, lab(enabled=(1, 2)), gateway_event("ergw-01", {"name": "[Boss](https://evil.example)"},
                                                            "e-2"))
    out = capsys.readouterr().out
    assert 'changed by: display name "[Boss](https://evil.example)"' in out and "detected by" not in out
    run_event(local_app, lab(enabled=(2,)), gateway_event("ergw-01", {UPN: "dan@contoso.example",
                                                                        OID: "0000-oid"}, "e-3"))
    assert "changed by: dan@contoso.example" in capsys.readouterr().out


# -- 4: a corrupt audit tail never blocks alerts; a new segment records the damage ----------------------------------

def test_a_junk_line_in_the_audit_log_starts_a_new_segment_and_alerts_still_go_out(
        local_app: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    run_event(local_app, lab(enabled=(2,)), gateway_event("ergw-02", {UPN: "bob@contoso.example"}, "e-1"))
    [day] = sorted(store.glob("audit-*.jsonl"))
    good = day.read_text(encoding="utf-8").splitlines()
    with day.open("a", encoding="utf-8") as f:
        f.write('{"not": "an audit record"\n')  # anyone with data access can append; WORM keeps it forever
    capsys.readouterr()
    run_event(local_app, lab(enabled=(1, 2)), gateway_event("ergw-01", {UPN: "dan@contoso.example"}, "e-2"))
    assert "ER transit opened: hub-01" in capsys.readouterr().out  # the alert went out
    segment = day.with_name(day.name.replace(".jsonl", ".s002.jsonl"))
    first, *rest = [json.loads(line) for line in segment.read_text(encoding="utf-8").splitlines()]
    assert first["outcome"] == "audit damaged" and rest
    assert first["damage"] == {"file": day.name, "line": len(good) + 1, "lastGoodSeq": len(good),
                               "lastGoodHash": first["prevHash"]}
    assert day.read_text(encoding="utf-8").splitlines()[:-1] == good  # nothing rewritten
    done = cli("audit", "verify", "--store", store)
    assert done.returncode == 1
    assert "not valid JSON" in done.stdout and "segment 1: records 1-" in done.stdout
    assert f"segment 2: records {len(good) + 1}-" in done.stdout


def test_a_junk_block_in_an_azure_audit_blob_starts_a_new_segment_blob(tmp_path: Path, azurite: Any,
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    import uuid

    from azure.storage.blob import BlobServiceClient

    from shared import entrypoints

    suffix = uuid.uuid4().hex[:8]
    live = tmp_path / "live.json"
    env = {"TOPOLOGY_SNAPSHOT": str(live), "AuditorStorage": azurite.connection_string,
           "STATE_CONTAINER": f"state-{suffix}", "AUDIT_CONTAINER": f"audit-{suffix}",
           "RECHECK_QUEUE": f"recheck-{suffix}"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("WATCHED_SUBSCRIPTIONS", "TEAMS_WEBHOOK_URL", "SLACK_WEBHOOK_URL", "JSON_WEBHOOK_URL", "POLICY_FILE",
                "EVENTGRID_TOPIC_ENDPOINT", "STORE_DIR"):
        monkeypatch.delenv(key, raising=False)
    entrypoints.reset()
    try:
        run_event(live, lab(enabled=(2,)), gateway_event("ergw-02", {UPN: "bob@contoso.example"}, "a-1"))
        container = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(
            f"audit-{suffix}")
        [day] = [b.name for b in container.list_blobs()]
        container.get_blob_client(day).append_block(b"junk\n")
        capsys.readouterr()
        run_event(live, lab(enabled=(1, 2)), gateway_event("ergw-01", {UPN: "dan@contoso.example"}, "a-2"))
        assert "ER transit opened: hub-01" in capsys.readouterr().out
        names = sorted(b.name for b in container.list_blobs())
        assert names == [day, day.replace(".jsonl", ".s002.jsonl")]
        first = json.loads(container.get_blob_client(names[1]).download_blob().readall().splitlines()[0])
        assert first["outcome"] == "audit damaged" and first["damage"]["file"] == day
    finally:
        entrypoints.reset()
    done = cli("audit", "verify", "--from-settings", env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), **env})
    assert done.returncode == 1 and "segment 2: records" in done.stdout, done.stdout + done.stderr


# -- 2: configured but unusable chat settings fail visibly, never fall back to the console --------------------------

@pytest.mark.parametrize("value", ["@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/slack/)",
                                   "http://hooks.slack.com/services/T0/B0/x"])
def test_an_unusable_webhook_setting_keeps_alerts_queued_and_says_so(
        local_app: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture, value: str) -> None:
    from shared.adapters.store import LocalAuditLog, LocalStateStore

    monkeypatch.setenv("SLACK_WEBHOOK_URL", value)
    run_event(local_app, lab(enabled=(2,)), gateway_event("ergw-02", {UPN: "bob@contoso.example"}, "u-1"))
    run_event(local_app, lab(enabled=(1, 2)), gateway_event("ergw-01", {UPN: "dan@contoso.example"}, "u-2"))
    assert "ER transit opened" not in capsys.readouterr().out  # no silent console "delivery"
    state, _ = LocalStateStore(tmp_path / "store").load()
    assert state is not None
    [queued] = [i for i in state.outbox if i.get("kind") == "alert"]
    assert queued["notifier"] == "slack:SLACK_WEBHOOK_URL" and "configured but unusable" in queued["lastError"]
    [delivery] = [r for r in LocalAuditLog(tmp_path / "store").records() if r["outcome"] == "delivery"]
    assert delivery["delivered"] == [] and delivery["undelivered"] == [queued["id"]]
    assert "SLACK_WEBHOOK_URL" in caplog.text and "hooks.slack.com/services" not in caplog.text


def test_without_any_webhook_setting_the_console_is_the_default(local_app: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    run_event(local_app, lab(enabled=(2,)), gateway_event("ergw-02", {UPN: "bob@contoso.example"}, "c-1"))
    run_event(local_app, lab(enabled=(1, 2)), gateway_event("ergw-01", {UPN: "dan@contoso.example"}, "c-2"))
    assert "ER transit opened: hub-01" in capsys.readouterr().out
