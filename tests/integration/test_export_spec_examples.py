"""`export` writes what `pairs` reads: spec-example topologies held by the fake ARM, exported, then read back."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.arm import ResourceGraphTopologyReader, export_main
from shared.cli import main
from tests.integration.fake_arm import FakeArmServer
from tests.spec_examples import SUB, as_arm_holds_it, hubs_files, wan_files


def wan_as_arm_holds_it() -> list[dict[str, Any]]:
    resources = as_arm_holds_it(wan_files())
    # ARM lists a hub's connections under .../hubVirtualNetworkConnections/; the spec example spells the id
    # .../virtualHubVnetConnections/. Its missing `type` is kept, as the example has it.
    for r in resources:
        r["id"] = r["id"].replace("/virtualHubVnetConnections/", "/hubVirtualNetworkConnections/")
    return resources


@pytest.mark.parametrize(("resources", "expected"), [
    pytest.param(as_arm_holds_it(hubs_files()), [["vnet1", "vnet3"], ["vnet2", "vnet3"]], id="hubs"),
    pytest.param(wan_as_arm_holds_it(), [["vnet1", "vnet4"]], id="virtual-wan"),
])
def test_export_writes_a_snapshot_that_pairs_reads(fake_arm: FakeArmServer, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str],
                                                   resources: list[dict[str, Any]], expected: list[list[str]]) -> None:
    fake_arm.set_resources({SUB: resources})
    reader = ResourceGraphTopologyReader(fake_arm.credential, [SUB], **fake_arm.client_options(retry_total=0))
    out, err = io.StringIO(), io.StringIO()

    assert export_main([SUB], out=out, err=err, reader=reader) == 0, err.getvalue()
    snapshot = tmp_path / "export.json"
    snapshot.write_text(out.getvalue(), encoding="utf-8")

    assert main(["pairs", str(snapshot), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [[v.rsplit("/", 1)[-1] for v in p["vnets"]] for p in doc["pairs"]] == expected
    assert doc["warnings"] == []
