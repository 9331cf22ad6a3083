"""`python -m shared.cli pairs|diff` run as a real process on the lab example and on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.builders import hub_and_spoke, lab, recase_references, vnet

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "examples" / "lab"
BASELINE, GW2, GW1 = (LAB / step / "topology.json" for step in ("01-baseline", "02-enable-gw2", "03-enable-gw1"))

PAIR_KEYS = {"vnets", "circuits", "gateways", "warnings"}  # DESIGN.md, command-line contract


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shared.cli", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=60)


def cli_json(*args: str | Path) -> Any:
    done = cli(*args, "--json")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return json.loads(done.stdout)


def name(resource_id: str) -> str:
    return resource_id.rsplit("/", 1)[-1]


def write(tmp_path: Path, resources: list[dict[str, Any]], file: str = "topology.json") -> Path:
    path = tmp_path / file
    path.write_text(json.dumps({"value": resources}), encoding="utf-8")
    return path


def assert_pair_shape(pair: dict[str, Any]) -> None:
    assert set(pair) >= PAIR_KEYS
    a, b = pair["vnets"]
    assert a.lower() < b.lower()
    assert all(isinstance(pair[k], list) for k in PAIR_KEYS)
    assert all(isinstance(x, str) for k in PAIR_KEYS for x in pair[k])


# -- the lab story ------------------------------------------------------------------------------------------------

def test_baseline_has_no_pair() -> None:
    doc = cli_json("pairs", BASELINE)
    assert doc == {"pairs": [], "warnings": []}


def test_step_one_enabling_gw2_alone_opens_nothing() -> None:
    assert cli_json("diff", BASELINE, GW2)["opened"] == []
    assert cli_json("diff", BASELINE, GW2)["closed"] == []


def test_step_one_table_says_nothing_opened() -> None:
    done = cli("diff", BASELINE, GW2)
    assert done.returncode == 0 and done.stderr == ""
    assert "no ER-transit path opened or closed" in done.stdout


def test_step_two_enabling_gw1_opens_exactly_hub01_hub02_with_its_cause() -> None:
    doc = cli_json("diff", GW2, GW1)
    assert doc["closed"] == []
    (opened,) = doc["opened"]
    assert_pair_shape(opened)
    assert [name(v) for v in opened["vnets"]] == ["hub-01", "hub-02"]
    assert [name(c) for c in opened["circuits"]] == ["er-lab"]
    assert [name(g) for g in opened["gateways"]] == ["ergw-01", "ergw-02"]
    assert [c["text"] for c in opened["cause"]] == ["ergw-01 allowRemoteVnetTraffic false -> true"]
    (cause,) = opened["cause"]
    assert (cause["property"], cause["old"], cause["new"]) == ("allowRemoteVnetTraffic", False, True)


def test_step_two_table_names_the_cause_and_the_pair() -> None:
    done = cli("diff", GW2, GW1)
    assert done.returncode == 0
    assert "1 opened, 0 closed" in done.stdout
    assert "cause: ergw-01 allowRemoteVnetTraffic false -> true" in done.stdout
    assert "hub-01" in done.stdout and "hub-02" in done.stdout and "hub-03" not in done.stdout


def test_going_back_closes_the_pair_with_the_reverse_cause() -> None:
    doc = cli_json("diff", GW1, GW2)
    assert doc["opened"] == []
    (closed,) = doc["closed"]
    assert [c["text"] for c in closed["cause"]] == ["ergw-01 allowRemoteVnetTraffic true -> false"]


def test_pairs_json_of_the_last_step() -> None:
    doc = cli_json("pairs", GW1)
    assert set(doc) >= {"pairs", "warnings"} and doc["warnings"] == []
    (only,) = doc["pairs"]
    assert_pair_shape(only)
    assert [name(v) for v in only["vnets"]] == ["hub-01", "hub-02"]


def test_pairs_table_of_the_last_step() -> None:
    done = cli("pairs", GW1)
    assert done.returncode == 0
    assert done.stdout.splitlines()[0] == "1 ER-transit pair(s)"


# -- ordering ------------------------------------------------------------------------------------------------------

def test_pairs_are_sorted_and_each_names_a_before_b_case_insensitively(tmp_path: Path) -> None:
    resources = lab(enabled=(1, 2, 3))
    hubs = {r["name"]: r for r in resources if r["name"].startswith("hub-")}
    for hub, spoke_name in (("hub-01", "Zeta"), ("hub-02", "alpha"), ("hub-03", "Beta")):
        spoke = vnet(spoke_name, "10.200.0.0/24")
        hub_and_spoke(hubs[hub], spoke)
        resources.append(spoke)
    doc = cli_json("pairs", write(tmp_path, recase_references(resources, str.upper)))
    pairs = [p["vnets"] for p in doc["pairs"]]
    assert len(pairs) == 3 + 3 * 2 + 3  # hubs, hub-spoke across hubs, spoke-spoke
    for p in doc["pairs"]:
        assert_pair_shape(p)
    assert pairs == sorted(pairs, key=lambda p: (p[0].lower(), p[1].lower()))
    assert ["alpha", "Zeta"] in [[name(a), name(b)] for a, b in pairs]
    # ids spelled as the VNets spell themselves, not as the (upper-cased) references do
    assert all(name(v) in {"hub-01", "hub-02", "hub-03", "Zeta", "alpha", "Beta"} for p in pairs for v in p)


def test_diff_pairs_are_sorted(tmp_path: Path) -> None:
    before = write(tmp_path, lab(), "before.json")
    after = write(tmp_path, lab(enabled=(1, 2, 3)), "after.json")
    doc = cli_json("diff", before, after)
    opened = [[name(v) for v in p["vnets"]] for p in doc["opened"]]
    assert opened == [["hub-01", "hub-02"], ["hub-01", "hub-03"], ["hub-02", "hub-03"]]
    for p in doc["opened"]:
        assert_pair_shape(p)
        assert isinstance(p["cause"], list) and p["cause"]


# -- bad input -----------------------------------------------------------------------------------------------------

def assert_bad_input(done: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    for text in expected:
        assert text in lines[0]


def test_missing_file_exits_2_with_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    assert_bad_input(cli("pairs", missing), str(missing), "cannot read file")


def test_not_json_exits_2_with_file_and_position(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("[\n{,]", encoding="utf-8")
    assert_bad_input(cli("pairs", path), str(path), "not JSON", "line 2")


def test_resource_without_type_or_typed_id_exits_2_with_its_position(tmp_path: Path) -> None:
    resources = lab()
    del resources[1]["type"]
    resources[1]["id"] = "/subscriptions/s/resourceGroups/rg/not-a-provider-id"
    path = write(tmp_path, resources)
    assert_bad_input(cli("pairs", path, "--json"), str(path), "value[1]", "'type'")


def test_top_level_object_without_value_or_data_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "object.json"
    path.write_text('{"resources": []}', encoding="utf-8")
    assert_bad_input(cli("pairs", path), str(path), "top level")


def test_bad_after_snapshot_in_diff_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "after.json"
    path.write_text("not json", encoding="utf-8")
    assert_bad_input(cli("diff", BASELINE, path, "--json"), str(path))


@pytest.mark.parametrize("odd", [{"ipConfigurations": 5}, {"allowRemoteVnetTraffic": "maybe"}])
def test_oddly_typed_fields_are_no_traceback(tmp_path: Path, odd: dict[str, Any]) -> None:
    resources = lab(enabled=(1, 2))
    next(r for r in resources if r["name"] == "ergw-01")["properties"].update(odd)
    done = cli("pairs", write(tmp_path, resources), "--json")
    assert done.returncode == 0 and "Traceback" not in done.stderr
    json.loads(done.stdout)
