"""Records from ``report_data`` re-encoded as OTLP JSON lines (the collector ``file`` exporter's).

One line per export request, grouped by signal and service, with the OTLP JSON mapping's
spelling: camelCase names, hex ids, 64-bit integers as strings, enums as numbers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from benchmarks.report_data import resource_attributes

_KINDS = {"INTERNAL": 1, "SERVER": 2, "CLIENT": 3}


def _any_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list | tuple):
        return {"arrayValue": {"values": [_any_value(v) for v in value]}}
    return {"stringValue": str(value)}


def _key_values(attributes: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": _any_value(v)} for k, v in attributes.items() if v is not None]


def _otlp_span(record: dict[str, Any]) -> dict[str, Any]:
    span: dict[str, Any] = {
        "traceId": record["trace_id"],
        "spanId": record["span_id"],
        "name": record["name"],
        "kind": _KINDS.get(record["kind"], 1),
        "startTimeUnixNano": str(record["start_time_unix_nano"]),
        "endTimeUnixNano": str(record["end_time_unix_nano"]),
        "attributes": _key_values(record["attributes"]),
        "status": {"code": 2} if record["status"]["code"] == "ERROR" else {},
    }
    if record.get("parent_span_id"):
        span["parentSpanId"] = record["parent_span_id"]
    return span


def _otlp_log(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "timeUnixNano": str(record["time_unix_nano"]),
        "observedTimeUnixNano": str(record["observed_time_unix_nano"]),
        "severityNumber": record["severity_number"],
        "severityText": record["severity_text"],
        "body": {"stringValue": record["body"]},
        "attributes": _key_values(record["attributes"]),
        "traceId": record["trace_id"],
        "spanId": record["span_id"],
        "eventName": record["event_name"],
    }


def to_otlp_lines(records: Iterable[dict[str, Any]], batch: int = 200) -> Iterator[str]:
    """The same records as OTLP JSON lines: one export request per signal, service and batch."""
    pending: dict[tuple[str, str], list[dict[str, Any]]] = {}

    def flush(key: tuple[str, str]) -> str:
        signal, service = key
        items = pending.pop(key)
        resource = {"attributes": _key_values(resource_attributes(service))}
        if signal == "span":
            scope = {"scope": {"name": "bench"}, "spans": [_otlp_span(r) for r in items]}
            request = {"resourceSpans": [{"resource": resource, "scopeSpans": [scope]}]}
        else:
            scope = {"scope": {"name": "otel_runctx"}, "logRecords": [_otlp_log(r) for r in items]}
            request = {"resourceLogs": [{"resource": resource, "scopeLogs": [scope]}]}
        return json.dumps(request, separators=(",", ":"))

    for record in records:
        key = (record["signal"], record["resource"]["service.name"])
        pending.setdefault(key, []).append(record)
        if len(pending[key]) >= batch:
            yield flush(key)
    for key in list(pending):
        yield flush(key)
