"""The report's rules restated in plain Python, as the yardstick for the DuckDB engine.

Slow and memory-hungry on purpose (every record in a list): it exists so the rules in
``otel_runctx/cli/report_sql.py`` have a second, independent statement to agree with.
It reads runctx_jsonl records (dicts) and returns the same document as ``report --json``.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

_NUMBER = (int, float)


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, _NUMBER) and not isinstance(value, bool) else None


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(1, math.ceil(q * len(ordered))) - 1], 3)


def _count(value: float, estimated: bool) -> float | int:
    return round(value, 1) if estimated else round(value)


def reference_report(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The report of ``records``, computed record by record."""
    spans: dict[str, list[dict[str, Any]]] = {}
    outcomes: dict[str, list[dict[str, Any]]] = {}
    outside = 0
    for record in records:
        attributes = record.get("attributes") or {}
        run_id = attributes.get("runctx.run_id")
        if record.get("signal") == "span":
            if run_id is None:
                outside += 1
            else:
                spans.setdefault(run_id, []).append(record)
        elif record.get("signal") == "log" and run_id is not None:
            if "runctx.outcome.status" in attributes:
                outcomes.setdefault(run_id, []).append(record)
            else:
                spans.setdefault(run_id, [])
    runs = {
        rid: _run(rid, spans.get(rid, []), outcomes.get(rid, [])) for rid in {*spans, *outcomes}
    }
    _inclusive(runs)
    ordered = sorted(
        runs.values(), key=lambda r: (r["_start"] is None, r["_start"] or 0, r["run_id"])
    )
    return {
        "records": len(records),
        "spans_outside_runs": outside,
        "events": _events(ordered),
        "customers": _groups(ordered, "customer_id"),
        "workflows": _groups(ordered, "workflow"),
        "runs": [{k: v for k, v in r.items() if not k.startswith("_")} for r in ordered],
    }


def _run(
    run_id: str, spans: list[dict[str, Any]], outcomes: list[dict[str, Any]]
) -> dict[str, Any]:
    outcome = None
    if outcomes:
        outcome = max(
            outcomes,
            key=lambda o: (
                o.get("time_unix_nano") or 0,
                o["attributes"].get("runctx.usage.input_tokens") or 0,
                o["attributes"]["runctx.outcome.status"],
            ),
        )["attributes"]

    def lineage(key: str, default: Any = None) -> Any:
        if outcome is not None and outcome.get(key) is not None:
            return outcome[key]
        values = [s["attributes"][key] for s in spans if s["attributes"].get(key) is not None]
        return max(values) if values else default

    p_out = _num(outcome.get("runctx.sample.probability")) if outcome else None
    weight, errors = 0.0, 0.0
    estimated = p_out is not None and p_out < 1
    for span in spans:
        p = _num(span["attributes"].get("runctx.sample.probability"))
        estimated = estimated or (p is not None and p < 1)
        w = 1 / p if p and p > 0 else 1 / (p_out if p_out else 1)
        weight += w
        errors += w if span["status"]["code"] == "ERROR" else 0
    root_usage = [s["attributes"] for s in spans if "runctx.usage.input_tokens" in s["attributes"]]
    if outcome is not None and "runctx.usage.input_tokens" in outcome:
        tokens = (
            outcome["runctx.usage.input_tokens"],
            outcome.get("runctx.usage.output_tokens", 0),
        )
        source = "outcome"
    elif root_usage:
        tokens = (
            root_usage[0]["runctx.usage.input_tokens"],
            root_usage[0].get("runctx.usage.output_tokens", 0),
        )
        source = "root_span"
    else:
        tokens = (
            sum(s["attributes"].get("gen_ai.usage.input_tokens", 0) for s in spans),
            sum(s["attributes"].get("gen_ai.usage.output_tokens", 0) for s in spans),
        )
        source = "spans"
    if outcome is not None:
        cost = _num(outcome.get("runctx.usage.cost"))
    else:
        costs = [_num(s["attributes"].get("runctx.usage.cost")) for s in spans]
        cost = max((c for c in costs if c is not None), default=None)
    starts = [s["start_time_unix_nano"] for s in spans]
    ends = [s["end_time_unix_nano"] for s in spans]
    if outcome is not None:
        status, status_source = outcome["runctx.outcome.status"], "outcome"
    elif spans:
        root = min(spans, key=lambda s: (s["start_time_unix_nano"], s["span_id"]))
        status = "error" if root["status"]["code"] == "ERROR" else "ok"
        status_source = "span"
    else:
        status, status_source = "unknown", "none"
    duration = _num(outcome.get("runctx.outcome.duration_ms")) if outcome else None
    if duration is None and spans:
        duration = (max(ends) - min(starts)) / 1e6
    return {
        "run_id": run_id,
        "workflow": lineage("runctx.workflow", "?"),
        "event_id": lineage("runctx.event_id", "?"),
        "customer_id": lineage("runctx.customer_id", "?"),
        "parent_run_id": lineage("runctx.parent_run_id"),
        "attempt": lineage("runctx.attempt", 1),
        "status": status,
        "status_source": status_source,
        "outcome_events": len(outcomes),
        "spans": _count(weight, estimated),
        "errors": _count(errors, estimated),
        "spans_estimated": estimated,
        "spans_seen": len(spans),
        "input_tokens": tokens[0],
        "output_tokens": tokens[1],
        "tokens_source": source,
        "cost": round(cost or 0.0, 6),
        "unpriced_models": list(outcome.get("runctx.usage.cost_unpriced_models", []))
        if outcome
        else [],
        "duration_ms": None if duration is None else round(duration, 3),
        "_cost": cost or 0.0,
        "_weight": weight,
        "_errors": errors,
        "_start": min(starts) if starts else None,
        "_duration": duration,
    }


def _inclusive(runs: dict[str, dict[str, Any]]) -> None:
    for run in runs.values():
        run["inclusive_cost"] = 0.0
        run["inclusive_input_tokens"] = run["inclusive_output_tokens"] = 0
        run["descendants"] = -1
    for run in runs.values():
        seen: set[str] = set()
        current: str | None = run["run_id"]
        while current is not None and current in runs and current not in seen:
            seen.add(current)
            ancestor = runs[current]
            ancestor["inclusive_cost"] += run["_cost"]
            ancestor["inclusive_input_tokens"] += run["input_tokens"]
            ancestor["inclusive_output_tokens"] += run["output_tokens"]
            ancestor["descendants"] += 1
            current = ancestor["parent_run_id"]
    for run in runs.values():
        run["inclusive_cost"] = round(run["inclusive_cost"], 6)


def _sums(runs: list[dict[str, Any]]) -> dict[str, Any]:
    estimated = any(r["spans_estimated"] for r in runs)
    tokens_in = sum(r["input_tokens"] for r in runs)
    tokens_out = sum(r["output_tokens"] for r in runs)
    return {
        "spans": _count(sum(r["_weight"] for r in runs), estimated),
        "errors": _count(sum(r["_errors"] for r in runs), estimated),
        "spans_estimated": estimated,
        "input_tokens": tokens_in,
        "output_tokens": tokens_out,
        "tokens": tokens_in + tokens_out,
        "cost": round(sum(r["_cost"] for r in runs), 6),
        "unpriced_runs": sum(1 for r in runs if r["unpriced_models"]),
    }


def _events(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_event: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        by_event.setdefault(run["event_id"], []).append(run)
    rows = []
    for event_id, members in by_event.items():
        roots = [r for r in members if r["parent_run_id"] is None]
        last = (
            max(roots, key=lambda r: (r["attempt"], r["_start"] or 0, r["run_id"]))
            if roots
            else None
        )
        rows.append({
            "event_id": event_id,
            "customer_id": last["customer_id"] if last else max(r["customer_id"] for r in members),
            "runs": len(members),
            "attempts": len(roots),
            "status": last["status"] if last else "unknown",
            **_sums(members),
        })  # fmt: skip
    return sorted(rows, key=lambda e: (-e["cost"], e["event_id"]))


def _groups(runs: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault(run[key], []).append(run)
    rows = []
    for name, members in sorted(groups.items()):
        counted = (
            [r for r in members if r["parent_run_id"] is None] if key == "customer_id" else members
        )
        durations = [r["_duration"] for r in counted if r["_duration"] is not None]
        row: dict[str, Any] = {key: name, "runs": len(counted)}
        if key == "customer_id":
            row["child_runs"] = len(members) - len(counted)
            row["events"] = len({r["event_id"] for r in members})
        row["outcomes"] = dict(sorted(Counter(r["status"] for r in counted).items()))
        row.update(_sums(members))
        row["p50_ms"], row["p95_ms"] = _pct(durations, 0.5), _pct(durations, 0.95)
        rows.append(row)
    return rows
