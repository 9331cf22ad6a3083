"""Issue 16, item 11: every package CI and the deployment install is pinned with its hashes, and installed so."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
# Installers and what a venv brings along by itself; never imported by the app.
BOOTSTRAP = {"pip", "setuptools", "wheel"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(path: Path) -> dict[str, str]:
    """{package: version} of a pip-compile --generate-hashes lock, checking every entry carries a sha256."""
    entries: dict[str, str] = {}
    current: str | None = None
    hashed: set[str] = set()
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = PIN.match(line)
        if match:
            current = _norm(match.group(1))
            entries[current] = match.group(2)
        elif line.startswith("--hash=sha256:") and current is not None:
            hashed.add(current)
        elif not line.startswith("--hash="):
            raise AssertionError(f"{path.name}: not a pinned, hashed entry: {line!r}")
    assert entries, f"{path.name} pins nothing"
    assert set(entries) == hashed, f"{path.name}: no hash for {sorted(set(entries) - hashed)}"
    return entries


@pytest.mark.parametrize("name", ["requirements.txt", "requirements-dev.txt", "requirements-checkov.txt"])
def test_every_locked_package_is_pinned_with_hashes(name: str) -> None:
    locked(REPO / name)


def test_the_dev_lock_holds_the_runtime_lock_at_the_same_versions() -> None:
    runtime, dev = locked(REPO / "requirements.txt"), locked(REPO / "requirements-dev.txt")
    assert {k: dev.get(k) for k in runtime} == runtime


def test_every_package_installed_for_the_tests_is_in_the_lock() -> None:
    dev = locked(REPO / "requirements-dev.txt")
    installed = {_norm(d.metadata["Name"]): d.version for d in metadata.distributions()}
    extra = {k: v for k, v in installed.items() if k not in dev and k not in BOOTSTRAP}
    assert extra == {}, "installed but not locked (transitive packages must be locked too)"
    assert {k: installed[k] for k in dev if k in installed} == {k: v for k, v in dev.items() if k in installed}


def test_setup_installs_with_require_hashes_and_no_resolution() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    [install] = [line for line in makefile.splitlines() if "pip install" in line and "requirements-dev" in line]
    assert "--require-hashes" in install and "--no-deps" in install
    # Azure Functions' remote build runs `pip install -r requirements.txt`: hashes there switch pip to
    # hash-checking mode for the deployment too.
    assert "--hash=sha256:" in (REPO / "requirements.txt").read_text(encoding="utf-8")


def test_make_lock_compiles_every_requirements_in_file() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    lock_rule = makefile[makefile.index("\nlock:"):].split("\n\n", 1)[0]
    for source in sorted(REPO.glob("requirements*.in")):
        assert f"-o {source.stem}.txt {source.name}" in lock_rule, f"make lock does not compile {source.name}"


def test_checkov_is_installed_only_from_its_hash_pinned_lock() -> None:
    script = (REPO / "infra" / "checks" / "checkov.sh").read_text(encoding="utf-8")
    installs = [line for line in script.splitlines() if "pip install" in line]
    assert installs and all("--require-hashes" in line and "--no-deps" in line and '-r "$lock"' in line
                            for line in installs)
    assert 'lock="$root/requirements-checkov.txt"' in script
    wanted = re.findall(r"^checkov==(\S+)", (REPO / "requirements-checkov.in").read_text(encoding="utf-8"), re.M)
    assert wanted and locked(REPO / "requirements-checkov.txt")["checkov"] == wanted[0]


@pytest.mark.parametrize("name", ["requirements.txt", "requirements-dev.txt"])
def test_the_locks_hold_no_msrest(name: str) -> None:
    """msrest is deprecated; it came in only through azure-mgmt-resourcegraph, replaced by a query through
    azure-mgmt-core's ARM pipeline (shared/adapters/arm.py)."""
    held = locked(REPO / name)
    assert "msrest" not in held and "azure-mgmt-resourcegraph" not in held


def test_no_code_imports_the_resource_graph_client() -> None:
    sources = [p for p in (REPO / "shared").rglob("*.py")] + [REPO / "function_app.py"]
    assert not [p for p in sources if "azure.mgmt.resourcegraph" in p.read_text(encoding="utf-8")]
