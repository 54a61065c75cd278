"""RunContextSpanProcessor on a private provider: the basic contract."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_runctx import run
from otel_runctx.processors import RunContextSpanProcessor


def test_spans_in_a_run_are_stamped_and_spans_outside_are_not() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(RunContextSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    with run("job", event_id="e", customer_id="c") as ctx, tracer.start_as_current_span("inner"):
        with tracer.start_as_current_span("deeper"):
            pass
    with tracer.start_as_current_span("outside"):
        pass
    by_name = {s.name: dict(s.attributes or {}) for s in exporter.get_finished_spans()}
    assert by_name["inner"] == dict(ctx.to_stamp_attributes())
    assert by_name["deeper"] == dict(ctx.to_stamp_attributes())
    assert by_name["outside"] == {}
