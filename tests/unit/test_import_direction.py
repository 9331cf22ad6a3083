"""The folder layers of `shared/` hold: every import points down (cli -> entrypoints -> adapters -> app -> core).

Each module's imports are read with `ast` (imports inside functions too), so a lazy upward import fails as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "shared"

# layer -> the layers its modules may import (their own included)
ALLOWED = {
    "core": {"core"},
    "app": {"core", "app"},
    "adapters": {"core", "app", "adapters"},
    "entrypoints": {"core", "app", "adapters", "entrypoints"},
    "cli": {"core", "app", "adapters", "entrypoints", "cli"},
}
# The pure core does no I/O and imports no SDK.
CORE_FORBIDDEN_TOP = {"azure", "requests", "urllib3", "socket", "http", "subprocess"}


def layer_of(module: str) -> str | None:
    """'shared.core.model' -> 'core'; 'shared.entrypoints' -> 'entrypoints'; 'shared' -> None (the package)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every module `path` imports: (line, dotted name); `from shared import x` counts as shared.x."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module_name(path).split(".")
                if path.name != "__init__.py":
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            if module == "shared":
                out += [(node.lineno, f"shared.{alias.name}") for alias in node.names]
            else:
                out.append((node.lineno, module))
    return out


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def upward_imports() -> list[str]:
    wrong = []
    for path in modules():
        source_layer = layer_of(module_name(path))
        if source_layer is None:
            continue
        for line, target in imported_modules(path):
            where = f"{path.relative_to(ROOT)}:{line}"
            if target.split(".")[0] == "shared":
                target_layer = layer_of(target)
                if target_layer is not None and target_layer not in ALLOWED[source_layer]:
                    wrong.append(f"{where} ({source_layer}) imports {target} ({target_layer})")
            elif source_layer == "core" and target.split(".")[0] in CORE_FORBIDDEN_TOP:
                wrong.append(f"{where} (core) imports {target}: the core does no I/O and imports no SDK")
    return wrong


def test_every_module_of_shared_lives_in_a_layer() -> None:
    loose = [
        str(p.relative_to(ROOT))
        for p in modules()
        if (layer := layer_of(module_name(p))) is not None and layer not in ALLOWED
    ]
    assert loose == [], f"modules outside the layer folders (core/, app/, adapters/, cli/, entrypoints.py): {loose}"


def test_imports_point_down_the_layers_only() -> None:
    wrong = upward_imports()
    assert wrong == [], "upward imports:\n" + "\n".join(wrong)


def test_function_app_imports_only_the_composition_root() -> None:
    targets = [t for _, t in imported_modules(ROOT / "function_app.py") if t.split(".")[0] == "shared"]
    assert targets and all(t == "shared.entrypoints" for t in targets), targets


def test_the_walk_sees_lazy_and_from_package_imports(tmp_path: Path) -> None:
    # the checker itself: an import inside a function, and `from shared import x`, both count
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from shared.cli import main\n    from shared import entrypoints\n")
    assert [t for _, t in imported_modules(probe)] == ["shared.cli", "shared.entrypoints"]
