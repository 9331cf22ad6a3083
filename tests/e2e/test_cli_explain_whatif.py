"""`python -m shared.cli explain|whatif|policy check` as a user runs them: output, exit status, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.builders import lab, vnet

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "examples" / "lab"
FIXTURES = REPO / "tests" / "fixtures" / "whatif"
FORBID_HUB3 = "forbidden:\n  - name: no-hub-03\n    a: {name: hub-03}\n    reason: hub-03 is isolated\n"


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shared.cli", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=60)


def write(tmp_path: Path, name: str, doc: object) -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
    return path


def assert_bad_input(done: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for text in expected:
        assert text in lines[0]


# -- explain -------------------------------------------------------------------------------------------------------

def test_explain_open_pair_exits_0_and_names_the_route() -> None:
    done = cli("explain", LAB / "03-enable-gw1" / "topology.json", "hub-01", "hub-02")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ("hub-01 <-> hub-02: open ER-transit pair\n- via circuit er-lab: ergw-01 <-> ergw-02: both "
                           "gateways allow remote VNet traffic (ergw-01 true, ergw-02 true)\n")


def test_explain_closed_pair_exits_0_and_names_the_missing_flag() -> None:
    done = cli("explain", LAB / "03-enable-gw1" / "topology.json", "hub-01", "hub-03", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["open"] is False and doc["missing"] == ["ergw-03 allowRemoteVnetTraffic is false"]


def test_explain_unknown_vnet_is_bad_input() -> None:
    assert_bad_input(cli("explain", LAB / "01-baseline" / "topology.json", "hub-01", "hub-09"),
                     "no VNet named 'hub-09'")


def test_explain_ambiguous_name_is_bad_input_and_the_id_works(tmp_path: Path) -> None:
    other = vnet("hub-01", "10.9.0.0/16", rg="rg-other")
    snapshot = write(tmp_path, "s.json", [*lab(enabled=(1, 2)), other])
    assert_bad_input(cli("explain", snapshot, "hub-01", "hub-02"), "ambiguous", "give the id")
    done = cli("explain", snapshot, other["id"], "hub-02")
    assert done.returncode == 0 and "not behind any ExpressRoute gateway" in done.stdout


def test_explain_bad_snapshot_is_bad_input(tmp_path: Path) -> None:
    assert_bad_input(cli("explain", write(tmp_path, "s.json", "{nope"), "a", "b"), "not JSON")


# -- whatif --------------------------------------------------------------------------------------------------------

def test_whatif_json_equals_diff_json_of_the_changed_snapshot() -> None:
    whatif = cli("whatif", LAB / "02-enable-gw2" / "topology.json", "--set", "ergw-01",
                 "allowRemoteVnetTraffic=true", "--json")
    diff = cli("diff", LAB / "02-enable-gw2" / "topology.json", LAB / "03-enable-gw1" / "topology.json", "--json")
    assert whatif.returncode == 0 and diff.returncode == 0, whatif.stderr
    assert json.loads(whatif.stdout) == json.loads(diff.stdout)


def test_whatif_forbidden_opening_exits_1_and_is_marked_critical(tmp_path: Path) -> None:
    policy = write(tmp_path, "policy.yaml", FORBID_HUB3)
    args = ["whatif", LAB / "03-enable-gw1" / "topology.json", "--set", "ergw-03", "allowRemoteVnetTraffic=true"]
    done = cli(*args, "--policy", policy, "--json")
    assert done.returncode == 1, done.stderr
    doc = json.loads(done.stdout)
    assert {p["severity"] for p in doc["opened"]} == {"critical"} and len(doc["opened"]) == 2
    assert doc["opened"][0]["policy"] == {"kind": "forbidden", "rule": "no-hub-03",
                                          "reason": "forbidden by 'no-hub-03': hub-03 is isolated"}
    text = cli(*args, "--policy", policy)
    assert text.returncode == 1 and "critical  opened  hub-01 <-> hub-03: forbidden by 'no-hub-03'" in text.stdout
    assert cli(*args).returncode == 0  # without a policy nothing is forbidden


def test_whatif_closing_a_forbidden_pair_exits_0(tmp_path: Path) -> None:
    snapshot = write(tmp_path, "s.json", lab(enabled=(1, 2, 3)))
    policy = write(tmp_path, "policy.yaml", FORBID_HUB3)
    done = cli("whatif", snapshot, "--delete", "conn-03", "--policy", policy)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("0 opened, 2 closed") and "info      closed  hub-01 <-> hub-03" in done.stdout


def test_whatif_template_and_what_if_json(tmp_path: Path) -> None:
    snapshot = write(tmp_path, "s.json", lab(enabled=(1,)))
    done = cli("whatif", snapshot, "--template", FIXTURES / "template-enable-gw.json", "--json")
    assert done.returncode == 0, done.stderr
    assert [p["endpoints"][1]["name"] for p in json.loads(done.stdout)["opened"]] == ["hub-03"]
    done = cli("whatif", snapshot, "--template", FIXTURES / "whatif-rest-modify-gateway.json")
    assert done.returncode == 0 and "ergw-02 allowRemoteVnetTraffic false -> true" in done.stdout


def test_whatif_template_with_an_unevaluable_expression_is_bad_input() -> None:
    assert_bad_input(cli("whatif", LAB / "01-baseline" / "topology.json", "--template",
                         FIXTURES / "template-unsupported.json"), "cannot evaluate expression", "uniqueString")


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "ergw-09", "allowRemoteVnetTraffic=true"], "no resource named 'ergw-09'"),
    (["--set", "ergw-01", "allowRemoteVnetTraffic"], "expected PROPERTY=VALUE"),
    (["--delete", "nothing-here"], "no resource named 'nothing-here'"),
    ([], "nothing to check"),
    (["--template", "missing.json"], "missing.json: cannot read file"),
    (["--set", "ergw-01", "allowRemoteVnetTraffic=true", "--policy", "missing.yaml"], "cannot read policy file"),
])
def test_whatif_bad_input(args: list[str], message: str) -> None:
    assert_bad_input(cli("whatif", LAB / "01-baseline" / "topology.json", *args), message)


def test_whatif_bad_policy_names_file_and_line(tmp_path: Path) -> None:
    policy = write(tmp_path, "policy.yaml", "forbidden:\n  - a: {name: x}\n    colour: red\n")
    done = cli("whatif", LAB / "01-baseline" / "topology.json", "--set", "ergw-01", "allowRemoteVnetTraffic=true",
               "--policy", policy)
    assert_bad_input(done, f"{policy}:3: unknown key 'colour'")


def test_diff_takes_a_policy_too(tmp_path: Path) -> None:
    policy = write(tmp_path, "policy.yaml", "forbidden:\n  - a: {name: hub-01}\n")
    done = cli("diff", LAB / "02-enable-gw2" / "topology.json", LAB / "03-enable-gw1" / "topology.json",
               "--policy", policy, "--json")
    assert done.returncode == 1 and json.loads(done.stdout)["opened"][0]["severity"] == "critical"


# -- policy check --------------------------------------------------------------------------------------------------

def test_policy_check_of_the_example() -> None:
    done = cli("policy", "check", REPO / "examples" / "policy.yaml")
    assert done.returncode == 0 and done.stdout.endswith("ok (2 forbidden, 1 allowed, 1 accepted; unexpected = "
                                                         "warning)\n")


def test_policy_check_of_a_broken_file(tmp_path: Path) -> None:
    policy = write(tmp_path, "policy.yaml", "accepted:\n  - a: {subscription: s1}\n    reason: r\n    expires: soon\n")
    assert_bad_input(cli("policy", "check", policy), f"{policy}:4: expires 'soon' is not a date")
