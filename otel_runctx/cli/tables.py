"""Draw an ``otel-runctx report`` as rich tables (the ``cli`` extra); importing needs rich.

A span count marked ``~`` is an estimate (sampled runs, weighted by 1/probability); a cost
marked ``*`` leaves out models the price table does not know.
"""

from __future__ import annotations

from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

from otel_runctx.cli.report import Report

__all__ = ["print_report"]

_LEFT = {"customer", "workflow", "outcomes", "event", "status", "run", "parent", "services"}


def _table(title: str, columns: tuple[str, ...]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, justify="left" if column in _LEFT else "right")
    return table


def print_report(report: Report, out: TextIO, *, max_runs: int = 20, max_events: int = 10) -> None:
    """Per-customer, per-workflow, top-event and per-run tables, then a line about the input."""
    console = Console(file=out, width=None if out.isatty() else 160)
    for key, title, rows in (
        ("customer", "Per customer", report.customers),
        ("workflow", "Per workflow", report.workflows),
    ):
        extra = ("events",) if key == "customer" else ("incl. cost",)
        table = _table(title, (key, "runs", *extra, "outcomes", "spans", "errors", "tokens",
                               "cost", "p50 ms", "p95 ms"))  # fmt: skip
        for row in rows:
            runs = str(row["runs"])
            if row.get("child_runs"):
                runs += f" (+{row['child_runs']} child)"
            more = str(row["events"]) if key == "customer" else _money(row["inclusive_cost"], 0)
            table.add_row(
                str(row[f"{key}_id" if key == "customer" else key]),
                runs,
                more,
                _outcomes(row["outcomes"]),
                _spans(row),
                _spans(row, "errors"),
                str(row["tokens"]),
                _money(row["cost"], row["unpriced_runs"]),
                _ms(row["p50_ms"]),
                _ms(row["p95_ms"]),
            )
        console.print(table)
    events = report.events[:max_events]
    table = _table(
        f"Top events by cost ({len(events)} of {len(report.events)})",
        ("event", "customer", "status", "runs", "attempts", "spans", "tokens", "cost",
         "services"),
    )  # fmt: skip
    for event in events:
        table.add_row(
            event["event_id"],
            event["customer_id"],
            _status(event),
            str(event["runs"]),
            str(event["attempts"]),
            _spans(event),
            str(event["tokens"]),
            _money(event["cost"], event["unpriced_runs"]),
            ", ".join(event["services"]),
        )
    console.print(table)
    _print_runs(report, console, max_runs)
    notes = [
        f"{report.records} records",
        f"{report.spans_outside_runs} spans outside any run",
        f"{report.unparsable_lines} unparsable lines",
    ]
    if report.spans_estimated:
        notes.append("~ span counts estimated from sampled runs")
    if report.unpriced_models:
        notes.append(f"* cost leaves out unpriced models: {', '.join(report.unpriced_models)}")
    console.print("; ".join(notes))


def _print_runs(report: Report, console: Console, max_runs: int) -> None:
    shown = report.runs[:max_runs]
    table = _table(
        f"Runs ({len(shown)} of {report.run_count})",
        ("run", "workflow", "customer", "attempt", "parent", "status", "spans", "errors",
         "tokens", "cost", "incl. cost", "ms"),
    )  # fmt: skip
    for run in shown:
        table.add_row(
            _short(run["run_id"]),
            run["workflow"],
            run["customer_id"],
            str(run["attempt"]),
            _short(run["parent_run_id"]),
            _status(run),
            _spans(run),
            _spans(run, "errors"),
            str(run["tokens"]),
            _money(run["cost"], len(run["unpriced_models"])),
            _money(run["inclusive_cost"], 0) if run["descendants"] else "",
            _ms(run["duration_ms"]),
        )
    console.print(table)


def _status(row: dict[str, Any]) -> str:
    return row["status"] if row["status_source"] != "span" else f"{row['status']} (span)"


def _spans(row: dict[str, Any], key: str = "spans") -> str:
    value = row[key]
    return f"~{value:g}" if row["spans_estimated"] else str(value)


def _short(run_id: str | None) -> str:
    """The last 12 hex digits: UUIDv7s made in the same millisecond share their first ones."""
    return f"…{run_id[-12:]}" if run_id else ""


def _outcomes(counts: dict[str, Any]) -> str:
    return ", ".join(f"{status} {n}" for status, n in counts.items()) or "-"


def _money(value: float, unpriced: int) -> str:
    text = f"{value:.4f}" if value else "-"
    return f"{text}*" if unpriced else text


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
