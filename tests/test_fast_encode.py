"""exporters/_fast_encode.py: cached OTLP encoding of run attributes, and its stock fallback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry._logs import LogRecord
from opentelemetry.exporter.otlp.proto.common._internal import _log_encoder, trace_encoder
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import ReadableSpan

from otel_runctx import RunContext, reset_run_context, set_run_context
from otel_runctx.distro.attach import build_span_processors
from otel_runctx.exporters import _fast_encode
from otel_runctx.processors import RunContextLogProcessor
from tests.stamping_helpers import stamped_tracer

STOCK_TRACE = trace_encoder._encode_attributes
STOCK_LOG = _log_encoder._encode_attributes


@pytest.fixture
def stock_afterwards() -> Iterator[None]:
    _fast_encode.uninstall()
    yield
    _fast_encode.uninstall()


def _stamped_spans() -> list[ReadableSpan]:
    tracer, exporter = stamped_tracer()
    token = set_run_context(RunContext.create("job", event_id="e-1", customer_id="c-1"))
    try:
        for index in range(3):
            tracer.start_span(
                "s", attributes={"user.first": index, "user.flag": True, "runctx.x": 7}
            ).end()
    finally:
        reset_run_context(token)
    return list(exporter.get_finished_spans())


def test_installed_encoding_gives_the_stock_bytes_for_spans(stock_afterwards: None) -> None:
    spans = _stamped_spans()
    stock = encode_spans(spans).SerializeToString()
    assert _fast_encode.install() is True
    assert trace_encoder._encode_attributes is not STOCK_TRACE
    # Twice: the second pass reuses the cached messages, and must not have changed them.
    assert encode_spans(spans).SerializeToString() == stock
    assert encode_spans(spans).SerializeToString() == stock
    assert 0 < len(_fast_encode._cache) <= _fast_encode.CACHE_SIZE


def test_installed_encoding_gives_the_stock_bytes_for_log_records(stock_afterwards: None) -> None:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(RunContextLogProcessor())
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    token = set_run_context(RunContext.create("job", event_id="e-1", customer_id="c-1"))
    try:
        provider.get_logger("t").emit(LogRecord(body="b", attributes={"user.a": 1}))
    finally:
        reset_run_context(token)
    records = exporter.get_finished_logs()
    stock = encode_logs(records).SerializeToString()
    assert _fast_encode.install()
    assert _log_encoder._encode_attributes is not STOCK_LOG
    assert encode_logs(records).SerializeToString() == stock


def test_the_probe_leaves_the_stock_encoders_when_results_would_differ(
    stock_afterwards: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Stands for an exporter release that encodes attributes differently from the cache (here:
    # sorted by key); the probe sees different bytes and patches nothing.
    def sorted_stock(attributes: dict[str, object] | None) -> list[object]:
        return STOCK_TRACE(dict(sorted((attributes or {}).items())))

    monkeypatch.setattr(trace_encoder, "_encode_attributes", sorted_stock)
    assert _fast_encode.install() is False
    assert not _fast_encode.installed
    assert trace_encoder._encode_attributes is sorted_stock
    assert _log_encoder._encode_attributes is STOCK_LOG


def test_a_missing_exporter_package_leaves_everything_alone(
    stock_afterwards: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing() -> list[object]:
        raise ImportError("no opentelemetry-exporter-otlp-proto-common")

    monkeypatch.setattr(_fast_encode, "_modules", missing)
    assert _fast_encode.install() is False
    assert trace_encoder._encode_attributes is STOCK_TRACE


def test_the_cache_is_bounded(stock_afterwards: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_fast_encode, "CACHE_SIZE", 8)
    assert _fast_encode.install()
    for index in range(50):
        trace_encoder._encode_attributes({"runctx.run_id": f"run-{index}"})
    assert len(_fast_encode._cache) <= 8


def test_attaching_our_processors_switches_it_on(stock_afterwards: None) -> None:
    build_span_processors()
    assert _fast_encode.installed
    _fast_encode.uninstall()
    assert trace_encoder._encode_attributes is STOCK_TRACE
