"""Headless Chromium (Debian's `chromium` package) for the report page: the DOM after scripts ran, a screenshot.

    .venv/bin/python scripts/headless_chromium.py lab-screenshot docs/report-lab.png

writes the lab's report (examples/lab/03-enable-gw1 with the replayed audit log and the example policy) and its
screenshot; the browser test uses the same functions. Chromium runs offline: no first-run, sync, component
updates or background networking, and a fresh profile each time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         "--disable-dev-shm-usage"]
LAB_SNAPSHOT = ROOT / "examples/lab/03-enable-gw1/topology.json"


def find_chromium() -> str | None:
    """The chromium binary (CHROMIUM overrides), or None when it is not installed."""
    wanted = os.environ.get("CHROMIUM")
    if wanted:
        return shutil.which(wanted)
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _run(binary: str, args: list[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="er-report-chromium-") as profile:
        return subprocess.run([binary, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                              timeout=timeout, check=False, cwd=profile)


def dump_dom(binary: str, url: str, *, timeout: float = 120) -> str:
    """The serialized DOM after the page's scripts ran."""
    done = _run(binary, ["--dump-dom", "--virtual-time-budget=5000", url], timeout=timeout)
    if done.returncode != 0 or "<html" not in done.stdout:
        raise RuntimeError(f"chromium --dump-dom failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def screenshot(binary: str, url: str, out: Path, *, size: str = "1200,900", timeout: float = 120) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    done = _run(binary, [f"--screenshot={out.resolve()}", f"--window-size={size}", "--virtual-time-budget=5000",
                         url], timeout=timeout)
    if done.returncode != 0 or not out.is_file():
        raise RuntimeError(f"chromium --screenshot failed ({done.returncode}): {done.stderr[-2000:]}")
    return out


def write_lab_report(out: Path, *, python: str = sys.executable) -> Path:
    """The lab's report with the replayed audit log and the example policy, through the CLI as a user runs it."""
    with tempfile.TemporaryDirectory(prefix="er-report-store-") as store:
        subprocess.run([python, "-m", "shared.cli", "replay", str(ROOT / "examples/replay-lab"), "--store", store],
                       check=True, cwd=ROOT, capture_output=True)
        subprocess.run([python, "-m", "shared.cli", "report", str(LAB_SNAPSHOT.relative_to(ROOT)), "--store", store,
                        "--policy", "examples/policy.yaml", "-o", str(out.resolve())], check=True, cwd=ROOT,
                       capture_output=True)
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "lab-screenshot":
        print("usage: headless_chromium.py lab-screenshot OUT.png", file=sys.stderr)
        return 2
    binary = find_chromium()
    if binary is None:
        print("chromium is not installed (apt-get install chromium)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="er-report-") as tmp:
        page = write_lab_report(Path(tmp) / "report.html")
        out = screenshot(binary, page.resolve().as_uri(), Path(argv[1]), size="1100,760")
    print(f"screenshot written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
