"""Memory: resident set growth over many runs (each with its root span and automatic outcome).

Every per-run structure must be bounded: live-run tables, the remembered-outcome ids, the
stamping and encoding caches. Warm up first (caches fill, the allocator settles), then run N
more runs and report how much the resident set grew. Full run: 1,000,000 runs (target growth
< 25 MB); ``--quick``: 20,000.
"""

from __future__ import annotations

import gc
import os
import resource
import time

from benchmarks._harness import Row
from benchmarks.bench_runs import ensure_providers
from otel_runctx import run
from otel_runctx.outcomes.active import activate_spool
from otel_runctx.outcomes.events import flush_outcome_events

TITLE = "Memory: resident set growth over many runs (spool off, batch processors, null exporters)"


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):  # not Linux: the peak is the best there is
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _runs(count: int) -> None:
    for index in range(count):
        with run("checkout", event_id=f"order-{index}", customer_id=f"cust-{index % 1000}"):
            pass


def measure(quick: bool) -> list[Row]:
    ensure_providers()
    total = 20_000 if quick else 1_000_000
    previous = activate_spool(None)
    try:
        _runs(20_000)
        flush_outcome_events(30)
        gc.collect()
        before = _rss_bytes()
        start = time.perf_counter()
        _runs(total)
        elapsed = time.perf_counter() - start
        flush_outcome_events(30)
        gc.collect()
        growth = _rss_bytes() - before
    finally:
        activate_spool(previous)
    return [
        Row(
            f"{total:,} runs: RSS growth (bytes)",
            float(growth),
            note=f"{growth / 1e6:.1f} MB; target < 25 MB for 1,000,000; "
            f"{elapsed * 1e9 / total / 1000:.0f} us per run",
        )
    ]
