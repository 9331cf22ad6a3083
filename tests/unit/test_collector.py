"""collector_paused: the collector waits for the block; a run's survivors are promoted, and cycles still freed."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

import shared.core.collector as collector
from shared.core.collector import collector_paused


@contextmanager
def collections_seen() -> Iterator[list[int]]:
    """The generation of each collection that starts inside the block."""
    walks: list[int] = []

    def watch(phase: str, info: dict) -> None:
        if phase == "start":
            walks.append(info["generation"])

    gc.callbacks.append(watch)
    try:
        yield walks
    finally:
        gc.callbacks.remove(watch)


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_the_collector_is_off_inside_and_back_on_after() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # an inner pauser leaving does not turn it back on
    assert gc.isenabled()


def test_what_a_run_leaves_alive_is_promoted_without_a_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(collector, "FULL_COLLECTION_SECONDS", 10**9)
    gc.unfreeze()  # (an in-process CLI test may have frozen its objects: promoting leaves a frozen process alone)
    gc.collect()
    with collections_seen() as walks:
        with collector_paused(promote=True):
            kept = [[i] for i in range(50_000)]
        assert gc.get_count()[0] < 50 and walks == []  # nothing young left to walk
        assert any(o is kept[-1] for o in gc.get_objects(generation=2))
        [[i] for i in range(2_000)]  # the next young garbage: a young collection walks only it
        assert 2 not in walks


def test_a_cycle_left_by_a_run_is_freed_by_the_periodic_full_collection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(collector, "FULL_COLLECTION_SECONDS", 0.0)
    with collector_paused(promote=True):
        a, b = Node(), Node()
        a.other, b.other = b, a
        gone = weakref.ref(a)
        del a, b
    assert gone() is None


def test_objects_frozen_on_purpose_stay_frozen() -> None:
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with collector_paused(promote=True):
            [[i] for i in range(1000)]
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


def test_without_promote_the_young_are_walked_as_usual() -> None:
    gc.collect()
    with collections_seen() as walks:
        with collector_paused():
            kept = [[i] for i in range(5_000)]
        [[i] for i in range(10)]
        assert walks and walks[0] == 0 and len(kept) == 5_000  # the next allocation walks the young survivors
