"""`python -m shared.cli report` run as a real process: the page it writes, and one-line errors on bad input."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAB3 = REPO / "examples" / "lab" / "03-enable-gw1" / "topology.json"


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shared.cli", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def page_data(page: Path) -> dict:
    text = page.read_text(encoding="utf-8")
    found = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', text, re.S)
    assert found is not None
    return json.loads(found.group(1))


def test_report_of_the_lab_with_the_replayed_audit_log_states_the_chain_verified(tmp_path: Path) -> None:
    store = tmp_path / "store"
    assert cli("replay", REPO / "examples" / "replay-lab", "--store", store).returncode == 0
    out = tmp_path / "deep" / "report.html"
    done = cli("report", LAB3, "--store", store, "--policy", REPO / "examples" / "policy.yaml", "-o", out)
    assert done.returncode == 0, done.stderr
    assert f"report written to {out}" in done.stdout
    data = page_data(out)
    assert data["counts"]["openPairs"] == 1 and data["circuits"][0]["cells"] == "obb"
    assert data["audit"]["verified"] is True and data["audit"]["records"] == 10
    runs = data["audit"]["runs"]
    opened = [r for r in runs if r["opened"]]
    # The reconcile that confirmed gateway 3 is attributed to who started the change (audit list does the same).
    assert [(r["who"], r["opened"]) for r in opened] == [("bob@contoso.example", 1), ("alice@contoso.example", 2)]
    assert all(len(r.get("alerts", [])) == 1 for r in opened)
    assert "audit chain verified (10 records)" in out.read_text(encoding="utf-8")


def test_report_says_when_the_audit_chain_is_broken(tmp_path: Path) -> None:
    store = tmp_path / "store"
    assert cli("replay", REPO / "examples" / "replay-lab", "--store", store).returncode == 0
    (log,) = store.glob("audit-*.jsonl")
    lines = log.read_text(encoding="utf-8").splitlines()
    log.write_text("\n".join(lines[:3] + lines[4:]) + "\n", encoding="utf-8")  # a record removed
    out = tmp_path / "report.html"
    assert cli("report", LAB3, "--store", store, "-o", out).returncode == 0
    data = page_data(out)
    assert data["audit"]["verified"] is False and "record 4" in data["audit"]["problem"]
    assert "audit chain NOT verified" in out.read_text(encoding="utf-8")


def test_report_says_when_the_last_audit_record_was_cut(tmp_path: Path) -> None:
    store = tmp_path / "store"
    assert cli("replay", REPO / "examples" / "replay-lab", "--store", store).returncode == 0
    (log,) = store.glob("audit-*.jsonl")
    lines = log.read_text(encoding="utf-8").splitlines()
    log.write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")  # the last record (of any kind) cut
    out = tmp_path / "report.html"
    assert cli("report", LAB3, "--store", store, "-o", out).returncode == 0
    data = page_data(out)
    assert data["audit"]["verified"] is False
    assert "records at the end of the log are missing (1 record)" in data["audit"]["problem"]


@pytest.mark.parametrize(("args", "message"), [
    (["no-such.json"], "no-such.json: cannot read file"),
    ([LAB3, "--store", "no-such-store"], "no-such-store: no such store folder"),
    ([LAB3, "--policy", "no-such-policy.yaml"], "no-such-policy.yaml:0: cannot read policy file"),
])
def test_report_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str | Path], message: str) -> None:
    done = cli("report", *args, "-o", tmp_path / "r.html")
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and message in done.stderr and done.stderr.count("\n") == 1
    assert not (tmp_path / "r.html").exists()


def test_report_into_a_folder_that_cannot_be_written_is_exit_2(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    done = cli("report", LAB3, "-o", blocker / "report.html")
    assert done.returncode == 2 and done.stderr.startswith("error: ") and "cannot write" in done.stderr
