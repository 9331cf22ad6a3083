"""infra/checks/checkov_gate.py: parse errors and undocumented failures fail; documented ones pass."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.infra.bicep_templates import INFRA

SKIPS = INFRA / "checks" / "checkov-skips.json"


def _gate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("checkov_gate", INFRA / "checks" / "checkov_gate.py")
    assert spec and spec.loader
    gate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gate)
    return gate


gate = _gate()


def report(failed: list[tuple[str, str, str]], parsing_errors: int = 0) -> dict[str, Any]:
    return {
        "check_type": "bicep",
        "summary": {"passed": 3, "failed": len(failed), "parsing_errors": parsing_errors, "resource_count": 5},
        "results": {
            "failed_checks": [
                {"check_id": c, "file_path": f, "resource": r, "check_name": "a check"} for c, f, r in failed
            ],
            "parsing_errors": ["/app/x.bicep"] if parsing_errors else [],
        },
    }


SKIP = ("CKV_AZURE_35", "/app/storage.bicep", "Microsoft.Storage/storageAccounts.account")


def test_documented_failure_passes() -> None:
    assert gate.evaluate(report([SKIP]), {SKIP: "why"}) == []


def test_undocumented_failure_fails() -> None:
    other = ("CKV_AZURE_35", "/app/storage.bicep", "Microsoft.Storage/storageAccounts.other")
    [problem] = gate.evaluate(report([SKIP, other]), {SKIP: "why"})
    assert "FAILED" in problem and "storageAccounts.other" in problem


def test_parse_error_fails_even_with_no_failed_check() -> None:
    problems = gate.evaluate(report([], parsing_errors=1), {})
    assert any("could not parse" in p for p in problems)


def test_stale_skip_fails() -> None:
    [problem] = gate.evaluate(report([]), {SKIP: "why"})
    assert problem.startswith("STALE")


def test_skip_without_reason_is_rejected(tmp_path: Path) -> None:
    skips = tmp_path / "skips.json"
    skips.write_text(json.dumps({"skips": [{"id": SKIP[0], "file": SKIP[1], "resource": SKIP[2], "reason": " "}]}))
    with pytest.raises(ValueError, match="no reason"):
        gate.load_skips(skips)


def test_every_documented_skip_is_in_the_readme() -> None:
    readme = (INFRA.parent / "README.md").read_text(encoding="utf-8")
    rows = [line for line in readme.splitlines() if line.startswith("| CKV")]
    for check_id, file, resource in gate.load_skips(SKIPS):
        where = f"`{file.lstrip('/')}` `{resource.rsplit('.', 1)[-1]}`"
        assert any(row.startswith(f"| {check_id} | {where} |") for row in rows), f"{check_id} {where} not in README.md"
    assert len(rows) == len(gate.load_skips(SKIPS)), "README.md lists a skip the gate does not know"
