"""The benchmark script keeps working (no timing assertions: benchmarks are scripts, not tests)."""

from __future__ import annotations

from benchmarks.bench_transit import generate, measure, table
from shared.core.snapshot import parse_resources
from shared.core.transit import compute_pairs


def test_generator_builds_hubs_spokes_and_flag_flips_at_a_small_size() -> None:
    before, after = generate(200)
    topology = parse_resources(before)
    assert len(topology.vnets) == 200
    assert len(topology.gateways) == 20
    assert topology.warnings == ()
    assert compute_pairs(topology).pairs
    assert before != after


def test_measure_reports_every_column_and_renders_a_markdown_table() -> None:
    row = measure(300, repeat=1)
    assert row["vnets"] == 300 and row["pairs"] > 0
    assert row["opened"] + row["closed"] > 0
    lines = table([row]).splitlines()
    assert lines[0].startswith("| VNets |") and lines[1].startswith("|---:|")
    assert lines[2].startswith("| 300 |")


def test_the_auditor_benchmark_runs_its_scenarios_at_a_small_size(capsys) -> None:  # type: ignore[no-untyped-def]
    from benchmarks import bench_auditor

    scenarios = "event-opens,event-closes,event-settles,large-change-warm"
    assert bench_auditor.main(["--vnets", "400", "--only", scenarios]) == 0
    out = capsys.readouterr().out
    assert "| an event that opens pairs (warm process) |" in out and "0 Resource Graph queries" in out
    assert "| an event that closes pairs (a connection deleted) (cold process) |" in out
    assert "| an event that makes pairs pending (" in out
    assert "| a large change, warm process (" in out
