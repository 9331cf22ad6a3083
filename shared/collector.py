"""Pausing Python's cyclic garbage collector while the core builds or walks large object graphs."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused(*, freeze: bool = False) -> Iterator[None]:
    """Run the block with the cyclic collector off; on exit it is on again if it was before.

    Why: loading and computing a 20,000-VNet estate allocates millions of containers (the parsed JSON, the
    topology, the pairs), and CPython starts a collection every 700 net allocations, a full one each time the
    survivors grew by a quarter: the collector then walked the same young data again and again (38-41% of an
    event's time, and most of the two `json.loads` of a 20k `diff`). None of it is garbage: the core builds
    acyclic values, freed by reference counting whatever the collector does, so pausing it loses nothing.

    `freeze=True` also moves every object alive at the end into the collector's permanent generation, so that
    later collections never walk it again; for a process about to exit (the CLI) or a caller that undoes it with
    `gc.unfreeze()` once the data is dropped (cycles among frozen objects are only reclaimed after that).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        if enabled:
            gc.enable()
