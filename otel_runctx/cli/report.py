"""``otel-runctx report``: what each event, customer, workflow and run did and cost.

Reads ``runctx_jsonl`` files and OTLP JSON lines (what the collector's ``file`` exporter writes)
in place with DuckDB (the ``cli`` extra), so a file of millions of records is never loaded into
Python: the engine scans it once and hands back one row per run, event, customer and workflow.
The rules live in ``report_sql`` (SQL) and the input formats in ``report_sources``; this module
opens the engine, runs them, and shapes the rows for ``--json``, the tables and the HTML page.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from otel_runctx.cli import report_sql
from otel_runctx.cli.report_sources import Sources, find_sources, records_sql

__all__ = ["Report", "ReportError", "build_report"]

#: DuckDB's own memory cap for one report (it spills to a temp file beyond it).
_MEMORY_LIMIT = "1GB"


class ReportError(Exception):
    """The report cannot be made (nothing to read, or the engine is not installed)."""


@dataclass
class Report:
    """Everything the report shows, as plain rows (the ``--json`` document is ``as_dict()``)."""

    files: list[str]
    records: int = 0
    unparsable_lines: int = 0
    spans_outside_runs: int = 0
    #: How many runs there are; ``runs`` holds the first ``max_runs`` of them by start time.
    run_count: int = 0
    #: Whether any span count is an estimate (runs sampled with probability < 1).
    spans_estimated: bool = False
    #: Models some run's cost leaves out because the price table does not know them.
    unpriced_models: list[str] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    customers: list[dict[str, Any]] = field(default_factory=list)
    workflows: list[dict[str, Any]] = field(default_factory=list)

    def write_json(self, out: TextIO) -> None:
        """``as_dict()`` as indented JSON, written run by run (one string for 150k runs of JSON
        would double the peak memory)."""
        document = self.as_dict()
        runs = document.pop("runs")
        head = json.dumps(document, indent=2)
        out.write(head[:-2] + ',\n  "runs": [')
        for index, run in enumerate(runs):
            text = json.dumps(run, indent=2).replace("\n", "\n    ")
            out.write(("," if index else "") + "\n    " + text)
        out.write("\n  ]\n}\n" if runs else "]\n}\n")

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "records": self.records,
            "unparsable_lines": self.unparsable_lines,
            "spans_outside_runs": self.spans_outside_runs,
            "run_count": self.run_count,
            "spans_estimated": self.spans_estimated,
            "unpriced_models": self.unpriced_models,
            "events": self.events,
            "customers": self.customers,
            "workflows": self.workflows,
            "runs": self.runs,
        }


def build_report(
    patterns: Sequence[str], *, max_runs: int | None = None, threads: int | None = None
) -> Report:
    """Read every file the paths or globs name and roll them up (see ``report_sql``).

    ``max_runs`` keeps only the first runs by start time in ``Report.runs`` (the tables show
    a few; ``--json`` lists all): at 10M records there are ~150k runs, and Python rows for all
    of them cost more memory than the whole scan.
    """
    sources = find_sources(patterns)
    if not sources.files:
        raise ReportError(f"no file matches {' '.join(sources.unmatched or patterns)}")
    try:
        import duckdb
    except ImportError:
        raise ReportError("the report needs DuckDB: pip install 'otel-runctx[cli]'") from None
    try:
        with duckdb.connect(":memory:") as db:
            db.execute(f"SET memory_limit = '{_MEMORY_LIMIT}'")
            db.execute("SET preserve_insertion_order = false")
            # Its progress bar would go to our stdout, in the middle of --json output.
            db.execute("SET enable_progress_bar = false")
            if threads:
                db.execute(f"SET threads = {int(threads)}")
            return _query(db, sources, max_runs)
    except duckdb.Error as error:  # e.g. a truncated gzip file
        raise ReportError(f"cannot read {' '.join(sources.files)}: {error}") from None


def _query(db: Any, sources: Sources, max_runs: int | None) -> Report:
    db.execute(f"CREATE TEMP VIEW records AS {records_sql(sources)}")
    db.execute(report_sql.SETUP)
    records, unparsable, outside, runs, estimated, unpriced = db.execute(
        report_sql.TOTALS
    ).fetchone()
    limit = {"limit": runs if max_runs is None else max(0, max_runs)}
    return Report(
        files=sources.files,
        records=int(records),
        unparsable_lines=int(unparsable),
        spans_outside_runs=int(outside),
        run_count=int(runs),
        spans_estimated=bool(estimated),
        unpriced_models=list(unpriced or []),
        runs=[_run_row(row) for row in _rows(db, report_sql.RUNS, limit)],
        events=[_event_row(row) for row in _rows(db, report_sql.EVENTS)],
        customers=[_group_row(row, "customer_id") for row in _rows(db, report_sql.CUSTOMERS)],
        workflows=[_group_row(row, "workflow") for row in _rows(db, report_sql.WORKFLOWS)],
    )


def _rows(db: Any, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    cursor = db.execute(sql, parameters) if parameters else db.execute(sql)
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _money(value: float | None) -> float:
    return round(value or 0.0, 6)


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _count(value: float | None, estimated: bool) -> float | int:
    """A span count: whole when every span was seen, one decimal when it is an estimate."""
    return round(value or 0.0, 1) if estimated else round(value or 0.0)


def _common(row: dict[str, Any]) -> dict[str, Any]:
    estimated = bool(row["spans_estimated"])
    tokens_in, tokens_out = int(row["input_tokens"] or 0), int(row["output_tokens"] or 0)
    return {
        "spans": _count(row["spans"], estimated),
        "errors": _count(row["errors"], estimated),
        "spans_estimated": estimated,
        "input_tokens": tokens_in,
        "output_tokens": tokens_out,
        "tokens": tokens_in + tokens_out,
        "cost": _money(row["cost"]),
    }


def _run_row(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "run_id": row["run_id"],
        "workflow": row["workflow"],
        "event_id": row["event_id"],
        "customer_id": row["customer_id"],
        "tenant_id": row["tenant_id"],
        "parent_run_id": row["parent_run_id"],
        "root_run_id": row["root_run_id"],
        "retry_of_run_id": row["retry_of_run_id"],
        "attempt": int(row["attempt"]),
        "status": row["status"],
        "status_source": row["status_source"],
        "outcome_events": int(row["outcome_events"]),
        **_common(row),
        "spans_seen": int(row["spans_seen"]),
        "tokens_source": row["tokens_source"],
        "priced": row["cost"] is not None,
        "unpriced_models": list(row["unpriced_models"]),
        "usage_complete": bool(row["usage_complete"]),
        "sample_probability": row["sample_probability"],
        "descendants": int(row["descendants"]),
        "inclusive_cost": _money(row["inclusive_cost"]),
        "inclusive_input_tokens": int(row["inclusive_input_tokens"] or 0),
        "inclusive_output_tokens": int(row["inclusive_output_tokens"] or 0),
        "services": list(row["services"]),
        "duration_ms": _ms(row["duration_ms"]),
    }


def _event_row(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": row["event_id"],
        "customer_id": row["customer_id"],
        "workflow": row["workflow"],
        "runs": int(row["runs"]),
        "attempts": int(row["attempts"]),
        "status": row["status"],
        "status_source": row["status_source"],
        **_common(row),
        "unpriced_runs": int(row["unpriced_runs"]),
        "usage_complete": bool(row["usage_complete"]),
        "services": list(row["services"]),
    }


def _group_row(row: dict[str, Any], key: str) -> dict[str, Any]:
    out: dict[str, Any] = {key: row[key], "runs": int(row["runs"])}
    if key == "customer_id":
        out["child_runs"] = int(row["child_runs"])
        out["events"] = int(row["events"])
    out["outcomes"] = dict(sorted(Counter(row["top_statuses"] or []).items()))
    out.update(_common(row))
    if key == "workflow":
        out["inclusive_cost"] = _money(row["inclusive_cost"])
    out["unpriced_runs"] = int(row["unpriced_runs"])
    out["usage_complete"] = bool(row["usage_complete"])
    out["p50_ms"] = _ms(row["p50_ms"])
    out["p95_ms"] = _ms(row["p95_ms"])
    return out
