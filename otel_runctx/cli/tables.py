"""Draw an ``otel-runctx report`` as rich tables (the ``cli`` extra); importing needs rich."""

from __future__ import annotations

from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

from otel_runctx.cli.report import Report

__all__ = ["print_report"]


def print_report(report: Report, out: TextIO, *, max_runs: int = 20) -> None:
    """Per-customer, per-workflow and per-run tables, then a line about skipped input."""
    console = Console(file=out, width=None if out.isatty() else 140)
    for key, title in (("customer_id", "Per customer"), ("workflow", "Per workflow")):
        table = Table(title=title, title_justify="left")
        for column in (
            key.removesuffix("_id"),
            "runs",
            "outcomes",
            "spans",
            "errors",
            "tokens",
            "cost",
            "p50 ms",
            "p95 ms",
        ):
            table.add_column(
                column,
                justify="left" if column in (key.removesuffix("_id"), "outcomes") else "right",
            )
        for row in report.group(key):
            runs = str(row["runs"])
            if row.get("child_runs"):
                runs += f" (+{row['child_runs']} child)"
            table.add_row(
                str(row[key]),
                runs,
                _outcomes(row["outcomes"]),
                str(row["spans"]),
                str(row["errors"]),
                str(row["tokens"]),
                _money(row["cost"]),
                _ms(row["p50_ms"]),
                _ms(row["p95_ms"]),
            )
        console.print(table)
    shown = report.runs[:max_runs]
    table = Table(title=f"Runs ({len(shown)} of {len(report.runs)})", title_justify="left")
    for column in (
        "run",
        "workflow",
        "customer",
        "attempt",
        "parent",
        "status",
        "spans",
        "errors",
        "tokens",
        "cost",
        "ms",
    ):
        table.add_column(
            column,
            justify="left"
            if column in ("run", "workflow", "customer", "parent", "status")
            else "right",
        )
    for run in shown:
        status = run.status if run.status_source != "span" else f"{run.status} (span)"
        table.add_row(
            _short(run.run_id),
            run.workflow,
            run.customer_id,
            str(run.attempt),
            _short(run.parent_run_id),
            status,
            str(run.spans),
            str(run.errors),
            str(run.tokens),
            _money(run.cost),
            _ms(run.duration_ms),
        )
    console.print(table)
    console.print(
        f"{report.records} records; {report.spans_outside_runs} spans outside any run; "
        f"{report.unparsable_lines} unparsable lines"
    )


def _short(run_id: str | None) -> str:
    """The last 12 hex digits: UUIDv7s made in the same millisecond share their first ones."""
    return f"…{run_id[-12:]}" if run_id else ""


def _outcomes(counts: dict[str, Any]) -> str:
    return ", ".join(f"{status} {n}" for status, n in counts.items()) or "-"


def _money(value: float) -> str:
    return f"{value:.4f}" if value else "-"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
