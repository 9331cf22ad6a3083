"""The re-check queue: a local JSON-lines file with not-before times, or an Azure Storage queue."""

from __future__ import annotations

import json
import os
import threading
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from shared.adapters.store._azure import _create_if_missing, _StorageAccount
from shared.adapters.store._local import _flock, _replace_atomically
from shared.app.ports import JsonDict
from shared.core.chain import Clock, _as_utc, _utcnow, canonical_json

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.storage.queue import QueueClient

DEFAULT_RECHECK_QUEUE = "er-transit-recheck"
# Queue messages are at most 64 KiB (after base64) and may stay invisible for at most 7 days.
MAX_RECHECK_DELAY_SECONDS = 7 * 24 * 3600


class LocalRecheckQueue:
    """Re-check requests in `recheck.jsonl` with a not-before time; `take_due` hands out (and removes) due ones."""

    def __init__(self, folder: str | os.PathLike[str], *, clock: Clock = _utcnow) -> None:
        self._folder = Path(folder)
        self._path = self._folder / "recheck.jsonl"
        self._lock_path = self._folder / "recheck.lock"
        self._clock = clock

    def schedule(self, message: JsonDict, *, delay_seconds: int) -> None:
        _check_delay(delay_seconds)
        not_before = _as_utc(self._clock()) + timedelta(seconds=delay_seconds)
        entry = {"id": uuid.uuid4().hex, "notBefore": not_before.isoformat(), "message": message}
        text = canonical_json(entry) + "\n"
        self._folder.mkdir(parents=True, exist_ok=True)
        with _flock(self._lock_path), open(self._path, "a", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())

    def take_due(self, *, now: datetime | None = None) -> list[JsonDict]:
        """Remove and return the messages whose delay has passed, oldest due first."""
        moment = _as_utc(now if now is not None else self._clock())
        if not self._folder.is_dir():
            return []
        with _flock(self._lock_path):
            try:
                content = self._path.read_text(encoding="utf-8")
            except FileNotFoundError:
                return []
            entries = [json.loads(line) for line in content.splitlines() if line.strip()]
            due = [e for e in entries if datetime.fromisoformat(e["notBefore"]) <= moment]
            if not due:
                return []
            rest = [e for e in entries if datetime.fromisoformat(e["notBefore"]) > moment]
            _replace_atomically(self._path, "".join(canonical_json(e) + "\n" for e in rest).encode("utf-8"))
        due.sort(key=lambda e: datetime.fromisoformat(e["notBefore"]))
        return [dict(e["message"]) for e in due]


def _check_delay(delay_seconds: int) -> None:
    if not 0 <= delay_seconds <= MAX_RECHECK_DELAY_SECONDS:
        raise ValueError(f"delay_seconds must be between 0 and {MAX_RECHECK_DELAY_SECONDS}")


class StorageQueueRecheck:
    """Re-check requests as Storage queue messages (base64, as the Functions queue trigger expects), kept
    invisible for the delay."""

    def __init__(
        self,
        *,
        account_url: str | None = None,
        credential: TokenCredential | str | None = None,
        connection_string: str | None = None,
        queue: str = DEFAULT_RECHECK_QUEUE,
    ) -> None:
        self._account = _StorageAccount(account_url, credential, connection_string)
        self._queue_name = queue
        self._client: QueueClient | None = None
        self._lock = threading.Lock()

    def _queue(self) -> QueueClient:
        with self._lock:
            if self._client is None:
                from azure.storage.queue import QueueClient, TextBase64EncodePolicy

                account = self._account
                if account.connection_string is not None:
                    client = QueueClient.from_connection_string(
                        account.connection_string, self._queue_name, message_encode_policy=TextBase64EncodePolicy()
                    )
                else:
                    client = QueueClient(
                        account.account_url or "",
                        self._queue_name,
                        credential=account.credential,
                        message_encode_policy=TextBase64EncodePolicy(),
                    )
                _create_if_missing(client.create_queue, f"queue {self._queue_name}")
                self._client = client
            return self._client

    def schedule(self, message: JsonDict, *, delay_seconds: int) -> None:
        _check_delay(delay_seconds)
        self._queue().send_message(canonical_json(message), visibility_timeout=delay_seconds)
