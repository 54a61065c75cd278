"""``runctx_jsonl``: append spans and log records to a local JSON Lines file.

The no-collector default behind ``make demo`` and ``otel-runctx report``. Select it with
``OTEL_TRACES_EXPORTER=runctx_jsonl`` and ``OTEL_LOGS_EXPORTER=runctx_jsonl``; both append to
``OTEL_RUNCTX_JSONL_PATH`` (default ``otel-runctx.jsonl`` in the working directory). Each line is
one JSON object with ``"signal": "span"`` or ``"signal": "log"``.

Every exporter writing to the same path in a process shares one writer and its lock, and each
batch is appended with one ``os.write`` on a file opened with ``O_APPEND``, so lines from
threads and from the span and log pipelines never interleave, and batches from several
processes land whole at the end of the file (on a local file system).
"""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import format_span_id, format_trace_id

from otel_runctx.settings import ENV_JSONL_PATH, get_settings
from otel_runctx.stats import count, report_error

__all__ = ["JsonlLogRecordExporter", "JsonlSpanExporter", "log_to_dict", "span_to_dict"]


class _Writer:
    """One append-mode file shared by every exporter writing to the same path."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._users = 0

    def acquire(self) -> None:
        with self._lock:
            self._users += 1

    def write_lines(self, lines: Sequence[str]) -> None:
        if not lines:
            return
        chunk = memoryview("".join(line + "\n" for line in lines).encode("utf-8"))
        with self._lock:
            if self._fd is None:
                directory = os.path.dirname(self.path)
                if directory:
                    os.makedirs(directory, exist_ok=True)
                self._fd = _open_regular(self.path)
            while chunk:
                chunk = chunk[os.write(self._fd, chunk) :]

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users <= 0 and self._fd is not None:
                os.close(self._fd)
                self._fd = None


def _open_regular(path: str) -> int:
    """Open ``path`` for appending, refusing anything but a regular file.

    ``O_NONBLOCK``: opening a FIFO for writing would otherwise block until a reader comes,
    which hangs the exporter's thread and, at exit, the process. A directory, a device such as
    ``/dev/full`` or a FIFO raise ``OSError`` with a message naming the path.
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK, 0o644)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise OSError(f"{path} is not a regular file; set {ENV_JSONL_PATH} to a file path")
    os.set_blocking(fd, True)
    return fd


def check_jsonl_path(path: str) -> None:
    """Say on stderr, at startup, when ``path`` cannot be a JSONL file (FIFO, directory,
    device, unwritable directory); the exporter then counts its failed writes."""
    try:
        mode = os.stat(path).st_mode
        problem = None if stat.S_ISREG(mode) else "is not a regular file"
        if problem is None and not os.access(path, os.W_OK):
            problem = "is not writable"
    except FileNotFoundError:
        directory = os.path.dirname(path) or "."
        problem = None
        if os.path.isdir(directory) and not os.access(directory, os.W_OK | os.X_OK):
            problem = "cannot be created (its directory is not writable)"
    except OSError as error:
        problem = f"cannot be examined ({error})"
    if problem is not None:
        report_error(
            "jsonl.path",
            message=f"{path} {problem}: nothing will be written there; set {ENV_JSONL_PATH} "
            "to a writable file path",
        )


_writers: dict[str, _Writer] = {}
_writers_lock = threading.Lock()


def _writer_for(path: str | None) -> _Writer:
    resolved = os.path.abspath(path or get_settings().jsonl_path)
    with _writers_lock:
        writer = _writers.get(resolved)
        if writer is None:
            writer = _writers[resolved] = _Writer(resolved)
            check_jsonl_path(resolved)
    writer.acquire()
    return writer


class _JsonlFile:
    """What both exporters share: the path's writer, one-batch-one-write, never raising."""

    def __init__(self, path: str | None) -> None:
        self._writer = _writer_for(path)
        self._shut_down = False

    @property
    def path(self) -> str:
        """The absolute path of the file this exporter appends to."""
        return self._writer.path

    def _append(self, records: list[dict[str, Any]], signal: str) -> bool:
        """Write ``records`` as one batch; count them, or report the failure. True on success."""
        if self._shut_down:
            return False
        try:
            self._writer.write_lines([_dumps(record) for record in records])
        except Exception as error:
            report_error(f"jsonl.export_{signal}", error)
            return False
        count(f"jsonl.{signal}_written", len(records))
        return True

    def shutdown(self) -> None:
        if not self._shut_down:
            self._shut_down = True
            self._writer.release()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Every export is written before it returns."""
        return True


class JsonlSpanExporter(_JsonlFile, SpanExporter):
    """Writes each finished span as one JSON line. Built with no arguments by the SDK."""

    def __init__(self, path: str | None = None) -> None:
        super().__init__(path)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            records = [span_to_dict(span) for span in spans]
        except Exception as error:
            report_error("jsonl.export_spans", error)
            return SpanExportResult.FAILURE
        ok = self._append(records, "spans")
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE


class JsonlLogRecordExporter(_JsonlFile, LogRecordExporter):
    """Writes each log record (outcome events included) as one JSON line."""

    def __init__(self, path: str | None = None) -> None:
        super().__init__(path)

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        try:
            records = [log_to_dict(record) for record in batch]
        except Exception as error:
            report_error("jsonl.export_logs", error)
            return LogRecordExportResult.FAILURE
        ok = self._append(records, "logs")
        return LogRecordExportResult.SUCCESS if ok else LogRecordExportResult.FAILURE


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
