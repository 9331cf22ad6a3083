"""Committed state, hash-chained audit log and re-check queue: Azure Storage adapters and local-folder adapters.

The package is split by role:
- `chain`: the audit chain itself, pure (`chain_next`, `verify_audit`, hashes);
- `state`: the committed state (`LocalStateStore`, `BlobStateStore`);
- `audit`: the audit log's storage (`LocalAuditLog`, `AppendBlobAuditLog`);
- `anchor`: where the chain ends, kept outside the log so `audit verify` sees a cut end (`LocalAuditAnchor`,
  `BlobAuditAnchor`);
- `recheck`: the re-check queue (`LocalRecheckQueue`, `StorageQueueRecheck`);
- `wiring`: the adapters the app settings select, and `audit_verify_main` for `shared.cli audit verify`.

Everything is re-exported here, so `from shared.adapters.store import ...` keeps working.
"""

from shared.adapters.store.audit import DEFAULT_AUDIT_CONTAINER, AppendBlobAuditLog, LocalAuditLog
from shared.adapters.store.recheck import (
    DEFAULT_RECHECK_QUEUE,
    MAX_RECHECK_DELAY_SECONDS,
    LocalRecheckQueue,
    StorageQueueRecheck,
)
from shared.adapters.store.state import DEFAULT_STATE_CONTAINER, STATE_BLOB_NAME, BlobStateStore, LocalStateStore
from shared.adapters.store.wiring import DEFAULT_STORE_DIR, audit_verify_main, missing_tail, store_from_settings
from shared.core.chain import (
    GENESIS_HASH,
    MAX_AUDIT_RECORD_BYTES,
    RESERVED_AUDIT_KEYS,
    AuditLine,
    AuditLogCorrupt,
    AuditVerification,
    ChainTail,
    Clock,
    EncodedRecord,
    audit_file_name,
    canonical_json,
    chain_next,
    chain_text,
    line_hash,
    parse_audit_line,
    record_hash,
    verify_audit,
)

__all__ = [
    "DEFAULT_AUDIT_CONTAINER",
    "DEFAULT_RECHECK_QUEUE",
    "DEFAULT_STATE_CONTAINER",
    "DEFAULT_STORE_DIR",
    "GENESIS_HASH",
    "MAX_AUDIT_RECORD_BYTES",
    "MAX_RECHECK_DELAY_SECONDS",
    "RESERVED_AUDIT_KEYS",
    "STATE_BLOB_NAME",
    "AppendBlobAuditLog",
    "AuditLine",
    "AuditLogCorrupt",
    "AuditVerification",
    "BlobStateStore",
    "ChainTail",
    "Clock",
    "EncodedRecord",
    "LocalAuditLog",
    "LocalRecheckQueue",
    "LocalStateStore",
    "StorageQueueRecheck",
    "audit_file_name",
    "audit_verify_main",
    "canonical_json",
    "chain_next",
    "chain_text",
    "line_hash",
    "missing_tail",
    "parse_audit_line",
    "record_hash",
    "store_from_settings",
    "verify_audit",
]
