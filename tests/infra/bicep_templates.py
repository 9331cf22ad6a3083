"""Parsed Bicep templates under infra/ (pycep-parser), and small helpers to read expressions in them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pycep import BicepParser

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA = REPO_ROOT / "infra"
WATCHED_OPERATIONS = REPO_ROOT / "shared" / "adapters" / "watched_operations.json"


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


@cache
def template(relative: str) -> dict[str, Any]:
    """The parsed template at infra/<relative> (cached; tests must not mutate it, use copy.deepcopy)."""
    return BicepParser().parse(file_path=INFRA / relative)


def render(expr: Any) -> Any:
    """An expression as compact text: `roles.reader.id`, `subscription_resource_id(...)`; literals unchanged."""
    if isinstance(expr, dict) and set(expr) == {"function"}:
        function = expr["function"]
        args = ", ".join(str(render(v)) for v in (function.get("parameters") or {}).values() if v is not None)
        return f"{function['type']}({args})"
    if isinstance(expr, dict) and set(expr) == {"operator"}:
        operator = expr["operator"]
        operands = [render(v) for v in operator["operands"].values()]
        if operator["type"] == "property_accessor":
            return ".".join(str(o) for o in operands)
        return f"{operator['type']}({', '.join(str(o) for o in operands)})"
    if isinstance(expr, dict):
        return {k: render(v) for k, v in expr.items()}
    if isinstance(expr, list):
        return [render(v) for v in expr]
    return expr


@dataclass(frozen=True)
class Resource:
    """One resource declaration, with conditions and loops unwrapped."""

    file: str
    symbol: str
    type: str
    existing: bool
    body: dict[str, Any]
    condition: Any
    loop: Any


def unwrap(config: dict[str, Any]) -> tuple[dict[str, Any], Any, Any]:
    """(body, condition, loop) of a resource or module `config` as pycep nests them."""
    condition = loop = None
    while isinstance(config, dict) and ("condition" in config or "loop_type" in config) and "config" in config:
        condition = config.get("condition", condition)
        loop = config.get("loop_type", loop)
        config = config["config"]
    return config, condition, loop


def resources(relative: str, parsed: dict[str, Any] | None = None) -> Iterator[Resource]:
    parsed = template(relative) if parsed is None else parsed
    for symbol, declaration in (parsed.get("resources") or {}).items():
        body, condition, loop = unwrap(declaration["config"])
        yield Resource(relative, symbol, declaration["type"], declaration["existing"], body, condition, loop)


def all_resources() -> Iterator[Resource]:
    for path in bicep_files():
        yield from resources(path.relative_to(INFRA).as_posix())


def one(relative: str, resource_type: str, parsed: dict[str, Any] | None = None) -> Resource:
    found = [r for r in resources(relative, parsed) if r.type == resource_type and not r.existing]
    assert len(found) == 1, f"{relative}: expected one {resource_type}, found {[r.symbol for r in found]}"
    return found[0]


def by_symbol(relative: str, symbol: str, parsed: dict[str, Any] | None = None) -> Resource:
    for resource in resources(relative, parsed):
        if resource.symbol == symbol:
            return resource
    raise AssertionError(f"{relative}: no resource '{symbol}'")


def module(relative: str, symbol: str) -> tuple[dict[str, Any], Any, Any]:
    """(body, condition, loop) of a module declaration."""
    return unwrap(template(relative)["modules"][symbol]["config"])


def param_default(relative: str, name: str) -> Any:
    return template(relative)["parameters"][name]["default"]


def resolve(relative: str, value: Any, parsed: dict[str, Any] | None = None) -> Any:
    """A bare parameter reference replaced by that parameter's default; anything else unchanged."""
    parameters = (template(relative) if parsed is None else parsed).get("parameters") or {}
    if isinstance(value, str) and value in parameters:
        return parameters[value]["default"]
    return value


def watched_operations() -> dict[str, Any]:
    return json.loads(WATCHED_OPERATIONS.read_text(encoding="utf-8"))


def roles_file() -> dict[str, Any]:
    return json.loads((INFRA / "roles.json").read_text(encoding="utf-8"))
