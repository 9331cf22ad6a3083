"""`replay` and `audit verify` as a user runs them: the lab story through the function entry points."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shared.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})


def test_replay_of_the_lab_story_reports_each_step(tmp_path: Path) -> None:
    done = cli("replay", "examples/replay-lab", "--store", str(tmp_path), "--json")
    assert done.returncode == 0, done.stderr
    steps = [json.loads(line) for line in done.stdout.splitlines()]

    def names(pairs: list[dict]) -> list[tuple[str, ...]]:
        return sorted(tuple(v.rsplit("/", 1)[-1] for v in p["vnets"]) for p in pairs)

    assert [(s["step"], s["outcome"]) for s in steps] == [
        ("01-baseline", "committed"), ("02-enable-gw2", "no change"), ("03-enable-gw1", "committed"),
        ("04-redelivered", "duplicate"), ("05-gw3-updating", "committed"), ("06-reconcile", "committed"),
        ("07-delete-conn-02", "committed"), ("08-unrelated-event", "skipped")]
    assert names(steps[2]["opened"]) == [("hub-01", "hub-02")]
    assert [c["text"] for c in steps[2]["opened"][0]["cause"]] == ["ergw-01 allowRemoteVnetTraffic false -> true"]
    assert steps[4]["opened"] == []  # still Updating: pending, not announced
    assert names(steps[5]["opened"]) == [("hub-01", "hub-03"), ("hub-02", "hub-03")]
    assert names(steps[6]["closed"]) == [("hub-01", "hub-02"), ("hub-02", "hub-03")]
    assert cli("audit", "verify", "--store", str(tmp_path)).returncode == 0


def test_audit_verify_finds_a_modified_record_and_a_cut_tail(tmp_path: Path) -> None:
    assert cli("replay", "examples/replay-lab", "--store", str(tmp_path), "--json").returncode == 0
    [log] = sorted(tmp_path.glob("audit-*.jsonl"))
    original = log.read_text()
    lines = original.splitlines(keepends=True)

    log.write_text(original.replace("bob@contoso.example", "mallory@contoso.example", 1))
    done = cli("audit", "verify", "--store", str(tmp_path))
    assert done.returncode == 1 and "broken at record" in done.stdout

    log.write_text("".join(lines[:-1]))  # the last record cut, whatever it is: the anchor kept with the state shows it
    done = cli("audit", "verify", "--store", str(tmp_path))
    assert done.returncode == 1 and "records at the end of the log are missing (1 record)" in done.stdout

    committed = [i for i, line in enumerate(lines) if '"stateSequence"' in line]
    log.write_text("".join(lines[: committed[-1]]))  # the last committed run's record and what follows, cut
    done = cli("audit", "verify", "--store", str(tmp_path))
    assert done.returncode == 1 and "records at the end of the log are missing" in done.stdout
