"""What every benchmark module shares: timing, result rows and the printed table.

A benchmark module is ``benchmarks/bench_<topic>.py`` exposing ``TITLE: str`` and
``def measure(quick: bool) -> list[Row]``. ``python -m benchmarks`` imports each one, runs it in
this one process, and prints one table per module, so ratios come from the same run on the same
machine. ``quick`` asks for a short run (used by the smoke test in ``make test``).
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table


@dataclass(frozen=True)
class Row:
    """One measured variant. ``ratio_to`` names the row this one's ratio is computed against."""

    name: str
    ns_per_op: float
    ratio_to: str | None = None
    note: str = ""


def ns_per_op(operation: Callable[[], object], *, ops: int, repeats: int = 5) -> float:
    """Median over ``repeats`` of the mean ns per call of ``operation`` over ``ops`` calls.

    The collector is paused while timing, so one variant does not pay for another's garbage.
    """
    samples = []
    for _ in range(repeats):
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter_ns()
            for _ in range(ops):
                operation()
            samples.append((time.perf_counter_ns() - start) / ops)
        finally:
            gc.enable()
    return statistics.median(samples)


def percentile(samples_ns: list[float], pct: float) -> float:
    """The ``pct`` percentile (0-100) of ``samples_ns`` by nearest rank."""
    ordered = sorted(samples_ns)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def render(title: str, rows: list[Row], console: Console) -> None:
    """Print ``rows`` as a table with ns/op and each row's ratio to the row it names."""
    by_name = {row.name: row for row in rows}
    table = Table(title=title, title_justify="left")
    table.add_column("variant")
    table.add_column("ns/op", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column("note")
    for row in rows:
        base = by_name.get(row.ratio_to) if row.ratio_to else None
        ratio = f"{row.ns_per_op / base.ns_per_op:.2f}x {base.name}" if base else ""
        table.add_row(row.name, f"{row.ns_per_op:,.0f}", ratio, row.note)
    console.print(table)
