"""``runctx_jsonl``: append spans and log records to a local JSON Lines file.

The no-collector default behind ``make demo`` and ``otel-runctx report``. Select it with
``OTEL_TRACES_EXPORTER=runctx_jsonl`` and ``OTEL_LOGS_EXPORTER=runctx_jsonl``; both append to
``OTEL_RUNCTX_JSONL_PATH`` (default ``otel-runctx.jsonl`` in the working directory). Each line is
one JSON object with ``"signal": "span"`` or ``"signal": "log"``.

Every exporter writing to the same path in a process shares one writer and its lock, and each
record is written with a single ``write`` on a file opened in append mode, so lines from
threads, from the span and log pipelines, and from several processes never interleave.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping, Sequence
from typing import IO, Any

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import format_span_id, format_trace_id

from otel_runctx.config import get_settings
from otel_runctx.stats import count, report_error

__all__ = ["JsonlLogRecordExporter", "JsonlSpanExporter", "log_to_dict", "span_to_dict"]


class _Writer:
    """One append-mode file shared by every exporter writing to the same path."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        self._users = 0

    def acquire(self) -> None:
        with self._lock:
            self._users += 1

    def write_lines(self, lines: Sequence[str]) -> None:
        if not lines:
            return
        chunk = "".join(line + "\n" for line in lines)
        with self._lock:
            if self._file is None:
                directory = os.path.dirname(self.path)
                if directory:
                    os.makedirs(directory, exist_ok=True)
                self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
            self._file.write(chunk)
            self._file.flush()

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users <= 0 and self._file is not None:
                self._file.close()
                self._file = None


_writers: dict[str, _Writer] = {}
_writers_lock = threading.Lock()


def _writer_for(path: str | None) -> _Writer:
    resolved = os.path.abspath(path or get_settings().jsonl_path)
    with _writers_lock:
        writer = _writers.get(resolved)
        if writer is None:
            writer = _writers[resolved] = _Writer(resolved)
    writer.acquire()
    return writer


class JsonlSpanExporter(SpanExporter):
    """Writes each finished span as one JSON line. Built with no arguments by the SDK."""

    def __init__(self, path: str | None = None) -> None:
        self._writer = _writer_for(path)
        self._shut_down = False

    @property
    def path(self) -> str:
        """The absolute path of the file this exporter appends to."""
        return self._writer.path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shut_down:
            return SpanExportResult.FAILURE
        try:
            self._writer.write_lines([_dumps(span_to_dict(span)) for span in spans])
            count("jsonl.spans_written", len(spans))
            return SpanExportResult.SUCCESS
        except Exception as error:
            report_error("jsonl.export_spans", error)
            return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        if not self._shut_down:
            self._shut_down = True
            self._writer.release()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Every export is flushed before it returns."""
        return True


class JsonlLogRecordExporter(LogRecordExporter):
    """Writes each log record (outcome events included) as one JSON line."""

    def __init__(self, path: str | None = None) -> None:
        self._writer = _writer_for(path)
        self._shut_down = False

    @property
    def path(self) -> str:
        """The absolute path of the file this exporter appends to."""
        return self._writer.path

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        if self._shut_down:
            return LogRecordExportResult.FAILURE
        try:
            self._writer.write_lines([_dumps(log_to_dict(record)) for record in batch])
            count("jsonl.logs_written", len(batch))
            return LogRecordExportResult.SUCCESS
        except Exception as error:
            report_error("jsonl.export_logs", error)
            return LogRecordExportResult.FAILURE

    def shutdown(self) -> None:
        if not self._shut_down:
            self._shut_down = True
            self._writer.release()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Every export is flushed before it returns."""
        return True


def span_to_dict(span: ReadableSpan) -> dict[str, Any]:
    """The JSON-ready form of one span."""
    context = span.get_span_context()
    start, end = span.start_time, span.end_time
    return {
        "signal": "span",
        "name": span.name,
        "trace_id": format_trace_id(context.trace_id) if context else None,
        "span_id": format_span_id(context.span_id) if context else None,
        "parent_span_id": format_span_id(span.parent.span_id) if span.parent else None,
        "kind": span.kind.name,
        "start_time_unix_nano": start,
        "end_time_unix_nano": end,
        "duration_ms": (end - start) / 1e6 if start is not None and end is not None else None,
        "status": {"code": span.status.status_code.name, "description": span.status.description},
        "attributes": _plain(span.attributes),
        "events": [
            {"name": e.name, "time_unix_nano": e.timestamp, "attributes": _plain(e.attributes)}
            for e in span.events
        ],
        "resource": _resource(span.resource),
        "scope": span.instrumentation_scope.name if span.instrumentation_scope else None,
    }


def log_to_dict(readable: ReadableLogRecord) -> dict[str, Any]:
    """The JSON-ready form of one log record (an event when ``event_name`` is set)."""
    record = readable.log_record
    return {
        "signal": "log",
        "event_name": record.event_name or None,
        "body": record.body,
        "severity_text": record.severity_text,
        "severity_number": record.severity_number.value if record.severity_number else None,
        "time_unix_nano": record.timestamp,
        "observed_time_unix_nano": record.observed_timestamp,
        "trace_id": format_trace_id(record.trace_id) if record.trace_id else None,
        "span_id": format_span_id(record.span_id) if record.span_id else None,
        "attributes": _plain(record.attributes),
        "resource": _resource(readable.resource),
        "scope": readable.instrumentation_scope.name if readable.instrumentation_scope else None,
    }


def _plain(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    return {key: list(v) if isinstance(v, tuple) else v for key, v in (attributes or {}).items()}


def _resource(resource: Resource | None) -> dict[str, Any]:
    return _plain(resource.attributes) if resource is not None else {}


def _dumps(record: Mapping[str, Any]) -> str:
    return json.dumps(record, default=_fallback, separators=(",", ":"), ensure_ascii=False)


def _fallback(value: object) -> object:
    if isinstance(value, bytes):
        return value.hex()
    return str(value)
