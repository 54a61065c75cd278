"""Durable delivery by default, each outcome sent once: the wiring on a real SDK pipeline."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from opentelemetry._logs import LogRecord
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    InMemoryLogRecordExporter,
    LogRecordExporter,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)

from otel_runctx import settings as runctx_settings
from otel_runctx.distro.outcome_wiring import OutcomeDeliveryProcessor, wire_outcome_delivery
from otel_runctx.exporters.outcome import SkipDeliveredOutcomes
from otel_runctx.outcomes.active import (
    DELIVERED_MARK,
    activate_spool,
    get_active_delivery,
    is_delivered,
    stop_delivery,
)


class Keep(LogRecordExporter):
    def __init__(self) -> None:
        self.records: list[ReadableLogRecord] = []

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        self.records.extend(batch)
        return LogRecordExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True

    def shutdown(self) -> None:
        pass


@pytest.fixture
def spool_env(tmp_path: Path) -> Iterator[Path]:
    previous = activate_spool(None)
    path = tmp_path / "spool" / "outcomes.sqlite3"
    runctx_settings.reload_settings({"OTEL_RUNCTX_OUTCOME_SPOOL": str(path)})
    yield path
    delivery = get_active_delivery()
    if delivery is not None:
        stop_delivery(delivery, timeout=2)
    activate_spool(previous)
    runctx_settings.reload_settings()


def test_the_sdk_hands_exporters_the_same_log_record_object() -> None:
    """Pinned: the mark works because Logger.emit wraps, never copies, an API LogRecord."""
    keep = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(keep))
    record = LogRecord(body="x", event_name="e")
    setattr(record, DELIVERED_MARK, True)
    provider.get_logger("t").emit(record)
    (exported,) = keep.get_finished_logs()
    assert exported.log_record is record and is_delivered(exported.log_record)


def test_otlp_exporters_are_wrapped_and_the_delivery_started(spool_env: Path) -> None:
    provider = LoggerProvider()
    otlp = OTLPLogExporter(endpoint="http://127.0.0.1:9/v1/logs")
    batch = BatchLogRecordProcessor(otlp)
    console_like = Keep()
    provider.add_log_record_processor(batch)
    provider.add_log_record_processor(SimpleLogRecordProcessor(console_like))
    assert wire_outcome_delivery(provider) == "durable"
    assert wire_outcome_delivery(provider) == "durable"  # idempotent
    wrapped = batch._batch_processor._exporter
    assert isinstance(wrapped, SkipDeliveredOutcomes) and wrapped.inner is otlp
    processors = provider._multi_log_record_processor._log_record_processors
    assert sum(isinstance(p, OutcomeDeliveryProcessor) for p in processors) == 1
    delivery = get_active_delivery()
    assert delivery is not None and delivery.spool is not None
    assert delivery.spool.path == spool_env
    # Other exporters still see outcomes; the wrapped OTLP one drops the delivered ones.
    inner = Keep()
    skip = SkipDeliveredOutcomes(inner)
    delivered, plain = LogRecord(body="o"), LogRecord(body="p")
    setattr(delivered, DELIVERED_MARK, True)
    records = [ReadableLogRecord(r, provider.resource) for r in (delivered, plain)]
    assert skip.export(records) is LogRecordExportResult.SUCCESS
    assert [r.log_record.body for r in inner.records] == ["p"]
    provider.shutdown()  # reaches the delivery through OutcomeDeliveryProcessor
    assert get_active_delivery() is None


def test_no_otlp_exporter_means_no_spool(spool_env: Path) -> None:
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(Keep()))
    assert wire_outcome_delivery(provider) == "no-otlp"
    assert get_active_delivery() is None


def test_spool_off_opts_out(spool_env: Path) -> None:
    runctx_settings.reload_settings({"OTEL_RUNCTX_OUTCOME_SPOOL": "off"})
    provider = LoggerProvider()
    batch = BatchLogRecordProcessor(OTLPLogExporter(endpoint="http://127.0.0.1:9/v1/logs"))
    provider.add_log_record_processor(batch)
    assert wire_outcome_delivery(provider) == "off"
    assert not isinstance(batch._batch_processor._exporter, SkipDeliveredOutcomes)
    assert get_active_delivery() is None
    provider.shutdown()
