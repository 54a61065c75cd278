"""Shared fixtures: one global SDK TracerProvider with an in-memory exporter for unit tests.

OpenTelemetry lets a process set the global TracerProvider only once, so the whole unit-test
session shares this one; ``spans`` clears it before each test that uses it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_runctx.instrumentation import ExecutorContextInstrumentor

_EXPORTER = InMemorySpanExporter()
_PROVIDER = TracerProvider()
_PROVIDER.add_span_processor(SimpleSpanProcessor(_EXPORTER))
trace.set_tracer_provider(_PROVIDER)


@pytest.fixture
def provider() -> TracerProvider:
    """The session's global SDK TracerProvider."""
    return _PROVIDER


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The in-memory exporter behind the global provider, emptied before and after the test."""
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


@pytest.fixture
def instrumented() -> Iterator[None]:
    """The executor instrumentor on for the test, and undone after it."""
    instrumentor = ExecutorContextInstrumentor()
    instrumentor.instrument()
    try:
        yield
    finally:
        instrumentor.uninstrument()


@pytest.fixture
def strict() -> Iterator[None]:
    """``OTEL_RUNCTX_STRICT=true`` for the test: invalid ids from data raise."""
    from otel_runctx.settings import reload_settings

    reload_settings({"OTEL_RUNCTX_STRICT": "true"})
    try:
        yield
    finally:
        reload_settings()
