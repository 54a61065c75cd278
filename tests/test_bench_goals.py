"""Smoke tests for the per-goal benchmark tables (bench_export, bench_runs): they run and report
every variant. No timing is asserted: the machine running tests is shared."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.metrics import MeterProvider

from benchmarks import bench_export, bench_runs
from otel_runctx.exporters import _fast_encode
from otel_runctx.outcomes.run_counter import SummedCounter
from otel_runctx.settings import get_settings, load_settings


def test_the_export_benchmark_reports_every_variant_and_restores_settings() -> None:
    rows = bench_export.measure(quick=True)
    names = [row.name for row in rows]
    assert names[0].startswith("bare pipeline") and len(names) == 4
    assert all(row.ns_per_op > 0 for row in rows)
    assert all("B/span" in row.note for row in rows if "stock" not in row.name)
    assert get_settings() == load_settings()
    assert _fast_encode.installed


def test_the_run_benchmark_reports_wall_and_cpu_per_run(monkeypatch: pytest.MonkeyPatch) -> None:
    # The session's global providers as they are: the benchmark's own would stay global (OTel
    # sets them once per process) and change what later tests see.
    monkeypatch.setattr(bench_runs, "ensure_providers", lambda: None)
    meter = MeterProvider().get_meter("test")
    instruments = (SummedCounter(meter, "runs"), meter.create_histogram("duration"))
    monkeypatch.setattr(bench_runs.delivery, "_instruments", instruments)
    rows = bench_runs.measure(quick=True)
    assert bench_runs.delivery._instruments is instruments  # the metered variant put them back
    assert len(rows) == 5  # bare, spool off, spool on, spool on with stdlib JSON, metered
    assert all(row.ratio_to == rows[0].name for row in rows[1:])
    assert all(row.ns_per_op > 0 and "CPU" in row.note for row in rows)
