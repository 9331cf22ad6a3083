"""Wiring: the three adapters the app settings select, and `audit verify` for the CLI."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from shared.adapters.store.anchor import BlobAuditAnchor, anchor_gap
from shared.adapters.store.audit import DEFAULT_AUDIT_CONTAINER, AppendBlobAuditLog, LocalAuditLog
from shared.adapters.store.recheck import DEFAULT_RECHECK_QUEUE, LocalRecheckQueue, StorageQueueRecheck
from shared.adapters.store.state import DEFAULT_STATE_CONTAINER, BlobStateStore, LocalStateStore
from shared.app.ports import AuditLog, CommittedState, RecheckQueue, StateCorrupt, StateStore
from shared.core.audit_views import printable
from shared.core.chain import AuditLogCorrupt, _parse_lines, verify_audit

logger = logging.getLogger(__name__)

DEFAULT_STORE_DIR = "./.er-transit-store"


def store_from_settings(settings: Mapping[str, str]) -> tuple[StateStore, AuditLog, RecheckQueue]:
    """The three adapters for these app settings; nothing is contacted until first use.

    `AuditorStorage` (a connection string) or `AuditorStorage__blobServiceUri` (+ optional `__queueServiceUri`,
    `__clientId`) select Azure Storage; otherwise a local folder `STORE_DIR` (default ./.er-transit-store).
    """
    state_container = settings.get("STATE_CONTAINER") or DEFAULT_STATE_CONTAINER
    audit_container = settings.get("AUDIT_CONTAINER") or DEFAULT_AUDIT_CONTAINER
    queue_name = settings.get("RECHECK_QUEUE") or DEFAULT_RECHECK_QUEUE
    connection_string = settings.get("AuditorStorage") or None
    blob_uri = settings.get("AuditorStorage__blobServiceUri") or None
    if connection_string is not None:
        logger.info("store: Azure Storage via connection string")
        return (
            BlobStateStore(connection_string=connection_string, container=state_container),
            AppendBlobAuditLog(connection_string=connection_string, container=audit_container,
                               anchor=BlobAuditAnchor(connection_string=connection_string, container=state_container)),
            StorageQueueRecheck(connection_string=connection_string, queue=queue_name),
        )
    if blob_uri is not None:
        from azure.identity import DefaultAzureCredential

        client_id = settings.get("AuditorStorage__clientId") or settings.get("AZURE_CLIENT_ID") or None
        credential = DefaultAzureCredential(managed_identity_client_id=client_id)
        queue_uri = settings.get("AuditorStorage__queueServiceUri") or blob_uri.replace(".blob.", ".queue.", 1)
        logger.info("store: Azure Storage %s (identity)", blob_uri)
        return (
            BlobStateStore(account_url=blob_uri, credential=credential, container=state_container),
            AppendBlobAuditLog(account_url=blob_uri, credential=credential, container=audit_container,
                               anchor=BlobAuditAnchor(account_url=blob_uri, credential=credential,
                                                      container=state_container)),
            StorageQueueRecheck(account_url=queue_uri, credential=credential, queue=queue_name),
        )
    folder = settings.get("STORE_DIR") or DEFAULT_STORE_DIR
    logger.info("store: local folder %s", folder)
    return LocalStateStore(folder), LocalAuditLog(folder), LocalRecheckQueue(folder)


def audit_verify_main(store_dir: str | None, *, settings: Mapping[str, str] | None = None) -> int:
    """`audit verify`: walk the chain of a local store folder, or of the store the app settings select.

    Prints one line (never a traceback, whatever the files hold); returns 0 when the chain is intact, 1 when it
    is broken (or its anchor damaged), 2 when the store cannot be read at all (one line on stderr).
    """
    from azure.core.exceptions import AzureError

    try:
        return _verify(store_dir, settings)
    except AuditLogCorrupt as exc:
        print(f"audit chain broken: {printable(str(exc))}")
        return 1
    except (OSError, AzureError, ValueError) as exc:  # a file or blob that cannot be read, a malformed setting
        print(f"error: cannot read the store: {printable(_reason(exc))}", file=sys.stderr)
        return 2


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename:
        return f"{Path(str(exc.filename)).name}: {exc.strerror or type(exc).__name__}"
    reason = str(getattr(exc, "reason", None) or getattr(exc, "message", None) or exc).strip()
    return reason.splitlines()[0] if reason else type(exc).__name__


def _verify(store_dir: str | None, settings: Mapping[str, str] | None) -> int:
    state_store: StateStore
    if settings is not None:
        state_store, log, _ = store_from_settings(settings)
    else:
        assert store_dir is not None
        if not Path(store_dir).is_dir():
            print(f"audit chain broken: no store folder {store_dir}")
            return 1
        state_store, log = LocalStateStore(store_dir), LocalAuditLog(store_dir)
    anchor_store = getattr(log, "anchor", None)
    anchor = anchor_store.read() if anchor_store is not None else None  # before the log: it never runs ahead
    lines = list(log.lines())  # type: ignore[attr-defined]  # both audit logs expose their raw lines
    result = verify_audit(lines)
    if not result.ok:
        print(f"audit chain broken at {printable(result.problem)}")
        for segment in result.segments:  # a damaged tail: the log went on in a new segment
            print(f"  {printable(segment)}")
        return 1
    cut = anchor_gap(anchor, _parse_lines(lines))
    if cut:
        print(f"audit chain broken: {cut}")
        return 1
    watch = getattr(state_store, "watch_chain", None)
    if watch is not None and hasattr(log, "last_record"):
        # A state older than the chain's end is reported, as the auditor refuses it (a log without its state, e.g.
        # a copy of the audit files, is still verified on its own).
        watch(log.last_record, refuse_missing=False)
    try:
        committed = state_store.load()[0]
    except StateCorrupt as exc:  # the chain itself is intact; the state it is checked against is not readable
        print(f"audit chain intact: {result.count} records, but {printable(str(exc))}: its end cannot be "
              "cross-checked")
        return 1
    missing = missing_tail(committed, _parse_lines(lines))
    if missing:
        print(f"audit chain broken: {missing}")
        return 1
    unanchored = anchor is None and any('"stateSeen":' in line.text for line in lines)
    # A log written with an anchor, verified without it (deleted, or the audit files copied on their own).
    note = " (no audit anchor next to it: records cut from its end cannot be seen)" if unanchored else ""
    print(f"audit chain intact: {result.count} records{note}")
    return 0


def missing_tail(state: CommittedState | None, records: Iterable[Mapping[str, Any]]) -> str | None:
    """Cross-check with the committed state: the last committed run must be in the log (or still in the outbox).

    The hash chain cannot show records cut from its end; the state's sequence can.
    """
    if state is None or state.sequence == 0:
        return None
    recorded = max((int(r.get("stateSequence") or 0) for r in records), default=0)
    queued = {int(i.get("stateSequence") or (i.get("payload") or {}).get("stateSequence") or 0)
              for i in state.outbox if i.get("kind") == "audit"}
    if recorded >= state.sequence or state.sequence in queued:
        return None
    return (f"the committed state is at run {state.sequence} but the last audited run is {recorded}: records "
            "at the end of the log are missing")
