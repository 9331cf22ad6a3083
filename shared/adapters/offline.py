"""A TopologyReader over a snapshot file: the offline stand-in for the live reader (local runs, replay)."""

from __future__ import annotations

from pathlib import Path

from shared.app.ports import IncompleteReadError, JsonDict
from shared.core.snapshot import SnapshotError, load_snapshot_file


class SnapshotFileTopologyReader:
    """Reads the file on every call, so a file that changes between runs behaves like a changing subscription."""

    def __init__(self, path: str | Path) -> None:
        self._path = Path(path)

    def read(self, *, focus_resource_id: str | None = None) -> list[JsonDict]:
        try:
            return load_snapshot_file(self._path)
        except SnapshotError as exc:
            raise IncompleteReadError(str(exc)) from None
