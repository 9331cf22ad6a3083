"""Pausing Python's cyclic garbage collector around the hot paths that build large, acyclic structures."""

from __future__ import annotations

import contextlib
import gc
import threading
import time
from collections.abc import Iterator
from typing import Any

_lock = threading.Lock()
_pausers = 0


@contextlib.contextmanager
def collector_paused(*, freeze: bool = False, promote: bool = False) -> Iterator[None]:
    """Run the block with the cyclic collector off (reference counting still frees memory).

    Why: loading the committed working copy or a snapshot (tens of MB of JSON) and computing pairs and diffs
    allocate millions of containers that all stay alive; CPython starts a collection every 700 net allocations
    and a full one each time the survivors grew by a quarter, so the collector walked the same young data again
    and again and found nothing to free (measured: 38-41% of an event's time, and most of the two `json.loads`
    of a 20k-VNet `diff`). These structures hold no reference cycles, so nothing leaks while the collector is
    off. The collector is process-wide: concurrent pausers are counted and it is re-enabled only when the last
    one leaves (and only if it was on before).

    `freeze=True` also moves every object alive when the last pauser leaves into the collector's permanent
    generation, so later collections never walk it again. For a process about to exit (the CLI), or a caller
    that undoes it with `gc.unfreeze()` once the data is dropped (cycles among frozen objects are reclaimed
    only after that).

    `promote=True` (a long-lived process's unit of work: Auditor.run): what was made while the collector was
    paused and is still alive is moved to the oldest generation as the last pauser leaves (`_promote`), and a
    full collection runs then if the last one is FULL_COLLECTION_SECONDS old.
    """
    global _pausers
    with _lock:
        if _pausers == 0:
            _state["was_enabled"] = gc.isenabled()
            _state["promote"] = False
            gc.disable()
        _pausers += 1
        _state["promote"] = _state["promote"] or promote
    try:
        yield
    finally:
        with _lock:
            _pausers -= 1
            if _pausers == 0:
                if freeze:
                    gc.freeze()
                elif _state["was_enabled"] and _state["promote"]:
                    _promote()
                if _state["was_enabled"]:
                    gc.enable()


# A full collection (one walk of everything alive, a few tenths of a second with a 20k-VNet working copy held) runs
# when the last pauser leaves, at most this often: it frees the reference cycles promoted objects may hold.
FULL_COLLECTION_SECONDS = 900.0

_state: dict[str, Any] = {"was_enabled": True, "promote": False, "full_at": time.monotonic()}


def _promote() -> None:
    """Move every object the collector tracks into its oldest generation without walking them.

    A run leaves millions of young objects alive (the working copy's parse, its pairs, the documents it returns).
    Left young, the first collection after the pause walks them all only to find them alive (0.23 s after a
    large change), and the next generation's walks them again. gc.freeze() moves every tracked object to the
    permanent generation and gc.unfreeze() moves them all back into the oldest one, two list splices: they are then
    walked only by full collections. Those still run when CPython's own rule asks, and at least every
    FULL_COLLECTION_SECONDS here, so a reference cycle left behind is freed a little later, never lost. Objects
    frozen on purpose (gc.get_freeze_count(), e.g. by a caller's `freeze=True`) are left alone.
    """
    if gc.get_freeze_count():
        return
    if time.monotonic() - _state["full_at"] >= FULL_COLLECTION_SECONDS:
        gc.collect()
        _state["full_at"] = time.monotonic()
        return
    gc.freeze()
    gc.unfreeze()
