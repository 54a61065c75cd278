"""End-to-end test harness: a real collector (rotel), an OTLP sink, redis and child apps.

The data path under test is ``app -> OTLP -> rotel -> OTLP/HTTP -> Sink``. The sink is an
in-process HTTP server that decodes what rotel forwards into plain dicts, so a test can say
"the span named X arrived with attribute Y" without knowing protobuf.

rotel acknowledges a request *before* it exports it, so a test never learns from its own
send that data reached the sink: always poll with ``Sink.wait_for_*`` or ``wait_for``.

This module must not import ``otel_runctx``: it tests that package from the outside.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any, TypedDict, TypeVar

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

LOOPBACK = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[2]
ROTEL_ARGS_FILE = REPO_ROOT / "collector-config" / "rotel" / "e2e.args"
DEFAULT_TIMEOUT = 10.0
_POLL_INTERVAL = 0.02
_BIND_CLASH = "Address already in use"
_START_ATTEMPTS = 4

T = TypeVar("T")


class HarnessError(RuntimeError):
    """The harness itself could not do its job (missing binary, bad config, crash)."""


class HarnessTimeout(AssertionError):
    """A condition a test waited for did not happen in time (reported as a test failure)."""


# --------------------------------------------------------------------------- ports & waiting


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """Return ``count`` distinct ports that were free on ``host`` a moment ago.

    All sockets stay open until every port is picked, so the kernel cannot hand out the same
    port twice. Another process may still take one before we bind: callers retry on a clash.
    """
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port(host: str = LOOPBACK) -> int:
    """Return one port that was free on ``host`` a moment ago (see ``free_ports``)."""
    return free_ports(1, host)[0]


def port_is_open(port: int, host: str = LOOPBACK) -> bool:
    """Tell whether something accepts TCP connections on ``host:port`` right now."""
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_for(
    predicate: Callable[[], T],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = _POLL_INTERVAL,
    message: str | Callable[[], str] = "condition",
) -> T:
    """Call ``predicate`` until it returns something truthy and return that value.

    ``message`` (a string or a callable evaluated only on failure) describes what was awaited;
    on timeout a ``HarnessTimeout`` carrying it is raised.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise HarnessTimeout(f"timed out after {timeout:g}s waiting for {text}")
        time.sleep(interval)


def wait_for_port(port: int, *, host: str = LOOPBACK, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Wait until ``host:port`` accepts TCP connections."""
    wait_for(lambda: port_is_open(port, host), timeout=timeout, message=f"{host}:{port} to accept")


def _tail(path: Path, lines: int = 40) -> str:
    """Return the last ``lines`` lines of a log file (empty if it does not exist yet)."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Send ``sig`` to the process group we started ``proc`` in (ignore if already gone)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def _terminate(proc: subprocess.Popen[bytes], timeout: float) -> int:
    """SIGTERM ``proc``'s group, wait up to ``timeout``, then SIGKILL; return the exit code.

    Signals go out only while the child is not yet reaped: until then its pid, and so its
    group id, cannot belong to anyone else.
    """
    if proc.returncode is None:
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait()
    assert proc.returncode is not None
    return proc.returncode


def _spawn(
    argv: Sequence[str], *, env: Mapping[str, str], cwd: Path | None, log: IO[bytes]
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own process group with stdout and stderr going to ``log``.

    Its own group lets teardown kill the child *and* anything it forked, by the child's id.
    """
    return subprocess.Popen(
        list(argv),
        env=dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


# --------------------------------------------------------------------------- OTLP decoding


class SinkSpan(TypedDict):
    """A span as the sink stores it. Ids are lowercase hex; ``parent_span_id`` None at roots."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    kind: str  # "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER" (= SpanKind.X.name)
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope: dict[str, Any]  # {"name", "version", "attributes"}
    status_code: str  # "UNSET", "OK", "ERROR" (= StatusCode.X.name)
    status_message: str
    events: list[dict[str, Any]]  # [{"name", "attributes", "time_unix_nano"}]
    start_time_unix_nano: int
    end_time_unix_nano: int


class SinkLog(TypedDict):
    """A log record (an event when ``event_name`` is set) as the sink stores it."""

    event_name: str | None
    body: Any
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope: dict[str, Any]
    severity_text: str
    severity_number: int
    trace_id: str | None
    span_id: str | None
    time_unix_nano: int


class SinkMetric(TypedDict):
    """One metric of one export as the sink stores it; the same name recurs per export."""

    name: str
    description: str
    unit: str
    type: str  # "gauge", "sum", "histogram", "exponential_histogram", "summary"
    resource: dict[str, Any]
    scope: dict[str, Any]
    data_points: list[dict[str, Any]]  # each has "attributes" and "time_unix_nano" + values


def any_value_to_python(value: AnyValue) -> Any:
    """Turn an OTLP ``AnyValue`` into str/int/float/bool/bytes/list/dict (None when empty)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value_to_python(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return attributes_to_dict(value.kvlist_value.values)
    return getattr(value, kind)


def attributes_to_dict(attributes: Iterable[KeyValue]) -> dict[str, Any]:
    """Turn OTLP key/value pairs into a plain dict (lists stay lists, not tuples)."""
    return {item.key: any_value_to_python(item.value) for item in attributes}


def _hex_id(raw: bytes) -> str | None:
    """Render a trace or span id as lowercase hex, or None when it is absent (all empty)."""
    return raw.hex() if raw else None


def _scope_to_dict(scope: InstrumentationScope) -> dict[str, Any]:
    """Describe an instrumentation scope as ``{"name", "version", "attributes"}``."""
    return {
        "name": scope.name,
        "version": scope.version,
        "attributes": attributes_to_dict(scope.attributes),
    }


def span_to_dict(span: Span, resource: Resource, scope: InstrumentationScope) -> SinkSpan:
    """Flatten one OTLP span with its resource and scope into a ``SinkSpan``."""
    return SinkSpan(
        name=span.name,
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=_hex_id(span.parent_span_id),
        kind=Span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
        attributes=attributes_to_dict(span.attributes),
        resource=attributes_to_dict(resource.attributes),
        scope=_scope_to_dict(scope),
        status_code=Status.StatusCode.Name(span.status.code).removeprefix("STATUS_CODE_"),
        status_message=span.status.message,
        events=[
            {
                "name": event.name,
                "attributes": attributes_to_dict(event.attributes),
                "time_unix_nano": event.time_unix_nano,
            }
            for event in span.events
        ],
        start_time_unix_nano=span.start_time_unix_nano,
        end_time_unix_nano=span.end_time_unix_nano,
    )


def log_to_dict(record: LogRecord, resource: Resource, scope: InstrumentationScope) -> SinkLog:
    """Flatten one OTLP log record with its resource and scope into a ``SinkLog``."""
    return SinkLog(
        event_name=record.event_name or None,
        body=any_value_to_python(record.body),
        attributes=attributes_to_dict(record.attributes),
        resource=attributes_to_dict(resource.attributes),
        scope=_scope_to_dict(scope),
        severity_text=record.severity_text,
        severity_number=record.severity_number,
        trace_id=_hex_id(record.trace_id),
        span_id=_hex_id(record.span_id),
        time_unix_nano=record.time_unix_nano,
    )


def _number_point(point: Any) -> dict[str, Any]:
    """Values of a gauge or sum data point: ``{"value": int | float}``."""
    field = point.WhichOneof("value")
    return {"value": getattr(point, field) if field else None}


def _histogram_point(point: Any) -> dict[str, Any]:
    """Values of an explicit-bucket histogram data point."""
    return {
        "count": point.count,
        "sum": point.sum,
        "min": point.min if point.HasField("min") else None,
        "max": point.max if point.HasField("max") else None,
        "bucket_counts": list(point.bucket_counts),
        "explicit_bounds": list(point.explicit_bounds),
    }


def _exponential_point(point: Any) -> dict[str, Any]:
    """Values of an exponential histogram data point (buckets left out: tests use totals)."""
    return {"count": point.count, "sum": point.sum, "scale": point.scale}


def _summary_point(point: Any) -> dict[str, Any]:
    """Values of a summary data point."""
    quantiles = {q.quantile: q.value for q in point.quantile_values}
    return {"count": point.count, "sum": point.sum, "quantiles": quantiles}


_POINT_DECODERS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "gauge": _number_point,
    "sum": _number_point,
    "histogram": _histogram_point,
    "exponential_histogram": _exponential_point,
    "summary": _summary_point,
}


def metric_to_dict(metric: Metric, resource: Resource, scope: InstrumentationScope) -> SinkMetric:
    """Flatten one OTLP metric with its resource and scope into a ``SinkMetric``."""
    kind = metric.WhichOneof("data") or "empty"
    decode = _POINT_DECODERS.get(kind)
    points = getattr(metric, kind).data_points if decode else []
    return SinkMetric(
        name=metric.name,
        description=metric.description,
        unit=metric.unit,
        type=kind,
        resource=attributes_to_dict(resource.attributes),
        scope=_scope_to_dict(scope),
        data_points=[
            {
                "attributes": attributes_to_dict(point.attributes),
                "time_unix_nano": point.time_unix_nano,
                **(decode(point) if decode else {}),
            }
            for point in points
        ],
    )


def _decode_traces(request: ExportTraceServiceRequest) -> list[SinkSpan]:
    """All spans of one trace export request."""
    return [
        span_to_dict(span, rs.resource, ss.scope)
        for rs in request.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    ]


def _decode_logs(request: ExportLogsServiceRequest) -> list[SinkLog]:
    """All log records of one logs export request."""
    return [
        log_to_dict(record, rl.resource, sl.scope)
        for rl in request.resource_logs
        for sl in rl.scope_logs
        for record in sl.log_records
    ]


def _decode_metrics(request: ExportMetricsServiceRequest) -> list[SinkMetric]:
    """All metrics of one metrics export request."""
    return [
        metric_to_dict(metric, rm.resource, sm.scope)
        for rm in request.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
    ]


@dataclass(frozen=True)
class _Route:
    """How the sink handles one OTLP/HTTP path."""

    signal: str
    request_type: type[Message]
    response_type: type[Message]
    decode: Callable[[Any], list[Any]]


_ROUTES: dict[str, _Route] = {
    "/v1/traces": _Route(
        "traces", ExportTraceServiceRequest, ExportTraceServiceResponse, _decode_traces
    ),
    "/v1/logs": _Route("logs", ExportLogsServiceRequest, ExportLogsServiceResponse, _decode_logs),
    "/v1/metrics": _Route(
        "metrics", ExportMetricsServiceRequest, ExportMetricsServiceResponse, _decode_metrics
    ),
}


def has_attributes(item: Mapping[str, Any], expected: Mapping[str, Any]) -> bool:
    """Tell whether ``item["attributes"]`` contains every key of ``expected`` with that value."""
    attributes = item["attributes"]
    return all(key in attributes and attributes[key] == value for key, value in expected.items())


# --------------------------------------------------------------------------- the sink


@dataclass(frozen=True)
class SinkRequest:
    """One POST the sink answered: which path, how it was encoded, how big it was on the wire."""

    path: str
    content_type: str
    content_encoding: str
    size: int
    status: int


_ID_FIELDS = frozenset({"traceId", "spanId", "parentSpanId"})


def otlp_json_line(request: Message) -> str:
    """One export request as the collector's ``file`` exporter writes it, without a newline.

    That is the OTLP JSON mapping: camelCase names, 64-bit integers as strings, enums as
    numbers, and (unlike protobuf's own JSON mapping, which uses base64) ids in hex.
    """
    return json.dumps(_hex_ids(MessageToDict(request, use_integers_for_enums=True)))


def _hex_ids(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: base64.b64decode(value).hex()
            if key in _ID_FIELDS and isinstance(value, str)
            else _hex_ids(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_hex_ids(item) for item in node]
    return node


def _decompress(body: bytes, encoding: str) -> bytes:
    """Undo ``Content-Encoding`` (rotel's OTLP/HTTP exporter gzips by default)."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    raise ValueError(f"unsupported Content-Encoding {encoding!r}")


class _SinkHandler(BaseHTTPRequestHandler):
    """Answers OTLP/HTTP protobuf exports and hands decoded items to the owning Sink."""

    protocol_version = "HTTP/1.1"  # keep-alive, as exporters expect
    server: _SinkServer

    def do_POST(self) -> None:
        """Decode one export request, store its items, answer an empty Export*Response."""
        route = _ROUTES.get(self.path.split("?", 1)[0])
        body = self._read_body()
        status, payload = self._handle(route, body)
        self.server.sink._record_request(self._describe(len(body), status))
        self._reply(status, payload)

    def _handle(self, route: _Route | None, body: bytes) -> tuple[int, bytes]:
        """Return the HTTP status and response body for one request."""
        if route is None:
            return 404, b""
        content_type = self.headers.get("Content-Type", "application/x-protobuf")
        if "protobuf" not in content_type:
            self.server.sink._record_error(f"{self.path}: unsupported Content-Type {content_type}")
            return 415, b""
        try:
            raw = _decompress(body, self.headers.get("Content-Encoding", ""))
            request = route.request_type.FromString(raw)
        except (OSError, ValueError, zlib.error, DecodeError) as exc:
            self.server.sink._record_error(f"{self.path}: cannot decode body: {exc!r}")
            return 400, b""
        self.server.sink._write_json_line(request)
        self.server.sink._store(route.signal, route.decode(request))
        return 200, route.response_type().SerializeToString()

    def _read_body(self) -> bytes:
        """Read the request body, whether sized by Content-Length or sent chunked."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def _read_chunked(self) -> bytes:
        """Read a ``Transfer-Encoding: chunked`` body to its end."""
        chunks = []
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # skip trailers
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _describe(self, size: int, status: int) -> SinkRequest:
        """Summarise this request for ``Sink.requests()``."""
        return SinkRequest(
            path=self.path,
            content_type=self.headers.get("Content-Type", ""),
            content_encoding=self.headers.get("Content-Encoding", ""),
            size=size,
            status=status,
        )

    def _reply(self, status: int, payload: bytes) -> None:
        """Send a protobuf response with an explicit length (required for keep-alive)."""
        self.send_response(status)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: the sink's ``requests()`` is the access log."""


class _SinkServer(ThreadingHTTPServer):
    """A threaded HTTP server that knows the Sink it feeds."""

    daemon_threads = True  # idle keep-alive connections must not block shutdown

    def __init__(self, address: tuple[str, int], sink: Sink) -> None:
        super().__init__(address, _SinkHandler)
        self.sink = sink


class Sink:
    """An OTLP/HTTP receiver on a loopback port that keeps what it receives as plain dicts.

    Point a collector's OTLP/HTTP exporter at ``endpoint``. Every accessor returns copies and is
    safe to call from any thread while exports keep arriving. With ``json_lines`` it also
    appends every request it accepts to that file as OTLP JSON, one request per line, as the
    collector's ``file`` exporter does.
    """

    def __init__(self, host: str = LOOPBACK, *, json_lines: Path | None = None) -> None:
        self._host = host
        self._json_lines = json_lines
        self._lock = threading.Lock()
        self._items: dict[str, list[Any]] = {"traces": [], "logs": [], "metrics": []}
        self._requests: list[SinkRequest] = []
        self._errors: list[str] = []
        self._server: _SinkServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Sink:
        """Bind a free loopback port and serve in a background thread."""
        if self._server is not None:
            raise HarnessError("sink already started")
        self._server = _SinkServer((self._host, 0), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # shutdown() waits up to one poll interval
            name="otlp-sink",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port (stored items stay readable)."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> Sink:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port the sink listens on."""
        if self._server is None:
            raise HarnessError("sink not started")
        return self._server.server_address[1]

    @property
    def endpoint(self) -> str:
        """Base URL for an OTLP/HTTP exporter, e.g. ``http://127.0.0.1:4318``."""
        return f"http://{self._host}:{self.port}"

    def _write_json_line(self, request: Message) -> None:
        """Append one request to the ``json_lines`` file (when the sink has one)."""
        if self._json_lines is None:
            return
        line = otlp_json_line(request) + "\n"
        with self._lock, self._json_lines.open("a", encoding="utf-8") as handle:
            handle.write(line)

    def _store(self, signal_name: str, items: list[Any]) -> None:
        """Append decoded items of one signal."""
        with self._lock:
            self._items[signal_name].extend(items)

    def _record_request(self, request: SinkRequest) -> None:
        """Remember one answered request."""
        with self._lock:
            self._requests.append(request)

    def _record_error(self, error: str) -> None:
        """Remember a request the sink could not decode (tests can assert there are none)."""
        with self._lock:
            self._errors.append(error)

    def _snapshot(self, signal_name: str) -> list[Any]:
        """Copy the items of one signal under the lock."""
        with self._lock:
            return list(self._items[signal_name])

    def spans(self, name: str | None = None) -> list[SinkSpan]:
        """Spans received so far, in arrival order, optionally only those named ``name``."""
        return [s for s in self._snapshot("traces") if name is None or s["name"] == name]

    def logs(self, event_name: str | None = None) -> list[SinkLog]:
        """Log records received so far, optionally only events named ``event_name``."""
        items = self._snapshot("logs")
        return [r for r in items if event_name is None or r["event_name"] == event_name]

    def metrics(self, name: str | None = None) -> list[SinkMetric]:
        """Metrics received so far (one entry per metric per export), optionally by name."""
        return [m for m in self._snapshot("metrics") if name is None or m["name"] == name]

    def requests(self) -> list[SinkRequest]:
        """Every POST answered so far."""
        with self._lock:
            return list(self._requests)

    def errors(self) -> list[str]:
        """Requests the sink could not decode; a healthy pipeline leaves this empty."""
        with self._lock:
            return list(self._errors)

    def clear(self) -> None:
        """Forget everything received so far."""
        with self._lock:
            for items in self._items.values():
                items.clear()
            self._requests.clear()
            self._errors.clear()

    def summary(self) -> str:
        """One line naming what arrived, for failure messages."""
        spans = [s["name"] for s in self.spans()]
        events = [r["event_name"] or repr(r["body"]) for r in self.logs()]
        metrics = sorted({m["name"] for m in self.metrics()})
        return f"sink has spans={spans} logs={events} metrics={metrics} errors={self.errors()}"

    def wait_for_spans(
        self,
        predicate: Callable[[SinkSpan], bool] | None = None,
        *,
        name: str | None = None,
        count: int = 1,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> list[SinkSpan]:
        """Wait until at least ``count`` spans match ``name`` and ``predicate``; return them."""

        def matches() -> list[SinkSpan]:
            found = [s for s in self.spans(name) if predicate is None or predicate(s)]
            return found if len(found) >= count else []

        what = f"{count} span(s) named {name!r}" if name else f"{count} matching span(s)"
        return wait_for(matches, timeout=timeout, message=lambda: f"{what}; {self.summary()}")

    def wait_for_span(
        self,
        name: str,
        predicate: Callable[[SinkSpan], bool] | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> SinkSpan:
        """Wait for the first span named ``name`` (and matching ``predicate``) and return it."""
        return self.wait_for_spans(predicate, name=name, timeout=timeout)[0]

    def wait_for_logs(
        self,
        predicate: Callable[[SinkLog], bool] | None = None,
        *,
        event_name: str | None = None,
        count: int = 1,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> list[SinkLog]:
        """Wait until at least ``count`` log records match; return all matches."""

        def matches() -> list[SinkLog]:
            found = [r for r in self.logs(event_name) if predicate is None or predicate(r)]
            return found if len(found) >= count else []

        what = f"{count} event(s) {event_name!r}" if event_name else f"{count} matching log(s)"
        return wait_for(matches, timeout=timeout, message=lambda: f"{what}; {self.summary()}")

    def wait_for_log(
        self,
        event_name: str | None = None,
        predicate: Callable[[SinkLog], bool] | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> SinkLog:
        """Wait for the first log record matching ``event_name`` and ``predicate``; return it."""
        return self.wait_for_logs(predicate, event_name=event_name, timeout=timeout)[0]

    def wait_for_metrics(
        self,
        predicate: Callable[[SinkMetric], bool] | None = None,
        *,
        name: str | None = None,
        count: int = 1,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> list[SinkMetric]:
        """Wait until at least ``count`` metric entries match; return all matches."""

        def matches() -> list[SinkMetric]:
            found = [m for m in self.metrics(name) if predicate is None or predicate(m)]
            return found if len(found) >= count else []

        what = f"{count} metric(s) named {name!r}" if name else f"{count} matching metric(s)"
        return wait_for(matches, timeout=timeout, message=lambda: f"{what}; {self.summary()}")


# --------------------------------------------------------------------------- the collector


def rotel_binary() -> Path:
    """Locate ``rotel-agent`` inside the installed ``rotel`` package (without importing it)."""
    spec = importlib.util.find_spec("rotel")
    if spec is None or not spec.submodule_search_locations:
        raise HarnessError("the rotel package is not installed: pip install rotel")
    binary = Path(next(iter(spec.submodule_search_locations))) / "rotel-agent"
    if not os.access(binary, os.X_OK):
        raise HarnessError(f"rotel-agent missing or not executable at {binary}")
    return binary


def load_rotel_args(path: Path, values: Mapping[str, str]) -> list[str]:
    """Read a rotel flags file and substitute ``${NAME}`` placeholders from ``values``.

    Format: one ``--flag [value]`` per line, ``#`` starts a comment line. A repeated flag is
    rejected here because rotel would exit on it with a less helpful message.
    """
    args: list[str] = []
    seen: set[str] = set()
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        flag, _, value = line.partition(" ")
        where = f"{path}:{number}"
        if not flag.startswith("--"):
            raise HarnessError(f"{where}: expected a --flag, got {line!r}")
        if flag in seen:
            raise HarnessError(f"{where}: {flag} given twice (rotel-agent refuses that)")
        seen.add(flag)
        args.append(flag)
        if value.strip():
            args.append(_substitute(value.strip(), values, where))
    return args


def _substitute(value: str, values: Mapping[str, str], where: str) -> str:
    """Fill ``${NAME}`` placeholders, naming the file and line when one is unknown."""
    try:
        return string.Template(value).substitute(values)
    except (KeyError, ValueError) as exc:
        raise HarnessError(f"{where}: cannot substitute {value!r}: {exc!r}") from exc


def _rotel_env() -> dict[str, str]:
    """The parent environment without ``ROTEL_*`` (rotel reads every flag from env too)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTEL_")}
    env["NO_COLOR"] = "1"  # plain text in the log file instead of ANSI escapes
    return env


class Collector:
    """A real rotel-agent forwarding OTLP (gRPC and HTTP receivers) to a downstream endpoint.

    Ports are picked on the first ``start()`` and kept: ``stop()`` then ``start()`` brings the
    collector back on the same endpoints, as an app that outlives a collector outage expects.
    """

    def __init__(
        self,
        exporter_endpoint: str,
        *,
        log_path: Path,
        args_file: Path = ROTEL_ARGS_FILE,
        binary: Path | None = None,
    ) -> None:
        self.exporter_endpoint = exporter_endpoint
        self.log_path = log_path
        self.args_file = args_file
        self.binary = binary or rotel_binary()
        self.grpc_port: int | None = None
        self.http_port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        """The full rotel command line for the current ports."""
        values = {
            "GRPC_ENDPOINT": f"{LOOPBACK}:{self.grpc_port}",
            "HTTP_ENDPOINT": f"{LOOPBACK}:{self.http_port}",
            "EXPORTER_ENDPOINT": self.exporter_endpoint,
        }
        return [str(self.binary), "start", *load_rotel_args(self.args_file, values)]

    @property
    def is_running(self) -> bool:
        """Whether the rotel process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The rotel process id while one was started."""
        return self._proc.pid if self._proc else None

    def start(self, timeout: float = DEFAULT_TIMEOUT) -> Collector:
        """Start rotel and wait until both receivers accept connections.

        rotel cannot bind port 0, so we pick free ports and retry when another process took
        one in between. A restart reuses the ports it had, retrying briefly if one is busy.
        """
        if self.is_running:
            raise HarnessError("collector already running")
        keep_ports = self.grpc_port is not None
        for _attempt in range(_START_ATTEMPTS):
            if not keep_ports:
                self.grpc_port, self.http_port = free_ports(2)
            if self._try_start(timeout):
                return self
            time.sleep(0.2 if keep_ports else 0)
        raise HarnessError(f"rotel could not bind its ports\n{self.describe()}")

    def _try_start(self, timeout: float) -> bool:
        """Spawn rotel once; True when ready, False on a port clash, raise on other failures."""
        argv = self.argv()
        with self.log_path.open("ab") as log:
            log.write(f"=== harness: {' '.join(argv)}\n".encode())
            log.flush()
            self._proc = _spawn(argv, env=_rotel_env(), cwd=None, log=log)
        if self._await_ready(timeout):
            return True
        if _BIND_CLASH in _tail(self.log_path, 5):
            return False
        raise HarnessError(f"rotel exited with code {self._proc.returncode}\n{self.describe()}")

    def _await_ready(self, timeout: float) -> bool:
        """Poll until both ports accept (True) or rotel exits (False)."""
        assert self._proc is not None and self.grpc_port and self.http_port
        deadline = time.monotonic() + timeout
        while self._proc.poll() is None:
            if port_is_open(self.grpc_port) and port_is_open(self.http_port):
                # A clash exits within milliseconds, and until then the port's other owner
                # answers our probe: a short grace tells the two apart.
                time.sleep(0.05)
                return self._proc.poll() is None
            if time.monotonic() > deadline:
                self.kill()
                raise HarnessError(f"rotel not listening after {timeout:g}s\n{self.describe()}")
            time.sleep(0.01)
        return False

    def stop(self, timeout: float = DEFAULT_TIMEOUT) -> int | None:
        """SIGTERM rotel (it flushes its batches) and wait; SIGKILL after ``timeout``."""
        if self._proc is None:
            return None
        return _terminate(self._proc, timeout)

    def kill(self) -> None:
        """SIGKILL rotel without a flush, as a crash would."""
        if self._proc is not None and self._proc.poll() is None:
            _signal_group(self._proc, signal.SIGKILL)
            self._proc.wait()

    def __enter__(self) -> Collector:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _endpoint(self, port: int | None) -> str:
        """``http://127.0.0.1:port``, once ports were picked by ``start()``."""
        if port is None:
            raise HarnessError("collector has no ports before its first start()")
        return f"http://{LOOPBACK}:{port}"

    @property
    def grpc_endpoint(self) -> str:
        """OTLP/gRPC receiver URL, e.g. ``http://127.0.0.1:4317``."""
        return self._endpoint(self.grpc_port)

    @property
    def http_endpoint(self) -> str:
        """OTLP/HTTP receiver base URL (exporters append ``/v1/<signal>``)."""
        return self._endpoint(self.http_port)

    def otlp_env(self, protocol: str = "grpc") -> dict[str, str]:
        """Standard ``OTEL_EXPORTER_OTLP_*`` variables that point a child app at this collector.

        ``protocol`` is ``"grpc"`` or ``"http/protobuf"``, as in OTEL_EXPORTER_OTLP_PROTOCOL.
        """
        endpoints = {"grpc": self.grpc_endpoint, "http/protobuf": self.http_endpoint}
        if protocol not in endpoints:
            raise ValueError(f"protocol must be one of {sorted(endpoints)}, not {protocol!r}")
        return {
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoints[protocol],
            "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
            "OTEL_EXPORTER_OTLP_INSECURE": "true",
        }

    def log_tail(self, lines: int = 40) -> str:
        """The last lines rotel wrote (stdout and stderr share one file)."""
        return _tail(self.log_path, lines)

    def describe(self) -> str:
        """Command, state and log tail, for failure messages."""
        if self._proc is None:
            state = "never started"
        else:
            state = "running" if self.is_running else f"exit code {self._proc.returncode}"
        return (
            f"rotel grpc={self.grpc_port} http={self.http_port} -> {self.exporter_endpoint} "
            f"({state}); log {self.log_path}:\n{self.log_tail()}"
        )


def fast_export_env() -> dict[str, str]:
    """SDK settings so a short-lived child app exports within ~100 ms instead of seconds."""
    return {
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "OTEL_BLRP_SCHEDULE_DELAY": "50",
        "OTEL_METRIC_EXPORT_INTERVAL": "200",
    }


# --------------------------------------------------------------------------- redis


def find_redis_server() -> Path | None:
    """Path of Debian's ``redis-server`` (``apt-get install redis-server``), or None."""
    found = shutil.which("redis-server") or "/usr/bin/redis-server"
    return Path(found) if os.access(found, os.X_OK) else None


def redis_ping(port: int, host: str = LOOPBACK) -> bool:
    """Send a raw RESP ``PING`` and tell whether ``+PONG`` came back."""
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A throwaway redis-server on a free loopback port with persistence switched off."""

    def __init__(self, binary: Path, *, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.log_path = workdir / "redis.log"
        self.host = LOOPBACK
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Connection URL for clients, e.g. ``redis://127.0.0.1:6379/0``."""
        return f"redis://{self.host}:{self.port}/0"

    def argv(self) -> list[str]:
        """redis-server flags: loopback only, no RDB snapshots, no AOF, files in workdir."""
        return [
            str(self.binary),
            "--port",
            str(self.port),
            "--bind",
            self.host,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            "--daemonize",
            "no",
        ]

    def start(self, timeout: float = DEFAULT_TIMEOUT) -> RedisServer:
        """Start redis and wait for PING; pick another port if the first one was taken."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        for _attempt in range(_START_ATTEMPTS):
            self.port = free_port()
            with self.log_path.open("ab") as log:
                self._proc = _spawn(self.argv(), env=os.environ, cwd=self.workdir, log=log)
            if self._await_ping(timeout):
                return self
            if _BIND_CLASH not in _tail(self.log_path, 10):
                break
        raise HarnessError(f"redis-server did not start\n{self.describe()}")

    def _await_ping(self, timeout: float) -> bool:
        """Poll PING until it answers (True) or the process exits (False)."""
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while self._proc.poll() is None and time.monotonic() < deadline:
            if redis_ping(self.port, self.host):
                return True
            time.sleep(0.02)
        self.stop()
        return False

    def ping(self) -> bool:
        """Whether the server answers PING now."""
        return redis_ping(self.port, self.host)

    def stop(self, timeout: float = DEFAULT_TIMEOUT) -> int | None:
        """SIGTERM the server, SIGKILL after ``timeout``; return its exit code."""
        return _terminate(self._proc, timeout) if self._proc else None

    def describe(self) -> str:
        """Port, state and log tail, for failure messages."""
        return f"redis-server on {self.host}:{self.port}; log:\n{_tail(self.log_path)}"

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- child apps


def opentelemetry_instrument() -> Path:
    """``opentelemetry-instrument`` from the venv running the tests (beside sys.executable)."""
    path = Path(sys.executable).parent / "opentelemetry-instrument"
    if not path.exists():
        raise HarnessError(f"{path} missing: pip install opentelemetry-instrumentation")
    return path


def instrumented(script: str | Path, *args: str) -> list[str]:
    """argv for ``opentelemetry-instrument python SCRIPT ARGS...`` using this venv's python."""
    return [str(opentelemetry_instrument()), sys.executable, str(script), *args]


def python(script: str | Path, *args: str) -> list[str]:
    """argv for ``python SCRIPT ARGS...`` using this venv's python (no auto-instrumentation)."""
    return [sys.executable, str(script), *args]


def child_env(overrides: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """Environment for a child app: ours without ``OTEL_*``, then ``overrides``.

    The test run's own OTEL_* settings are dropped so a child sees only what the test gives
    it. A ``None`` override removes a variable. Output is unbuffered so logs are timely.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONUNBUFFERED"] = "1"
    for key, value in (overrides or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


class AppProcess:
    """A started child process whose output goes to a log file quoted in every failure."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str | None] | None = None,
        cwd: Path | None = None,
        log_path: Path,
    ) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        with log_path.open("ab") as log:
            self._proc = _spawn(self.argv, env=child_env(env), cwd=cwd, log=log)

    @property
    def pid(self) -> int:
        """The child's process id (also its process group id)."""
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        """Exit code, or None while running."""
        return self._proc.poll()

    @property
    def is_running(self) -> bool:
        """Whether the child is alive."""
        return self._proc.poll() is None

    def output(self) -> str:
        """Everything the child wrote to stdout and stderr so far."""
        return self.log_path.read_text(errors="replace")

    def describe(self, lines: int = 60) -> str:
        """Command, state and output tail, for assertion messages."""
        state = "running" if self.is_running else f"exit code {self.returncode}"
        return (
            f"app {' '.join(self.argv)} (pid {self.pid}, {state}); "
            f"output {self.log_path}:\n{_tail(self.log_path, lines)}"
        )

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for exit and return the code; on timeout kill it and fail with its output."""
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            message = f"app still running after {timeout:g}s\n{self.describe()}"
            raise HarnessTimeout(message) from None

    def _alive_and(self, condition: Callable[[], bool], what: str) -> bool:
        """Evaluate ``condition``, failing at once if the child already exited."""
        if condition():
            return True
        if not self.is_running:
            raise AssertionError(f"app exited while waiting for {what}\n{self.describe()}")
        return False

    def wait_for_port(self, port: int, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait until the child accepts connections on ``port`` (fail early if it dies)."""
        what = f"port {port}"
        wait_for(
            lambda: self._alive_and(lambda: port_is_open(port), what),
            timeout=timeout,
            message=lambda: f"{what}\n{self.describe()}",
        )

    def wait_for_output(self, text: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait until ``text`` appears in the child's output (fail early if it dies)."""
        what = f"output {text!r}"
        wait_for(
            lambda: self._alive_and(lambda: text in self.output(), what),
            timeout=timeout,
            message=lambda: f"{what}\n{self.describe()}",
        )

    def assert_success(self) -> None:
        """Fail with the child's output unless it exited with code 0."""
        if self.returncode != 0:
            raise AssertionError(f"app failed\n{self.describe()}")

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM the child's process group, SIGKILL after ``timeout``; return the code."""
        return _terminate(self._proc, timeout)

    def kill(self) -> None:
        """SIGKILL the child's process group at once."""
        if self._proc.poll() is None:
            _signal_group(self._proc, signal.SIGKILL)
            self._proc.wait()


def _app_name(argv: Sequence[str]) -> str:
    """A file-name-safe short name for an app: its script's stem, else its program's name."""
    scripts = [arg for arg in argv if arg.endswith(".py")]
    name = Path(scripts[0] if scripts else argv[0] if argv else "app").stem
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "app"


def _default_log_path(argv: Sequence[str]) -> Path:
    """A fresh temp file named after the app, when the caller gave no log path."""
    handle, name = tempfile.mkstemp(prefix=f"{_app_name(argv)}-", suffix=".log")
    os.close(handle)
    return Path(name)


def start_app(
    argv: Sequence[str],
    *,
    env: Mapping[str, str | None] | None = None,
    cwd: Path | None = None,
    log_path: Path | None = None,
) -> AppProcess:
    """Start a child app (see ``child_env`` for how ``env`` merges) and return at once."""
    return AppProcess(argv, env=env, cwd=cwd, log_path=log_path or _default_log_path(argv))


def run_app(
    argv: Sequence[str],
    *,
    env: Mapping[str, str | None] | None = None,
    cwd: Path | None = None,
    log_path: Path | None = None,
    timeout: float = 30.0,
    check: bool = True,
) -> AppProcess:
    """Run a child app to completion; with ``check`` fail (quoting its output) unless exit 0."""
    app = start_app(argv, env=env, cwd=cwd, log_path=log_path)
    app.wait(timeout)
    if check:
        app.assert_success()
    return app


class AppRunner:
    """Starts child apps with logs in one folder and kills every one of them on ``close()``."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._apps: list[AppProcess] = []

    def _log_path(self, name: str | None, argv: Sequence[str]) -> Path:
        """A log file in ``log_dir`` named after the app and its start order."""
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", name) if name else _app_name(argv)
        return self.log_dir / f"{len(self._apps):02d}-{stem}.log"

    def start(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str | None] | None = None,
        cwd: Path | None = None,
        name: str | None = None,
    ) -> AppProcess:
        """Start a child app that ``close()`` will kill if it is still running."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        app = start_app(argv, env=env, cwd=cwd, log_path=self._log_path(name, argv))
        self._apps.append(app)
        return app

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str | None] | None = None,
        cwd: Path | None = None,
        name: str | None = None,
        timeout: float = 30.0,
        check: bool = True,
    ) -> AppProcess:
        """Run a child app to completion (see ``run_app``)."""
        app = self.start(argv, env=env, cwd=cwd, name=name)
        app.wait(timeout)
        if check:
            app.assert_success()
        return app

    def __iter__(self) -> Iterator[AppProcess]:
        return iter(list(self._apps))

    def close(self) -> None:
        """Stop every app still running (SIGTERM, then SIGKILL after a short grace)."""
        for app in self._apps:
            if app.is_running:
                app.stop(timeout=3.0)
