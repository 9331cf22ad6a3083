"""The audit anchor only ever moves forward, on the local store and in Blob Storage (Azurite), also when several
appenders (threads here, processes in Azure) write it at once."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.store.anchor import BlobAuditAnchor, LocalAuditAnchor
from shared.core.chain import ChainTail


def tail(seq: int) -> ChainTail:
    return ChainTail("audit-2026-11-26.jsonl", seq * 100, seq, f"{seq:064x}")


@pytest.fixture(params=["local", "azurite"])
def anchors(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """A factory of anchors on one store: each call is another appender's client."""
    if request.param == "local":
        return lambda: LocalAuditAnchor(tmp_path)
    connection = request.getfixturevalue("azurite").connection_string
    container = f"anchor-{uuid.uuid4().hex[:12]}"
    return lambda: BlobAuditAnchor(container=container, connection_string=connection)


def test_a_late_writer_of_an_earlier_record_does_not_move_the_anchor_back(anchors: Any) -> None:
    first, late = anchors(), anchors()
    first.write(tail(7))
    late.write(tail(5))  # appended before record 7, anchored after it
    assert first.read().seq == 7
    first.write(tail(8))
    assert late.read().seq == 8


def test_concurrent_writers_leave_the_highest_record_anchored(anchors: Any) -> None:
    seqs = list(range(1, 41))
    clients = [anchors() for _ in range(4)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda s: clients[s % 4].write(tail(s)), reversed(seqs)))
    assert clients[0].read().seq == 40
