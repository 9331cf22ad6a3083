"""The warmup trigger: a new instance loads its working copy before it takes events, so its first event is a warm
one; a warm-up never writes, never raises, and leaves a bad state to the run that reports it."""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import pytest

import shared.app.auditor as auditor_module
from shared.adapters.store import LocalAuditLog, LocalStateStore
from shared.app.auditor import Auditor, RunTrigger
from shared.core.snapshot import parse_resources
from tests.unit.test_changed_pairs import dense_spec
from tests.unit.test_event_path_equivalence import Counting, Estate, change, keys
from tests.unit.test_properties import render


def new_instance(folder: Path, reader: Any) -> Auditor:
    return Auditor(reader=reader, state=LocalStateStore(folder), audit=LocalAuditLog(folder), notifiers=[Counting()])


def test_a_warmed_instance_parses_only_the_events_patched_copy_and_decides_the_same(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rnd = random.Random(4)
    estate = Estate(render(dense_spec(rnd)))
    new_instance(tmp_path / "a", estate).run(RunTrigger(kind="reconcile"))
    (tmp_path / "b").mkdir()
    for f in (tmp_path / "a").iterdir():  # the same committed state for a cold and a warmed instance
        if f.is_file():
            (tmp_path / "b" / f.name).write_bytes(f.read_bytes())
    parses: list[bool] = []  # whether each parse reused an earlier one

    def counting(resources: Any, **kwargs: Any) -> Any:
        parses.append(kwargs.get("previous") is not None)
        return parse_resources(resources, **kwargs)

    monkeypatch.setattr(auditor_module, "parse_resources", counting)
    warmed = new_instance(tmp_path / "a", estate)
    assert warmed.warm() is True
    assert parses == [False]  # the committed copy, parsed once by the warm-up
    for step in range(30):
        resource_id = change(estate.resources, rnd)
        trigger = RunTrigger(kind="event", event_id=f"e-{step}", operation="Microsoft.Network/x/write",
                             resource_id=resource_id, caller="someone@contoso.example")
        cold = new_instance(tmp_path / "b", estate)  # a new instance per event, never warmed
        parses.clear()
        got = warmed.run(trigger)
        assert all(parses), (step, parses)  # the event parsed only its patched copy, reusing the warm-up's parse
        want = cold.run(copy.copy(trigger))
        assert (keys(got.opened), keys(got.closed)) == (keys(want.opened), keys(want.closed)), step
        if got.opened or got.closed:
            break
    else:
        pytest.fail("no change opened or closed a pair: the test would prove nothing")


def test_a_warm_up_without_a_state_or_with_a_damaged_one_does_nothing_and_the_next_run_reports_it(
        tmp_path: Path) -> None:
    estate = Estate(render(dense_spec(random.Random(2))))
    assert new_instance(tmp_path, estate).warm() is False  # nothing committed yet: nothing to load
    assert not (tmp_path / "state.json").exists()
    new_instance(tmp_path, estate).run(RunTrigger(kind="reconcile"))
    [copy_file] = tmp_path.glob("topology-*.json")
    copy_file.write_bytes(copy_file.read_bytes().replace(b"Succeeded", b"Succeedex", 1))  # edited at rest
    before = sorted((p.name, p.stat().st_size) for p in tmp_path.iterdir() if p.is_file())
    instance = new_instance(tmp_path, estate)
    assert instance.warm() is False  # refused, not raised
    assert sorted((p.name, p.stat().st_size) for p in tmp_path.iterdir() if p.is_file()) == before  # wrote nothing
    result = instance.run(RunTrigger(kind="reconcile"))
    commits = [r for r in LocalAuditLog(tmp_path).records() if r.get("outcome") == "committed"]
    assert result.outcome == "committed" and commits[-1].get("stateRebuilt") is True  # refused, reported, rebuilt


def test_the_warmup_entry_point_warms_the_process_auditor_and_survives_bad_settings(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from shared import entrypoints

    estate = Estate(render(dense_spec(random.Random(3))))
    new_instance(tmp_path, estate).run(RunTrigger(kind="reconcile"))
    try:
        entrypoints.use(new_instance(tmp_path, estate))
        assert entrypoints.handle_warmup() is True
        entrypoints.reset()

        def broken(env: Any) -> Auditor:
            raise ValueError("WEBHOOK_URL is not https")

        monkeypatch.setattr(entrypoints, "build_auditor", broken)
        assert entrypoints.handle_warmup() is False  # logged; the first run meets the same error and reports it
    finally:
        entrypoints.reset()
