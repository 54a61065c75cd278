"""Smoke test for benchmarks/bench_stamping.py: it runs and reports every variant (no timings)."""

from __future__ import annotations

from benchmarks import bench_stamping


def test_the_stamping_benchmark_runs_quickly_and_reports_every_variant() -> None:
    rows = bench_stamping.measure(quick=True)
    names = [row.name for row in rows]
    for expected in ("bare SDK", "floor (attributes=)", "ours", "baggage processor", "+ ours"):
        assert expected in names
    assert {"depth 5: ours", "4 threads: ours", "log record: ours"} <= set(names)
    assert all(row.ns_per_op > 0 for row in rows if not row.name.startswith("+"))
    assert all(row.ratio_to is None or row.ratio_to in names for row in rows)
