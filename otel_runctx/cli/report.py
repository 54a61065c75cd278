"""``otel-runctx report``: what each customer, workflow and run did, from a runctx_jsonl file.

Reads the lines the ``runctx_jsonl`` exporters wrote and groups spans by ``runctx.run_id``.
A run's status is its outcome event (``runctx.outcome.status`` on a log record) when one was
recorded, otherwise what its root span says (``error`` or ``ok``, marked as from the span).
Tokens are the sum of ``gen_ai.usage.input_tokens`` and ``gen_ai.usage.output_tokens`` over
the run's own spans. Cost is the usage roll-up's ``runctx.usage.cost`` (priced with
``OTEL_RUNCTX_PRICES``) from the run's outcome event, else from its root span, which carries the
same roll-up; it is never summed over spans, so nothing is counted twice. Percentiles use the
nearest-rank method over run durations (first span start to last span end).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["COST_KEY", "Report", "RunSummary", "build_report", "read_jsonl"]

INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
#: The run's estimated cost, set by the usage roll-up on the outcome event and the root span.
COST_KEY = "runctx.usage.cost"
OUTCOME_STATUS = "runctx.outcome.status"


@dataclass
class RunSummary:
    """One run, rolled up from its spans and its outcome event."""

    run_id: str
    workflow: str = "?"
    customer_id: str = "?"
    tenant_id: str | None = None
    parent_run_id: str | None = None
    root_run_id: str | None = None
    attempt: int = 1
    spans: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    start_ns: int | None = None
    end_ns: int | None = None
    status: str = "unknown"
    status_source: str = "none"
    _root_span_status: str | None = field(default=None, repr=False)
    _span_cost: float | None = field(default=None, repr=False)
    _outcome_cost: float | None = field(default=None, repr=False)

    @property
    def duration_ms(self) -> float | None:
        if self.start_ns is None or self.end_ns is None:
            return None
        return (self.end_ns - self.start_ns) / 1e6

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "workflow": self.workflow,
            "customer_id": self.customer_id,
            "tenant_id": self.tenant_id,
            "parent_run_id": self.parent_run_id,
            "root_run_id": self.root_run_id,
            "attempt": self.attempt,
            "status": self.status,
            "status_source": self.status_source,
            "spans": self.spans,
            "errors": self.errors,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost": round(self.cost, 6),
            "duration_ms": None if self.duration_ms is None else round(self.duration_ms, 3),
        }


@dataclass
class Report:
    """Runs, and their roll-ups per customer and per workflow."""

    runs: list[RunSummary]
    records: int = 0
    unparsable_lines: int = 0
    spans_outside_runs: int = 0

    def group(self, key: str) -> list[dict[str, Any]]:
        """One row per value of ``key`` (``customer_id`` or ``workflow``).

        Per customer, ``runs`` counts top-level runs and the totals include their child runs;
        per workflow, every run counts for its own workflow.
        """
        groups: dict[str, list[RunSummary]] = {}
        for run in self.runs:
            groups.setdefault(str(getattr(run, key)), []).append(run)
        rows = [_group_row(key, name, runs) for name, runs in sorted(groups.items())]
        return rows

    def as_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "unparsable_lines": self.unparsable_lines,
            "spans_outside_runs": self.spans_outside_runs,
            "customers": self.group("customer_id"),
            "workflows": self.group("workflow"),
            "runs": [run.as_dict() for run in self.runs],
        }


def _group_row(key: str, name: str, runs: list[RunSummary]) -> dict[str, Any]:
    counted = [r for r in runs if r.parent_run_id is None] if key == "customer_id" else runs
    durations = [d for d in (r.duration_ms for r in counted) if d is not None]
    return {
        key: name,
        "runs": len(counted),
        "child_runs": len(runs) - len(counted) if key == "customer_id" else None,
        "outcomes": dict(sorted(Counter(r.status for r in counted).items())),
        "spans": sum(r.spans for r in runs),
        "errors": sum(r.errors for r in runs),
        "tokens": sum(r.tokens for r in runs),
        "cost": round(sum(r.cost for r in runs), 6),
        "p50_ms": _percentile(durations, 50),
        "p95_ms": _percentile(durations, 95),
    }


def _percentile(values: list[float], percent: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return round(ordered[rank - 1], 3)


def read_jsonl(path: str | Path) -> tuple[list[dict[str, Any]], int]:
    """The records of a runctx_jsonl file, and how many lines were not JSON objects."""
    records: list[dict[str, Any]] = []
    bad = 0
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                bad += 1
                continue
            if isinstance(record, dict):
                records.append(record)
            else:
                bad += 1
    return records, bad


def build_report(records: Iterable[Mapping[str, Any]], unparsable_lines: int = 0) -> Report:
    """Roll spans and outcome events up into runs."""
    runs: dict[str, RunSummary] = {}
    span_ids_by_run: dict[str, set[str]] = {}
    spans: list[Mapping[str, Any]] = []
    outcomes: list[Mapping[str, Any]] = []
    total = outside = 0
    for record in records:
        total += 1
        attributes = record.get("attributes") or {}
        if record.get("signal") == "span":
            run_id = attributes.get("runctx.run_id")
            if not run_id:
                outside += 1
                continue
            spans.append(record)
            span_ids_by_run.setdefault(run_id, set()).add(str(record.get("span_id")))
        elif record.get("signal") == "log" and OUTCOME_STATUS in attributes:
            outcomes.append(record)
    for record in spans:
        _add_span(runs, span_ids_by_run, record)
    for record in outcomes:
        _add_outcome(runs, record)
    for run in runs.values():
        run.cost = next((c for c in (run._outcome_cost, run._span_cost) if c is not None), 0.0)
        if run.status_source == "none" and run._root_span_status is not None:
            run.status = "error" if run._root_span_status == "ERROR" else "ok"
            run.status_source = "span"
    ordered = sorted(runs.values(), key=lambda r: (r.start_ns or 0, r.run_id))
    return Report(
        runs=ordered, records=total, unparsable_lines=unparsable_lines, spans_outside_runs=outside
    )


def _summary(runs: dict[str, RunSummary], attributes: Mapping[str, Any]) -> RunSummary:
    run_id = str(attributes["runctx.run_id"])
    run = runs.get(run_id)
    if run is None:
        run = runs[run_id] = RunSummary(run_id=run_id)
    run.workflow = str(attributes.get("runctx.workflow", run.workflow))
    run.customer_id = str(attributes.get("runctx.customer_id", run.customer_id))
    run.tenant_id = attributes.get("runctx.tenant_id", run.tenant_id)
    run.parent_run_id = attributes.get("runctx.parent_run_id", run.parent_run_id)
    run.root_run_id = attributes.get("runctx.root_run_id", run.root_run_id)
    attempt = attributes.get("runctx.attempt")
    if isinstance(attempt, int):
        run.attempt = attempt
    return run


def _add_span(
    runs: dict[str, RunSummary], span_ids: dict[str, set[str]], record: Mapping[str, Any]
) -> None:
    attributes = record.get("attributes") or {}
    run = _summary(runs, attributes)
    run.spans += 1
    status = (record.get("status") or {}).get("code")
    if status == "ERROR":
        run.errors += 1
    run.input_tokens += _int(attributes.get(INPUT_TOKENS))
    run.output_tokens += _int(attributes.get(OUTPUT_TOKENS))
    cost = _cost(attributes)
    if cost is not None:
        run._span_cost = cost
    start, end = record.get("start_time_unix_nano"), record.get("end_time_unix_nano")
    if isinstance(start, int) and (run.start_ns is None or start < run.start_ns):
        run.start_ns = start
    if isinstance(end, int) and (run.end_ns is None or end > run.end_ns):
        run.end_ns = end
    if str(record.get("parent_span_id")) not in span_ids[run.run_id]:
        run._root_span_status = str(status)


def _add_outcome(runs: dict[str, RunSummary], record: Mapping[str, Any]) -> None:
    attributes = record.get("attributes") or {}
    if not attributes.get("runctx.run_id"):
        return
    run = _summary(runs, attributes)
    run.status = str(attributes[OUTCOME_STATUS])
    run.status_source = "outcome"
    run._outcome_cost = _cost(attributes)


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _cost(attributes: Mapping[str, Any]) -> float | None:
    value = attributes.get(COST_KEY)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None
