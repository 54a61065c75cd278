"""Helpers for the stamping tests: a private provider with our processor and an in-memory export."""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer

from otel_runctx.processors import RunContextSpanProcessor


def stamped_tracer(**provider_kwargs: object) -> tuple[Tracer, InMemorySpanExporter]:
    """A tracer whose provider has RunContextSpanProcessor, and the exporter it writes to."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(**provider_kwargs)  # type: ignore[arg-type]
    provider.add_span_processor(RunContextSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test.stamping"), exporter


def runctx_attributes(span: ReadableSpan) -> dict[str, object]:
    """The span's ``runctx.*`` attributes only."""
    return {k: v for k, v in (span.attributes or {}).items() if k.startswith("runctx.")}


def by_name(spans: Iterable[ReadableSpan]) -> dict[str, ReadableSpan]:
    """Finished spans keyed by name (names must be unique in the test)."""
    result: dict[str, ReadableSpan] = {}
    for span in spans:
        assert span.name not in result, f"duplicate span name {span.name}"
        result[span.name] = span
    return result
