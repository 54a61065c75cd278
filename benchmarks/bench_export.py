"""A stamped span through the real export pipeline: BatchSpanProcessor + OTLP/HTTP, CPU per span.

What a stamped span costs a user is not only ``on_start``: every attribute is encoded to protobuf
on the batch thread and shipped. This measures process CPU time (``time.process_time``, which
counts every thread of this process, so the batch thread and the exporter are included) per span,
from ``start_span`` to the collector's acknowledgement. The collector is a tiny OTLP/HTTP sink in
a child process that answers 200 at once; its CPU is not counted.

Variants: the bare pipeline (no processor, no run), ours with the default lean set (5 fields),
ours with ``OTEL_RUNCTX_SPAN_ATTRIBUTES=full``. Bytes per span are the uncompressed OTLP protobuf
size of one export batch divided by its spans (the same encoder the exporter uses).
"""

from __future__ import annotations

import gc
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from benchmarks._harness import Row
from otel_runctx import RunContext, reset_run_context, set_run_context
from otel_runctx.exporters import _fast_encode
from otel_runctx.processors import RunContextSpanProcessor
from otel_runctx.settings import reload_settings

TITLE = "Lean export: a stamped span through BatchSpanProcessor + OTLP/HTTP, CPU us per span"

_SINK = textwrap.dedent(
    """
    import http.server, sys

    class Sink(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    print(server.server_address[1], flush=True)
    server.serve_forever()
    """
)


@contextmanager
def otlp_sink() -> Iterator[str]:
    """An OTLP/HTTP traces endpoint in a child process; yields its URL."""
    process = subprocess.Popen(
        [sys.executable, "-c", _SINK], stdout=subprocess.PIPE, text=True, bufsize=1
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}/v1/traces"
    finally:
        process.terminate()
        process.wait(10)


_MAX_OPS = 5_000


def _provider(endpoint: str, stamped: bool) -> TracerProvider:
    provider = TracerProvider(
        resource=Resource.create({"service.name": "bench"}), shutdown_on_exit=False
    )
    if stamped:
        provider.add_span_processor(RunContextSpanProcessor())
    # A queue that holds a whole round, so no span is dropped (a dropped span is never encoded).
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint), max_queue_size=_MAX_OPS)
    )
    return provider


@contextmanager
def _in_run(enabled: bool) -> Iterator[None]:
    token = (
        set_run_context(
            RunContext.create("checkout", event_id="order-18231", customer_id="cust-0042")
        )
        if enabled
        else None
    )
    try:
        yield
    finally:
        if token is not None:
            reset_run_context(token)


def _bytes_per_span(stamped: bool, count: int = 512) -> float:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "bench"}), shutdown_on_exit=False
    )
    if stamped:
        provider.add_span_processor(RunContextSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("bench.export")
    with _in_run(stamped):
        for _ in range(count):
            tracer.start_span("GET /orders").end()
    bare = len(encode_spans([]).SerializeToString())
    return (len(encode_spans(exporter.get_finished_spans()).SerializeToString()) - bare) / count


def _setup(environ: dict[str, str], fast_encode: bool) -> None:
    reload_settings(environ)
    if fast_encode:
        _fast_encode.install()
    else:
        _fast_encode.uninstall()


def _cpu_rounds(
    variants: dict[str, tuple[Callable[[], None], TracerProvider, bool]], ops: int, rounds: int
) -> dict[str, float]:
    """Median CPU ns per span of each variant over interleaved rounds (flush included)."""
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, (setup, provider, in_run) in variants.items():
            setup()
            tracer = provider.get_tracer("bench.export")
            gc.collect()
            with _in_run(in_run):
                start = time.process_time_ns()
                for _ in range(ops):
                    tracer.start_span("GET /orders").end()
                provider.force_flush(30_000)
                samples[name].append((time.process_time_ns() - start) / ops)
    return {name: statistics.median(values) for name, values in samples.items()}


def measure(quick: bool) -> list[Row]:
    ops, rounds = (1_000, 3) if quick else (_MAX_OPS, 9)
    rows: list[Row] = []
    try:
        with otlp_sink() as endpoint:
            bare = "bare pipeline (no processor, no run)"
            lean = "stamped, lean (default: 5 fields)"
            stock = "stamped, lean, stock OTLP encoder"
            full = "stamped, OTEL_RUNCTX_SPAN_ATTRIBUTES=full"
            variants = {
                bare: (_fast_encode.uninstall, _provider(endpoint, False), False),
                lean: (lambda: _setup({}, True), _provider(endpoint, True), True),
                stock: (lambda: _setup({}, False), _provider(endpoint, True), True),
                full: (
                    lambda: _setup({"OTEL_RUNCTX_SPAN_ATTRIBUTES": "full"}, True),
                    _provider(endpoint, True),
                    True,
                ),
            }
            cpu = _cpu_rounds(variants, ops, rounds)
            reload_settings({})
            lean_bytes = _bytes_per_span(True)
            reload_settings({"OTEL_RUNCTX_SPAN_ATTRIBUTES": "full"})
            full_bytes = _bytes_per_span(True)
            bare_bytes = _bytes_per_span(False)
            for _, provider, _ in variants.values():
                provider.shutdown()
        rows.append(Row(bare, cpu[bare], note=f"{bare_bytes:.0f} B/span"))
        rows.append(Row(lean, cpu[lean], bare, f"{lean_bytes:.0f} B/span; target <= 1.35x"))
        rows.append(Row(stock, cpu[stock], bare, "without exporters/_fast_encode.py"))
        rows.append(Row(full, cpu[full], bare, f"{full_bytes:.0f} B/span"))
    finally:
        reload_settings()  # back to what the environment says
        _fast_encode.install()
    return rows
