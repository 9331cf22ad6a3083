"""The audit chain's anchor: where the chain ended after the last append, kept outside the log (next to the state).

The hash chain shows a record modified, removed or reordered anywhere but at the very end: cut the last lines and
what is left still links. The anchor (seq and line hash of the last record appended) lets `audit verify` see that
cut, whatever kind of record was removed. It is rewritten after every append and only ever moves forward: an
appender that finds a later record already anchored leaves it (in Azure the write is conditional on the ETag it
read, so concurrent appenders in different processes cannot move it back either).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from shared.adapters.store._azure import _LazyContainer
from shared.adapters.store._local import _flock, _replace_atomically
from shared.core.chain import AuditLogCorrupt, ChainTail, line_hash

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

logger = logging.getLogger(__name__)

ANCHOR_NAME = "audit-anchor.json"


class AuditAnchor(Protocol):
    def write(self, tail: ChainTail) -> None: ...

    def read(self) -> ChainTail | None: ...


def _encoded(tail: ChainTail) -> bytes:
    return json.dumps({"seq": tail.seq, "lineHash": tail.line_hash, "file": tail.file, "size": tail.size},
                      separators=(",", ":")).encode("utf-8")


def _decoded(raw: bytes, where: str) -> ChainTail:
    try:
        data: Any = json.loads(raw)
        if not isinstance(data, dict):
            raise TypeError("not an object")
        seq, digest = data["seq"], data["lineHash"]
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1 or not isinstance(digest, str):
            raise TypeError("no seq or lineHash")
        return ChainTail(str(data.get("file") or ""), int(data.get("size") or 0), seq, digest)
    except (ValueError, TypeError, KeyError) as exc:
        raise AuditLogCorrupt(f"the audit anchor {where} cannot be read ({type(exc).__name__}); the end of the "
                              "log cannot be checked") from None


class LocalAuditAnchor:
    """The anchor as `audit-anchor.json` in the store folder."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self._path = Path(folder) / ANCHOR_NAME
        self._lock = Path(folder) / (ANCHOR_NAME + ".lock")

    def write(self, tail: ChainTail) -> None:
        with _flock(self._lock):
            current = self._current()
            if current is None or current < tail.seq:
                _replace_atomically(self._path, _encoded(tail))

    def _current(self) -> int | None:
        try:
            return _decoded(self._path.read_bytes(), self._path.name).seq
        except (FileNotFoundError, AuditLogCorrupt):
            return None  # none yet, or damaged: the write replaces it

    def read(self) -> ChainTail | None:
        try:
            raw = self._path.read_bytes()
        except FileNotFoundError:
            return None
        return _decoded(raw, self._path.name)


class BlobAuditAnchor:
    """The anchor as the blob `audit-anchor.json` in the state container (the audit container takes appends only)."""

    def __init__(
        self,
        *,
        container: str,
        account_url: str | None = None,
        credential: TokenCredential | str | None = None,
        connection_string: str | None = None,
        name: str = ANCHOR_NAME,
    ) -> None:
        self._container = _LazyContainer(
            account_url=account_url, credential=credential, connection_string=connection_string, container=container
        )
        self._name = name

    def write(self, tail: ChainTail) -> None:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

        blob = self._container.get().get_blob_client(self._name)
        for _ in range(5):
            try:
                downloaded = blob.download_blob()
                raw, etag = downloaded.readall(), downloaded.properties.etag
            except ResourceNotFoundError:
                raw, etag = None, None
            if raw is not None:
                try:
                    if _decoded(raw, self._name).seq >= tail.seq:
                        return  # a later record is anchored already: never move back
                except AuditLogCorrupt:
                    pass  # damaged: replaced below
            try:
                if etag is None:
                    blob.upload_blob(_encoded(tail), overwrite=False)
                else:
                    blob.upload_blob(_encoded(tail), overwrite=True, etag=etag,
                                     match_condition=MatchConditions.IfNotModified)
                return
            except (ResourceExistsError, ResourceModifiedError):
                continue  # another appender moved it meanwhile: look again
        raise RuntimeError("the audit anchor kept changing while it was moved")

    def read(self) -> ChainTail | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            raw: bytes = self._container.get().get_blob_client(self._name).download_blob().readall()
        except ResourceNotFoundError:
            return None
        return _decoded(raw, f"{self._container.name}/{self._name}")


def write_anchor(anchor: AuditAnchor | None, tail: ChainTail) -> None:
    """Move the anchor to `tail`; a failure is logged, never raised (the record itself is appended)."""
    if anchor is None:
        return
    try:
        anchor.write(tail)
    except Exception as exc:
        logger.warning("audit anchor not moved to record %s (%s); `audit verify` checks the end up to the previous "
                       "one", tail.seq, type(exc).__name__)


def anchor_gap(anchor: ChainTail | None, records: Iterable[Mapping[str, Any]]) -> str | None:
    """What the anchor shows is missing at the end of an intact chain (records oldest first), or None."""
    if anchor is None:
        return None
    last = 0
    for record in records:
        seq = record.get("seq")
        last = seq if isinstance(seq, int) else last
        if seq == anchor.seq and line_hash(record) != anchor.line_hash:
            return (f"record {anchor.seq} is not the one the audit anchor names (kept with the state): the log was "
                    "rewritten from there")
    if last < anchor.seq:
        cut = anchor.seq - last
        return (f"the log ends at record {last} but the audit anchor (kept with the state) names record "
                f"{anchor.seq}: records at the end of the log are missing ({cut} record{'s' if cut > 1 else ''})")
    return None
