"""What ``otel-runctx report`` reads: files, globs and two line formats, as one SQL source.

Two formats are read, each file in place by DuckDB (gzip by the ``.gz`` suffix), line by line:

- ``runctx_jsonl``: one span or log record per line (``"signal": "span" | "log"``), as our
  exporters write it;
- OTLP JSON lines: one export request per line (``resourceSpans`` or ``resourceLogs``), the
  protobuf JSON mapping that the collector's ``file`` exporter writes (ids in hex, 64-bit integers
  as strings, enums as numbers).

Which one a file holds is decided from its first line. Both become rows of one shape (see
``RECORD_COLUMNS``), so everything after this module is written once. Only the attributes the
report needs are declared to the JSON reader; the rest of each line is skipped, never built.
"""

from __future__ import annotations

import glob
import gzip
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

__all__ = ["RECORD_COLUMNS", "Sources", "find_sources", "records_sql"]

#: The normalized record: (column, DuckDB type, attribute key or None).
_ATTRIBUTES: tuple[tuple[str, str, str], ...] = (
    ("run_id", "VARCHAR", "runctx.run_id"),
    ("event_id", "VARCHAR", "runctx.event_id"),
    ("customer_id", "VARCHAR", "runctx.customer_id"),
    ("tenant_id", "VARCHAR", "runctx.tenant_id"),
    ("workflow", "VARCHAR", "runctx.workflow"),
    ("parent_run_id", "VARCHAR", "runctx.parent_run_id"),
    ("root_run_id", "VARCHAR", "runctx.root_run_id"),
    ("retry_of_run_id", "VARCHAR", "runctx.retry_of_run_id"),
    ("attempt", "BIGINT", "runctx.attempt"),
    ("in_tokens", "BIGINT", "gen_ai.usage.input_tokens"),
    ("out_tokens", "BIGINT", "gen_ai.usage.output_tokens"),
    ("u_in", "BIGINT", "runctx.usage.input_tokens"),
    ("u_out", "BIGINT", "runctx.usage.output_tokens"),
    ("u_cost", "DOUBLE", "runctx.usage.cost"),
    ("u_unpriced", "VARCHAR[]", "runctx.usage.cost_unpriced_models"),
    ("u_complete", "BOOLEAN", "runctx.usage.complete"),
    ("p", "DOUBLE", "runctx.sample.probability"),
    ("o_status", "VARCHAR", "runctx.outcome.status"),
    ("o_duration_ms", "DOUBLE", "runctx.outcome.duration_ms"),
)
#: Every column of the normalized record, in order.
RECORD_COLUMNS = (
    "kind",  # 'span', 'log', 'metric' (skipped), or NULL for a line that is not a record
    *(name for name, _, _ in _ATTRIBUTES),
    "service",
    "span_id",
    "start_ns",
    "end_ns",
    "time_ns",
    "is_error",
)
_SNIFF_BYTES = 4096
#: Longest line read: one record of ours, or one whole export request in OTLP JSON (a line
#: longer than this is counted as unparsable). The reader buffers about twice this per thread.
_MAX_RECORD = 16 * 2**20
_MAX_REQUEST = 64 * 2**20


@dataclass
class Sources:
    """The files to read, by format, and the patterns that matched nothing."""

    jsonl: list[str] = field(default_factory=list)
    otlp: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)

    @property
    def files(self) -> list[str]:
        return [*self.jsonl, *self.otlp]


def find_sources(patterns: Iterable[str]) -> Sources:
    """Expand globs (``**`` too), and sort each file into its format by its first line."""
    sources = Sources()
    seen: set[str] = set()
    for pattern in patterns:
        matches = sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else []
        if not matches and os.path.isfile(pattern):
            matches = [pattern]
        files = [m for m in matches if os.path.isfile(m)]
        if not files:
            sources.unmatched.append(pattern)
        for path in files:
            resolved = os.path.abspath(path)
            if resolved not in seen:
                seen.add(resolved)
                (sources.otlp if _is_otlp(resolved) else sources.jsonl).append(resolved)
    return sources


def _is_otlp(path: str) -> bool:
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            head = handle.read(_SNIFF_BYTES)
    except (OSError, EOFError):
        return False  # the engine will say what is wrong with it

    first = head.lstrip().split(b"\n", 1)[0]
    return any(
        key in first for key in (b'"resourceSpans"', b'"resourceLogs"', b'"resourceMetrics"')
    )


def records_sql(sources: Sources) -> str:
    """One SELECT yielding ``RECORD_COLUMNS`` rows from every file (UNION ALL of the formats)."""
    parts = []
    if sources.jsonl:
        parts.append(_jsonl_sql(sources.jsonl))
    if sources.otlp:
        parts.extend(_otlp_sql(sources.otlp))
    if not parts:
        nulls = ", ".join(f"NULL AS {name}" for name in RECORD_COLUMNS)
        return f"SELECT {nulls} WHERE false"
    return "\nUNION ALL\n".join(parts)


def _files(paths: Sequence[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def _struct(fields: Iterable[tuple[str, str]]) -> str:
    return "STRUCT(" + ", ".join(f'"{name}" {kind}' for name, kind in fields) + ")"


def _read_json(paths: Sequence[str], columns: dict[str, str], max_line: int) -> str:
    declared = ", ".join(f"'{name}': '{kind}'" for name, kind in columns.items())
    return (
        f"read_json({_files(paths)}, columns={{{declared}}}, format='newline_delimited', "
        f"ignore_errors=true, maximum_object_size={max_line})"
    )


def _jsonl_sql(paths: Sequence[str]) -> str:
    attributes = _struct((key, kind) for _, kind, key in _ATTRIBUTES)
    columns = {
        "signal": "VARCHAR",
        "span_id": "VARCHAR",
        "start_time_unix_nano": "BIGINT",
        "end_time_unix_nano": "BIGINT",
        "time_unix_nano": "BIGINT",
        "status": "STRUCT(code VARCHAR)",
        "attributes": attributes.replace("'", "''"),
        "resource": _struct([("service.name", "VARCHAR")]).replace("'", "''"),
    }
    picked = ", ".join(
        f"struct_extract(attributes, '{key}') AS {name}" for name, _, key in _ATTRIBUTES
    )
    return (
        # Metric lines (OTEL_RUNCTX_LOCAL writes them too) are valid input the report skips.
        "SELECT CASE WHEN signal IN ('span', 'log', 'metric') THEN signal END AS kind, "
        f"{picked}, struct_extract(resource, 'service.name') AS service, span_id, "
        "start_time_unix_nano AS start_ns, end_time_unix_nano AS end_ns, "
        "time_unix_nano AS time_ns, status.code = 'ERROR' AS is_error "
        f"FROM {_read_json(paths, columns, _MAX_RECORD)}"
    )


# OTLP JSON: attributes are [{key, value: {stringValue | intValue | doubleValue | ...}}].
_VALUE = (
    "STRUCT(stringValue VARCHAR, intValue VARCHAR, doubleValue VARCHAR, boolValue BOOLEAN, "
    'arrayValue STRUCT("values" STRUCT(stringValue VARCHAR)[]))'
)
_KEYVALUES = f"STRUCT(key VARCHAR, value {_VALUE})[]"


def _attribute(source: str, key: str, kind: str) -> str:
    value = f"list_filter({source}, lambda a: a.key = '{key}')[1].value"
    if kind == "VARCHAR":
        return f"{value}.stringValue"
    if kind == "BIGINT":
        return f"TRY_CAST(coalesce({value}.intValue, {value}.doubleValue) AS DOUBLE)::BIGINT"
    if kind == "DOUBLE":
        return f"TRY_CAST(coalesce({value}.doubleValue, {value}.intValue) AS DOUBLE)"
    if kind == "BOOLEAN":
        return f"{value}.boolValue"
    return f'list_transform({value}.arrayValue."values", lambda v: v.stringValue)'


def _otlp_sql(paths: Sequence[str]) -> list[str]:
    resource = f"STRUCT(attributes {_KEYVALUES})"
    span = (
        f"STRUCT(spanId VARCHAR, startTimeUnixNano VARCHAR, endTimeUnixNano VARCHAR, "
        f"status STRUCT(code VARCHAR), attributes {_KEYVALUES})"
    )
    log = f"STRUCT(timeUnixNano VARCHAR, observedTimeUnixNano VARCHAR, attributes {_KEYVALUES})"
    columns = {
        "resourceSpans": f"STRUCT(resource {resource}, scopeSpans STRUCT(spans {span}[])[])[]",
        "resourceLogs": f"STRUCT(resource {resource}, scopeLogs STRUCT(logRecords {log}[])[])[]",
        # Metrics lines are valid input the report has no use for (not "unparsable").
        "resourceMetrics": "JSON",
    }
    source = _read_json(paths, columns, _MAX_REQUEST)
    lines = f"SELECT resourceSpans, resourceLogs, resourceMetrics FROM {source}"
    service = _attribute("res.attributes", "service.name", "VARCHAR")

    def picked(item: str) -> str:
        return ", ".join(
            f"{_attribute(item + '.attributes', key, kind)} AS {name}"
            for name, kind, key in _ATTRIBUTES
        )

    # A status code is a number in the JSON mapping (2 = ERROR); some writers use the name.
    spans = (
        f"WITH l AS ({lines}), r AS (SELECT unnest(resourceSpans) AS r FROM l), "
        "s AS (SELECT r.resource AS res, unnest(r.scopeSpans) AS s FROM r), "
        "x AS (SELECT res, unnest(s.spans) AS x FROM s) "
        f"SELECT 'span' AS kind, {picked('x')}, {service} AS service, x.spanId AS span_id, "
        "TRY_CAST(x.startTimeUnixNano AS BIGINT) AS start_ns, "
        "TRY_CAST(x.endTimeUnixNano AS BIGINT) AS end_ns, NULL::BIGINT AS time_ns, "
        "x.status.code IN ('2', 'STATUS_CODE_ERROR') AS is_error FROM x"
    )
    logs = (
        f"WITH l AS ({lines}), r AS (SELECT unnest(resourceLogs) AS r FROM l), "
        "s AS (SELECT r.resource AS res, unnest(r.scopeLogs) AS s FROM r), "
        "x AS (SELECT res, unnest(s.logRecords) AS x FROM s) "
        f"SELECT 'log' AS kind, {picked('x')}, {service} AS service, NULL AS span_id, "
        "NULL::BIGINT AS start_ns, NULL::BIGINT AS end_ns, "
        "TRY_CAST(coalesce(nullif(x.timeUnixNano, '0'), x.observedTimeUnixNano) AS BIGINT) "
        "AS time_ns, NULL::BOOLEAN AS is_error FROM x"
    )
    # Lines that are neither (not JSON, or JSON of another shape) count as unparsable.
    other = (
        f"SELECT NULL AS kind, {', '.join('NULL' for _ in _ATTRIBUTES)}, NULL, NULL, "
        f"NULL, NULL, NULL, NULL FROM ({lines}) "
        "WHERE resourceSpans IS NULL AND resourceLogs IS NULL AND resourceMetrics IS NULL"
    )
    return [f"SELECT * FROM ({q})" for q in (spans, logs, other)]
