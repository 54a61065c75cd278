"""Attaching our processors to providers someone else built: first in line, exactly once."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from opentelemetry import propagate
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor, ReadWriteLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_runctx import environment_variables, run
from otel_runctx import settings as runctx_settings
from otel_runctx.distro.attach import (
    attach_to_logger_provider,
    attach_to_tracer_provider,
    install_propagator,
    log_processors_of,
    propagator_names,
    span_processors_of,
)
from otel_runctx.processors import RunContextLogProcessor, RunContextSpanProcessor


def test_attaching_twice_adds_one_processor_in_front() -> None:
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    first = attach_to_tracer_provider(provider)
    second = attach_to_tracer_provider(provider)

    assert first.added[0] == "RunContextSpanProcessor" and not first.appended_at_end
    assert second.already_present and not second.added
    processors = span_processors_of(provider)
    assert processors is not None
    assert isinstance(processors[0], RunContextSpanProcessor)
    assert sum(isinstance(p, RunContextSpanProcessor) for p in processors) == 1


def test_attaching_concurrently_still_adds_exactly_one() -> None:
    provider = TracerProvider()
    barrier = threading.Barrier(8)

    def attach() -> None:
        barrier.wait()
        attach_to_tracer_provider(provider)

    threads = [threading.Thread(target=attach) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    processors = span_processors_of(provider) or ()
    assert sum(isinstance(p, RunContextSpanProcessor) for p in processors) == 1


def test_a_processor_added_by_hand_counts_as_attached() -> None:
    provider = TracerProvider()
    provider.add_span_processor(RunContextSpanProcessor())
    assert attach_to_tracer_provider(provider).already_present


def test_log_stamping_lands_before_a_synchronous_exporter() -> None:
    provider = LoggerProvider()
    exporter = InMemoryLogRecordExporter()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    attach_to_logger_provider(provider)
    assert attach_to_logger_provider(provider).already_present

    with run("wf", event_id="e", customer_id="c") as ctx:
        provider.get_logger("t").emit(body="hello")

    (record,) = exporter.get_finished_logs()
    assert record.log_record.attributes is not None
    assert record.log_record.attributes["runctx.run_id"] == ctx.run_id
    processors = log_processors_of(provider)
    assert processors is not None and isinstance(processors[0], RunContextLogProcessor)


class _OpaqueMultiSpanProcessor(SpanProcessor):
    """A pipeline that hides its processor list (as another SDK version might)."""

    def __init__(self) -> None:
        self.hidden: list[SpanProcessor] = []

    def add_span_processor(self, processor: SpanProcessor) -> None:
        self.hidden.append(processor)


class _OpaqueMultiLogProcessor(LogRecordProcessor):
    def __init__(self) -> None:
        self.hidden: list[LogRecordProcessor] = []

    def add_log_record_processor(self, processor: LogRecordProcessor) -> None:
        self.hidden.append(processor)

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        """Unused."""

    def shutdown(self) -> None:
        """Unused."""

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def test_without_sdk_internals_it_falls_back_to_the_public_add_once() -> None:
    provider = TracerProvider(active_span_processor=_OpaqueMultiSpanProcessor())  # type: ignore[arg-type]
    assert span_processors_of(provider) is None

    first = attach_to_tracer_provider(provider)
    second = attach_to_tracer_provider(provider)

    assert first.appended_at_end and first.added[0] == "RunContextSpanProcessor"
    assert second.already_present
    hidden = provider._active_span_processor.hidden  # type: ignore[attr-defined]
    assert sum(isinstance(p, RunContextSpanProcessor) for p in hidden) == 1


def test_logs_without_sdk_internals_fall_back_too() -> None:
    multi = _OpaqueMultiLogProcessor()
    provider = LoggerProvider(multi_log_record_processor=multi)  # type: ignore[arg-type]
    assert attach_to_logger_provider(provider).appended_at_end
    assert attach_to_logger_provider(provider).already_present
    assert [type(p) for p in multi.hidden] == [RunContextLogProcessor]


@pytest.fixture
def restore_textmap() -> Iterator[None]:
    before = propagate.get_global_textmap()
    yield
    propagate.set_global_textmap(before)


@pytest.mark.usefixtures("restore_textmap")
def test_install_propagator_is_idempotent() -> None:
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    propagate.set_global_textmap(CompositePropagator([TraceContextTextMapPropagator()]))
    assert install_propagator() is True
    names = propagator_names()
    assert names[0] == "TraceContextTextMapPropagator" and len(names) == 2
    assert install_propagator() is False
    assert propagator_names() == names


def test_every_setting_in_config_but_secrets_is_an_instrument_flag() -> None:
    declared = {v for k, v in vars(runctx_settings).items() if k.startswith("ENV_")}
    flags = {name for name in dir(environment_variables) if name.startswith("OTEL_")}
    secrets = {"OTEL_RUNCTX_SIGNING_KEYS"}
    assert secrets <= declared  # a secret is declared in settings.py, but gets no flag
    assert declared and flags == declared - secrets
