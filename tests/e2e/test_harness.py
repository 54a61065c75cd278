"""Self-tests of the e2e harness with real parts: SDK exporters -> rotel -> sink, redis, apps."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (
    OTLPLogExporter as GrpcLogExporter,
)
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcMetricExporter,
)
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind, format_span_id, format_trace_id

from .harness import (
    ROTEL_ARGS_FILE,
    AppRunner,
    Collector,
    HarnessError,
    RedisServer,
    Sink,
    free_port,
    has_attributes,
    instrumented,
    load_rotel_args,
    port_is_open,
    python,
)

pytestmark = pytest.mark.e2e

SERVICE = "e2e-harness-selftest"
ATTRIBUTES = {
    "runctx.customer_id": "cust-42",
    "order.items": 3,
    "order.total": 12.5,
    "order.paid": True,
    "order.tags": ["a", "b"],
}


def _send_span(exporter: SpanExporter, name: str) -> tuple[str, str]:
    """Export one SERVER span synchronously; return its (trace_id, span_id) in hex."""
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("e2e.selftest", "1.0")
    with tracer.start_as_current_span(name, kind=SpanKind.SERVER, attributes=ATTRIBUTES) as span:
        context = span.get_span_context()
    provider.shutdown()
    return format_trace_id(context.trace_id), format_span_id(context.span_id)


def _grpc_exporter(collector: Collector) -> GrpcSpanExporter:
    """The stock OTLP/gRPC span exporter aimed at ``collector``."""
    return GrpcSpanExporter(endpoint=collector.grpc_endpoint, insecure=True)


def _assert_exact_span(sink: Sink, name: str, ids: tuple[str, str]) -> None:
    """The span named ``name`` arrived once, unchanged, with our ids, resource and scope."""
    span = sink.wait_for_span(name)
    assert (span["trace_id"], span["span_id"]) == ids
    assert span["attributes"] == ATTRIBUTES
    assert span["kind"] == SpanKind.SERVER.name
    assert span["parent_span_id"] is None
    assert span["resource"]["service.name"] == SERVICE
    assert span["scope"]["name"] == "e2e.selftest"
    assert span["scope"]["version"] == "1.0"
    assert len(sink.spans(name)) == 1
    assert sink.errors() == []


def test_span_over_grpc_reaches_sink(collector: Collector, sink: Sink) -> None:
    ids = _send_span(_grpc_exporter(collector), "checkout-grpc")
    _assert_exact_span(sink, "checkout-grpc", ids)


def test_span_over_http_reaches_sink_gzipped(collector: Collector, sink: Sink) -> None:
    exporter = HttpSpanExporter(endpoint=f"{collector.http_endpoint}/v1/traces")
    ids = _send_span(exporter, "checkout-http")
    _assert_exact_span(sink, "checkout-http", ids)
    # rotel's OTLP/HTTP exporter gzips by default: this proves the sink's gzip path ran.
    assert {r.content_encoding for r in sink.requests()} == {"gzip"}


def test_event_log_reaches_sink_with_trace_context(collector: Collector, sink: Sink) -> None:
    logs = LoggerProvider(resource=Resource.create({"service.name": SERVICE}))
    logs.add_log_record_processor(
        SimpleLogRecordProcessor(GrpcLogExporter(endpoint=collector.grpc_endpoint, insecure=True))
    )
    tracer = TracerProvider().get_tracer("e2e.selftest")
    with tracer.start_as_current_span("run") as span:
        logs.get_logger("e2e.selftest").emit(
            event_name="runctx.outcome",
            body={"note": "done"},
            attributes={"runctx.outcome.status": "success", "runctx.usage.tokens": 7},
            severity_number=SeverityNumber.INFO,
            severity_text="INFO",
        )
    logs.shutdown()

    record = sink.wait_for_log("runctx.outcome")
    assert record["attributes"] == {"runctx.outcome.status": "success", "runctx.usage.tokens": 7}
    assert record["body"] == {"note": "done"}
    assert record["severity_text"] == "INFO"
    assert record["severity_number"] == SeverityNumber.INFO.value
    assert record["trace_id"] == format_trace_id(span.get_span_context().trace_id)
    assert record["span_id"] == format_span_id(span.get_span_context().span_id)
    assert record["resource"]["service.name"] == SERVICE


def test_metric_reaches_sink(collector: Collector, sink: Sink) -> None:
    exporter = GrpcMetricExporter(endpoint=collector.grpc_endpoint, insecure=True)
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=60_000)
    meters = MeterProvider(metric_readers=[reader])
    meters.get_meter("e2e.selftest").create_counter("e2e.orders").add(3, {"plan": "pro"})
    meters.shutdown()  # collects and exports once

    metric = sink.wait_for_metrics(name="e2e.orders")[0]
    assert metric["type"] == "sum"
    assert [(p["attributes"], p["value"]) for p in metric["data_points"]] == [({"plan": "pro"}, 3)]


def test_collector_restarts_on_the_same_ports(collector: Collector, sink: Sink) -> None:
    _send_span(_grpc_exporter(collector), "before-outage")
    sink.wait_for_span("before-outage")
    ports, first_pid = (collector.grpc_port, collector.http_port), collector.pid

    collector.stop()
    assert not port_is_open(ports[0]) and not port_is_open(ports[1])
    collector.start()

    assert (collector.grpc_port, collector.http_port) == ports
    assert collector.pid != first_pid
    ids = _send_span(_grpc_exporter(collector), "after-restart")
    assert (sink.wait_for_span("after-restart")["span_id"]) == ids[1]
    assert [s["name"] for s in sink.spans()] == ["before-outage", "after-restart"]


def test_redis_server_answers_ping(redis_server: RedisServer) -> None:
    import redis

    client = redis.Redis.from_url(redis_server.url)
    try:
        assert client.ping() is True
        client.set("e2e:key", "value")
        assert client.get("e2e:key") == b"value"
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.config_get("bind") == {"bind": "127.0.0.1"}
    finally:
        client.close()


CHILD_APP = """
import os
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.trace import format_trace_id

provider = TracerProvider(resource=Resource.create())
provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter()))  # endpoint from env
tracer = provider.get_tracer("child")
with tracer.start_as_current_span(os.environ["SPAN_NAME"], attributes={"pid": os.getpid()}) as span:
    pass
provider.shutdown()
print("sent", format_trace_id(span.get_span_context().trace_id), flush=True)
"""


def _write(tmp_path: Path, name: str, source: str) -> Path:
    """Write a child script into the test's temp dir."""
    path = tmp_path / name
    path.write_text(source)
    return path


def test_instrumented_child_app_sends_through_collector(
    collector: Collector,
    sink: Sink,
    apps: AppRunner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "leaked=yes")  # must not reach the child
    env = collector.otlp_env("http/protobuf") | {
        "OTEL_SERVICE_NAME": "e2e-child",
        "SPAN_NAME": "child-work",
    }
    app = apps.run(instrumented(_write(tmp_path, "child.py", CHILD_APP)), env=env)

    trace_id = app.output().split("sent ", 1)[1].split()[0]
    span = sink.wait_for_span("child-work", lambda s: s["trace_id"] == trace_id)
    assert span["resource"]["service.name"] == "e2e-child"
    assert "leaked" not in span["resource"]
    # opentelemetry-instrument execs python in place: the span comes from the pid we started.
    assert has_attributes(span, {"pid": app.pid})


LISTENER_APP = """
import socket, sys, time
server = socket.create_server(("127.0.0.1", int(sys.argv[1])))
print("listening", flush=True)
time.sleep(60)
"""


def test_app_wait_for_port_and_stop(apps: AppRunner, tmp_path: Path) -> None:
    port = free_port()
    app = apps.start(python(_write(tmp_path, "listener.py", LISTENER_APP), str(port)))
    app.wait_for_port(port)
    app.wait_for_output("listening")

    assert app.stop(timeout=5) == -signal.SIGTERM
    assert not port_is_open(port)


def test_app_that_dies_fails_the_wait_with_its_output(apps: AppRunner) -> None:
    app = apps.start([sys.executable, "-c", "print('boom'); raise SystemExit(3)"])
    with pytest.raises(AssertionError, match=r"(?s)exit code 3.*boom"):
        app.wait_for_output("never printed", timeout=5)


def test_shipped_rotel_config_loads_with_endpoints_substituted() -> None:
    values = {"GRPC_ENDPOINT": "127.0.0.1:1", "HTTP_ENDPOINT": "127.0.0.1:2"}
    args = load_rotel_args(ROTEL_ARGS_FILE, values | {"EXPORTER_ENDPOINT": "http://x:3"})
    pairs = dict(zip(args[::2], args[1::2], strict=True))
    assert pairs["--otlp-grpc-endpoint"] == "127.0.0.1:1"
    assert pairs["--otlp-exporter-endpoint"] == "http://x:3"
    assert pairs["--batch-timeout"] == "50ms"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("--batch-timeout 1s\n--batch-timeout 2s\n", "given twice"),
        ("--exporter ${NOPE}\n", "cannot substitute"),
        ("batch-timeout 1s\n", "expected a --flag"),
    ],
)
def test_bad_rotel_config_is_rejected_before_spawning(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = _write(tmp_path, "bad.args", text)
    with pytest.raises(HarnessError, match=problem):
        load_rotel_args(path, {})
