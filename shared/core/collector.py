"""Pausing Python's cyclic garbage collector around the hot paths that build large, acyclic structures."""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_pausers = 0


@contextlib.contextmanager
def collector_paused(*, freeze: bool = False) -> Iterator[None]:
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
    """
    global _pausers
    with _lock:
        if _pausers == 0:
            _state["was_enabled"] = gc.isenabled()
            gc.disable()
        _pausers += 1
    try:
        yield
    finally:
        with _lock:
            _pausers -= 1
            if _pausers == 0:
                if freeze:
                    gc.freeze()
                if _state["was_enabled"]:
                    gc.enable()


_state = {"was_enabled": True}
