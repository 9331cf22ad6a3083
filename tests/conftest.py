"""Shared test fixtures: the Azurite storage emulator (started once per test session)."""

from __future__ import annotations

import queue
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
AZURITE_BIN = REPO_ROOT / "node_modules" / ".bin" / "azurite"

# The emulator's published development account (not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

_LISTENING = re.compile(r"Azurite (Blob|Queue|Table) service is successfully listening at (http://\S+)")


@dataclass(frozen=True, slots=True)
class Azurite:
    """A running emulator: endpoints of devstoreaccount1 and a connection string for it."""

    blob_url: str
    queue_url: str
    table_url: str

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={self.blob_url};QueueEndpoint={self.queue_url};TableEndpoint={self.table_url};"
        )


def _ensure_azurite_installed() -> None:
    if AZURITE_BIN.exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("Azurite is not installed (node_modules/.bin/azurite) and npm is not available")
    command = "ci" if (REPO_ROOT / "package-lock.json").exists() else "install"
    subprocess.run([npm, command, "--no-audit", "--no-fund"], cwd=REPO_ROOT, check=True, timeout=600)
    if not AZURITE_BIN.exists():
        pytest.fail(f"`npm {command}` did not install node_modules/.bin/azurite")


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """Start Azurite in memory on free loopback ports; yields its endpoints; stops it at the end of the session."""
    _ensure_azurite_installed()
    workdir = tempfile.mkdtemp(prefix="azurite-")
    args = [
        str(AZURITE_BIN),
        "--inMemoryPersistence",
        "--disableTelemetry",
        "--skipApiVersionCheck",
        "--loose",
        "--silent",
        "--blobHost", "127.0.0.1", "--blobPort", "0",
        "--queueHost", "127.0.0.1", "--queuePort", "0",
        "--tableHost", "127.0.0.1", "--tablePort", "0",
    ]  # fmt: skip
    process = subprocess.Popen(
        args, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        # Keep draining the output so the emulator never blocks on a full pipe.
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, name="azurite-output", daemon=True).start()
    endpoints: dict[str, str] = {}
    seen: list[str] = []
    deadline = time.monotonic() + 60
    try:
        while len(endpoints) < 3:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("Azurite did not report its ports in time")
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError("Azurite exited early:\n" + "".join(seen))
            seen.append(line)
            match = _LISTENING.search(line)
            if match:
                endpoints[match.group(1)] = f"{match.group(2).rstrip('/')}/{AZURITE_ACCOUNT}"
        yield Azurite(blob_url=endpoints["Blob"], queue_url=endpoints["Queue"], table_url=endpoints["Table"])
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
