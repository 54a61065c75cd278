"""Smoke test for benchmarks/bench_budget.py: it runs and reports every variant (no timings)."""

from __future__ import annotations

from benchmarks import bench_budget
from otel_runctx.usage import spend


def test_the_budget_benchmark_runs_quickly_and_reports_every_variant() -> None:
    rows = bench_budget.measure(quick=True)
    names = {row.name for row in rows}
    assert {
        "budget hook: token budget",
        "budget hook: cost budget",
        "per run, no budget: hooks",
        "RunLocal.get",
    } <= names
    assert all(row.ns_per_op > 0 for row in rows)
    assert all(row.ratio_to is None or row.ratio_to in names for row in rows)
    assert spend.live_budget_count() == 0  # the benchmark let go of every budget it made
