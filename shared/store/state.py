"""The committed state: a local file (offline default) or one blob in Azure Storage, both written under an ETag."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from shared.ports import CommittedState, StateConflict
from shared.store._azure import _LazyContainer
from shared.store._local import _flock, _replace_atomically
from shared.store.chain import canonical_json

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.storage.blob import BlobClient

logger = logging.getLogger(__name__)

DEFAULT_STATE_CONTAINER = "er-transit-state"
STATE_BLOB_NAME = "state.json.gz"


class LocalStateStore:
    """The committed state as `state.json` in a folder; the ETag is the SHA-256 of the file's bytes."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self._folder = Path(folder)
        self._path = self._folder / "state.json"
        self._lock_path = self._folder / "state.lock"

    def _read(self) -> bytes | None:
        try:
            return self._path.read_bytes()
        except FileNotFoundError:
            return None

    @staticmethod
    def _etag(content: bytes) -> str:
        return '"' + hashlib.sha256(content).hexdigest() + '"'

    def load(self) -> tuple[CommittedState | None, str | None]:
        # os.replace swaps the file atomically, so a read without the lock sees one whole version.
        content = self._read()
        if content is None:
            return None, None
        document = json.loads(content)
        return CommittedState.from_json(document["state"]), self._etag(content)

    def save(self, state: CommittedState, *, etag: str | None) -> str:
        # writeId makes every commit's bytes (and so its ETag) unique, even when the state repeats.
        content = (canonical_json({"writeId": uuid.uuid4().hex, "state": state.to_json()}) + "\n").encode("utf-8")
        self._folder.mkdir(parents=True, exist_ok=True)
        with _flock(self._lock_path):
            current = self._read()
            if current is None and etag is not None:
                raise StateConflict(f"no committed state exists any more (expected ETag {etag})")
            if current is not None and (etag is None or self._etag(current) != etag):
                raise StateConflict("the committed state changed since it was read")
            _replace_atomically(self._path, content)
        return self._etag(content)


class BlobStateStore:
    """The committed state as one gzip-compressed JSON blob, written with an ETag condition."""

    def __init__(
        self,
        *,
        account_url: str | None = None,
        credential: TokenCredential | str | None = None,
        connection_string: str | None = None,
        container: str = DEFAULT_STATE_CONTAINER,
        blob_name: str = STATE_BLOB_NAME,
    ) -> None:
        self._container = _LazyContainer(
            account_url=account_url, credential=credential, connection_string=connection_string, container=container
        )
        self._blob_name = blob_name

    def _blob(self) -> BlobClient:
        return self._container.get().get_blob_client(self._blob_name)

    def load(self) -> tuple[CommittedState | None, str | None]:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            downloader = self._blob().download_blob()
        except ResourceNotFoundError:
            return None, None
        content = downloader.readall()
        etag = downloader.properties.etag
        return CommittedState.from_json(json.loads(gzip.decompress(content))), str(etag)

    def save(self, state: CommittedState, *, etag: str | None) -> str:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
        from azure.storage.blob import ContentSettings

        # mtime=0 keeps the gzip bytes a function of the content alone.
        content = gzip.compress(canonical_json(state.to_json()).encode("utf-8"), compresslevel=6, mtime=0)
        settings = ContentSettings(content_type="application/gzip")
        blob = self._blob()
        try:
            if etag is None:
                result = blob.upload_blob(content, overwrite=False, content_settings=settings)
            else:
                result = blob.upload_blob(
                    content,
                    overwrite=True,
                    content_settings=settings,
                    etag=etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ResourceModifiedError, ResourceExistsError, ResourceNotFoundError) as exc:
            raise StateConflict("the committed state changed since it was read") from exc
        except Exception as exc:
            if getattr(exc, "status_code", None) in (409, 412):
                raise StateConflict("the committed state changed since it was read") from exc
            raise
        logger.debug("state saved: %s bytes compressed", len(content))
        return str(result["etag"])
