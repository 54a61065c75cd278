"""Shared fixtures: one global SDK TracerProvider with an in-memory exporter for unit tests.

OpenTelemetry lets a process set the global TracerProvider only once, so the whole unit-test
session shares this one; ``spans`` clears it before each test that uses it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_runctx.instrumentation import ExecutorContextInstrumentor
from otel_runctx.outcomes.active import activate_spool, get_active_delivery, stop_delivery

# Durable outcome delivery is on by default, at $XDG_CACHE_HOME/otel-runctx/: keep the tests'
# spools (and any app they start) out of the real user cache and away from other test runs.
os.environ.setdefault("XDG_CACHE_HOME", tempfile.mkdtemp(prefix="otel-runctx-test-cache-"))


@pytest.fixture(autouse=True)
def _stop_outcome_delivery_started_by_the_test() -> Iterator[None]:
    """A delivery a test started (configure() starts one by default) ends with the test."""
    before = get_active_delivery()
    yield
    after = get_active_delivery()
    if after is not None and after is not before:
        stop_delivery(after, timeout=2)


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


@pytest.fixture
def logs() -> Iterator[InMemoryLogRecordExporter]:
    """Outcome events emitted through the global LoggerProvider (the spool is off)."""
    from tests.test_outcomes import install_log_exporter

    exporter = install_log_exporter()
    previous = activate_spool(None)
    exporter.clear()
    yield exporter
    exporter.clear()
    activate_spool(previous)
