"""``otel-runctx report --json`` on a generated file of 1,000,000 records: wall time and peak RSS.

Targets (issue 15): <= 3 s wall and <= 300 MB peak RSS for 1M records on this machine. Each
variant runs as its own process (``python -m otel_runctx report --json FILE > /dev/null``), so
its peak RSS is its own (``wait4``); the row's ns/op is wall time per record. The floor is
DuckDB alone reading one attribute of every line of the same file, in a process of its own.

The file is generated once (``benchmarks/report_data.py``, about 830 MB for 1M records) into the
temp folder and reused. ``RUNCTX_BENCH_REPORT_RECORDS=10000000`` measures another size by hand.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._harness import Row
from benchmarks.report_data import write_records

TITLE = "otel-runctx report --json: a generated runctx_jsonl file (wall ns per record)"

_TARGET_S, _TARGET_MB = 3.0, 300.0
_FLOOR = """
import sys, duckdb
duckdb.sql("SELECT count(struct_extract(attributes, 'runctx.run_id')) FROM read_json(?, "
           "columns={'attributes': 'STRUCT(\\"runctx.run_id\\" VARCHAR)'}, "
           "format='newline_delimited', ignore_errors=true)", params=[sys.argv[1]]).fetchall()
"""


def _records(quick: bool) -> int:
    override = os.environ.get("RUNCTX_BENCH_REPORT_RECORDS")
    return int(override) if override else 20_000 if quick else 1_000_000


def _data_file(records: int) -> Path:
    folder = Path(tempfile.gettempdir()) / "otel-runctx-bench"
    folder.mkdir(exist_ok=True)
    path = folder / f"report-{records}.jsonl"
    done = path.with_suffix(".done")
    if not done.exists():
        write_records(path, records)
        done.touch()
    return path


def _measure(argv: list[str], repeats: int) -> tuple[float, float, float]:
    """Median wall s, median CPU s, and the largest peak RSS in MB over ``repeats`` runs."""
    walls, cpus, peaks = [], [], []
    for _ in range(repeats):
        started = time.perf_counter()
        with open(os.devnull, "wb") as sink:
            process = subprocess.Popen(argv, stdout=sink)
            _, status, usage = os.wait4(process.pid, 0)
        walls.append(time.perf_counter() - started)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise RuntimeError(f"{argv} exited with {process.returncode}")
        cpus.append(usage.ru_utime + usage.ru_stime)
        peaks.append(usage.ru_maxrss / 1024)  # KiB on Linux
    return statistics.median(walls), statistics.median(cpus), max(peaks)


def measure(quick: bool) -> list[Row]:
    records = _records(quick)
    path = _data_file(records)
    size_mb = path.stat().st_size / 1e6
    repeats = 1 if quick else 3
    floor = _measure([sys.executable, "-c", _FLOOR, str(path)], repeats)
    report = _measure([sys.executable, "-m", "otel_runctx", "report", "--json", str(path)], repeats)
    # The machine is shared: the load says how much of the wall time was waiting for a core.
    load = f"; load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    rows = [
        Row(
            f"floor: DuckDB reads run_id, {records:,} rec",
            floor[0] * 1e9 / records,
            note=f"{floor[0]:.2f} s wall, {floor[1]:.2f} s CPU, {floor[2]:.0f} MB peak RSS{load}",
        )
    ]
    verdict = ""
    if records == 1_000_000:
        ok = report[0] <= _TARGET_S and report[2] <= _TARGET_MB
        verdict = f"; target <= {_TARGET_S:g} s, <= {_TARGET_MB:g} MB: {'met' if ok else 'MISSED'}"
    rows.append(
        Row(
            f"report --json, {records:,} rec ({size_mb:,.0f} MB)",
            report[0] * 1e9 / records,
            ratio_to=rows[0].name,
            note=f"{report[0]:.2f} s wall, {report[1]:.2f} s CPU, "
            f"{report[2]:.0f} MB peak RSS{verdict}",
        )
    )
    return rows
