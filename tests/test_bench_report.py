"""Smoke test for benchmarks/bench_report.py: it runs on a small file and reports both rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import bench_report


def test_the_report_benchmark_runs_quickly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setenv("RUNCTX_BENCH_REPORT_RECORDS", "3000")
    monkeypatch.setattr(bench_report.tempfile, "tempdir", None)
    rows = bench_report.measure(quick=True)
    assert [row.ratio_to for row in rows] == [None, rows[0].name]
    assert all(row.ns_per_op > 0 and "MB peak RSS" in row.note for row in rows)
    assert (tmp_path / "otel-runctx-bench" / "report-3000.jsonl").stat().st_size > 0
