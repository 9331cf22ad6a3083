"""Gate on a checkov JSON report: no parse errors, no failed check outside the documented skip list.

Usage: python checkov_gate.py REPORT.json SKIPS.json   (exit 0 clean, 1 on a finding, 2 on bad input)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

SkipKey = tuple[str, str, str]


def load_skips(path: Path) -> dict[SkipKey, str]:
    """The skip list as {(check id, file, resource): reason}; every entry needs a non-empty reason."""
    entries = json.loads(path.read_text(encoding="utf-8"))["skips"]
    skips: dict[SkipKey, str] = {}
    for entry in entries:
        reason = str(entry.get("reason", "")).strip()
        if not reason:
            raise ValueError(f"skip {entry.get('id')} on {entry.get('resource')} has no reason")
        skips[(entry["id"], entry["file"], entry["resource"])] = reason
    return skips


def bicep_reports(report: Any) -> list[dict[str, Any]]:
    """checkov prints one object per framework, or a list of them."""
    reports = report if isinstance(report, list) else [report]
    found = [r for r in reports if isinstance(r, dict) and r.get("check_type") == "bicep"]
    if not found:
        raise ValueError("no bicep report in checkov output (did checkov find the templates?)")
    return found


def evaluate(report: Any, skips: dict[SkipKey, str]) -> list[str]:
    """Problems in a checkov report, one line each; empty when the gate passes."""
    problems: list[str] = []
    failed: set[SkipKey] = set()
    for bicep in bicep_reports(report):
        summary = bicep["summary"]
        if summary.get("parsing_errors", 0):
            files = bicep.get("results", {}).get("parsing_errors")
            problems.append(f"checkov could not parse {summary['parsing_errors']} file(s): {files}")
        if not summary.get("resource_count", 0):
            problems.append("checkov found no resources in infra/")
        for check in bicep["results"]["failed_checks"]:
            key = (check["check_id"], check["file_path"], check["resource"])
            failed.add(key)
            if key not in skips:
                problems.append(f"FAILED {key[0]} {key[1]} {key[2]}: {check['check_name']}")
    for key in sorted(set(skips) - failed):
        problems.append(f"STALE skip {key[0]} {key[1]} {key[2]}: it no longer fails, remove it from the list")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        report = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
        skips = load_skips(Path(argv[2]))
        problems = evaluate(report, skips)
    except (OSError, ValueError, KeyError) as error:
        print(f"checkov gate: bad input: {error}", file=sys.stderr)
        return 2
    for bicep in bicep_reports(report):
        print(f"checkov bicep summary: {bicep['summary']}")
    print(f"checkov gate: {len(skips)} documented skip(s) (infra/checks/checkov-skips.json)")
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
