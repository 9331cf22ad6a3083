"""`pairs`, `diff`, `explain`, `whatif` on topologies built from the Azure REST API specification's examples.

Each snapshot is a folder with one file per resource, as `az network ... show` or `az rest` write them (single ARM GET
bodies, an ARM list, bodies without `type`). Expected answers are written by hand from DESIGN.md's transit rules.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shared.cli import main
from tests.spec_examples import as_arm_holds_it, circuits, hubs_files, vnet_id, wan_files, write_files

REPO = Path(__file__).resolve().parents[2]
HUB_PAIRS = [["vnet1", "vnet3"], ["vnet2", "vnet3"]]


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    status = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


def run_json(capsys: pytest.CaptureFixture[str], *args: str | Path) -> Any:
    status, out, err = run(capsys, *args, "--json")
    assert (status, err) == (0, ""), err
    return json.loads(out)


def names(pairs: list[dict[str, Any]]) -> list[list[str]]:
    return [[v.rsplit("/", 1)[-1] for v in p["vnets"]] for p in pairs]


@pytest.fixture
def hubs(tmp_path: Path) -> Path:
    return write_files(tmp_path / "hubs", hubs_files())


@pytest.fixture
def hubs_no_private_peering(tmp_path: Path) -> Path:
    return write_files(tmp_path / "hubs-before", hubs_files(private_peering_apart=False))


def test_pairs_of_a_folder_of_spec_examples(hubs: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "shared.cli", "pairs", str(hubs), "--json"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, "")
    doc = json.loads(done.stdout)
    assert names(doc["pairs"]) == HUB_PAIRS
    assert doc["pairs"][0]["vnets"] == [vnet_id("vnet1"), vnet_id("vnet3")]
    circuit = "/subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Network/expressRouteCircuits/circuitName1"
    assert [p["circuits"] for p in doc["pairs"]] == [[circuit], [circuit]]
    assert doc["warnings"] == [] and all(p["warnings"] == [] for p in doc["pairs"])


def test_pairs_of_several_files_merges_them(capsys: pytest.CaptureFixture[str], hubs: Path) -> None:
    files = sorted(hubs.iterdir())
    assert names(run_json(capsys, "pairs", *files)["pairs"]) == HUB_PAIRS
    without_peering = [f for f in files if "private-peering" not in f.name]
    assert run_json(capsys, "pairs", *without_peering)["pairs"] == []


def test_the_private_peering_given_apart_alone_opens_both_pairs(capsys: pytest.CaptureFixture[str], hubs: Path,
                                                                  hubs_no_private_peering: Path) -> None:
    doc = run_json(capsys, "diff", hubs_no_private_peering, hubs)
    assert names(doc["opened"]) == HUB_PAIRS and doc["closed"] == []
    assert {c["text"] for p in doc["opened"] for c in p["cause"]} == {
        "circuit circuitName1 privatePeeringState null -> Enabled"}


def test_disabling_the_circuit_closes_both_pairs(capsys: pytest.CaptureFixture[str], hubs: Path,
                                                  tmp_path: Path) -> None:
    files = hubs_files()
    files["circuits.json"] = circuits(circuitName1={"circuitProvisioningState": "Disabled"})
    after = write_files(tmp_path / "disabled", files)
    doc = run_json(capsys, "diff", hubs, after)
    assert doc["opened"] == [] and names(doc["closed"]) == HUB_PAIRS
    assert {c["text"] for p in doc["closed"] for c in p["cause"]} == {
        "circuit circuitName1 circuitProvisioningState Enabled -> Disabled"}


def test_explain_says_why_on_every_line(capsys: pytest.CaptureFixture[str], hubs: Path,
                                        hubs_no_private_peering: Path) -> None:
    status, out, _ = run(capsys, "explain", hubs_no_private_peering, "vnet2", "vnet3")
    assert status == 0
    assert out == (
        "vnet2 <-> vnet3: not an ER-transit pair\n"
        "- via circuit circuitName1: circuit circuitName1 has no AzurePrivatePeering\n"
        "- via circuit circuitName1, vpngw <-> vpngw3: both gateways would carry it, but circuit circuitName1 "
        "cannot (above)\n")
    status, out, _ = run(capsys, "explain", hubs, "vnet1", "vnet2")
    assert (status, out) == (0, "vnet1 <-> vnet2: not an ER-transit pair\n- vnet1 and vnet2 are both behind vpngw: "
                                "VNets behind one gateway reach each other through the hub, not through ExpressRoute\n"
                                "- via circuit circuitName1, vpngw <-> vpngw: vpngw is the gateway of both sides: one "
                                "gateway does not carry transit between its own VNets\n")


def test_whatif_turning_off_one_gateway_closes_its_pairs(capsys: pytest.CaptureFixture[str], hubs: Path) -> None:
    doc = run_json(capsys, "whatif", hubs, "--set", "vpngw3", "allowRemoteVnetTraffic=false")
    assert doc["opened"] == [] and names(doc["closed"]) == HUB_PAIRS
    assert {c["text"] for p in doc["closed"] for c in p["cause"]} == {"vpngw3 allowRemoteVnetTraffic true -> false"}


def test_whatif_on_a_circuit_peering_given_apart(capsys: pytest.CaptureFixture[str], hubs: Path) -> None:
    doc = run_json(capsys, "whatif", hubs, "--set", "circuitName1/AzurePrivatePeering", "state=Disabled")
    assert names(doc["closed"]) == HUB_PAIRS


def test_whatif_virtual_wan_hub_allowing_non_wan_traffic_opens_the_pair(capsys: pytest.CaptureFixture[str],
                                                                        tmp_path: Path) -> None:
    folder = write_files(tmp_path / "wan", wan_files(allow_non_wan=False))
    assert run_json(capsys, "pairs", folder)["pairs"] == []
    doc = run_json(capsys, "whatif", folder, "--set", "expressRouteGatewayName", "allowNonVirtualWanTraffic=true")
    assert names(doc["opened"]) == [["vnet1", "vnet4"]] and doc["closed"] == []
    assert {c["text"] for p in doc["opened"] for c in p["cause"]} == {
        "Virtual WAN gateway expressRouteGatewayName allowNonVirtualWanTraffic false -> true"}


def test_one_arm_get_body_is_a_snapshot(capsys: pytest.CaptureFixture[str], hubs: Path) -> None:
    doc = run_json(capsys, "pairs", hubs / "vpngw.json")
    assert doc["pairs"] == [] and any("vnet1" in w and "not in the snapshot" in w for w in doc["warnings"])


def test_whatif_on_one_page_of_several_says_pages_are_missing(capsys: pytest.CaptureFixture[str],
                                                              tmp_path: Path) -> None:
    page = tmp_path / "page-0.json"
    page.write_text(json.dumps({"count": 3, "data": as_arm_holds_it(hubs_files()), "skip_token": "ew0KICAiJGlkIjog",
                                "total_records": 2000}), encoding="utf-8")
    doc = run_json(capsys, "whatif", page, "--set", "vpngw3", "allowRemoteVnetTraffic=false")
    assert names(doc["closed"]) == HUB_PAIRS
    assert doc["warnings"][0].startswith(f"{page}: its 'skip_token' says more pages exist")
