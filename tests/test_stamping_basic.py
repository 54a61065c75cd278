"""RunContextSpanProcessor and RunContextLogProcessor on a private provider."""

from __future__ import annotations

import logging

from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_runctx import run
from otel_runctx.processors import RunContextLogProcessor, RunContextSpanProcessor


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
    assert by_name["inner"] == dict(ctx.to_span_attributes())
    assert by_name["deeper"] == dict(ctx.to_span_attributes())
    assert by_name["outside"] == {}


def test_stdlib_logging_through_the_otel_handler_carries_the_run() -> None:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(RunContextLogProcessor())
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = logging.getLogger("test.stamping")
    logger.propagate = False
    handler = LoggingHandler(logger_provider=provider)
    logger.addHandler(handler)
    try:
        with run("job", event_id="e", customer_id="cust-7") as ctx:
            logger.warning("inside", extra={"ticket": "T-1"})
        logger.warning("outside")
    finally:
        logger.removeHandler(handler)
    inside, outside = (r.log_record for r in exporter.get_finished_logs())
    assert inside.attributes is not None and outside.attributes is not None
    assert inside.attributes["runctx.run_id"] == ctx.run_id
    assert inside.attributes["runctx.customer_id"] == "cust-7"
    assert inside.attributes["ticket"] == "T-1"
    assert not any(k.startswith("runctx.") for k in outside.attributes)
