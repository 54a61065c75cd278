"""A delivered outcome is emitted through the SDK log pipeline only when something there sees it.

The default wiring leaves nothing in the pipeline that would see a delivered outcome (our own
processors, and exporters wrapped in SkipDeliveredOutcomes); any other processor or exporter,
and anything where the SDK's internals are not as expected, keeps the emit.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry._logs._internal import ProxyLogger
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor, ReadWriteLogRecord
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    InMemoryLogRecordExporter,
    SimpleLogRecordProcessor,
)

from otel_runctx import run
from otel_runctx import settings as runctx_settings
from otel_runctx.exporters.outcome import OutcomeExporter, SkipDeliveredOutcomes
from otel_runctx.outcomes import delivery
from otel_runctx.outcomes.active import activate_spool
from otel_runctx.outcomes.events import flush_outcome_events
from otel_runctx.outcomes.pipeline import pipeline_ignores_delivered
from otel_runctx.processors import RunContextLogProcessor
from tests.test_spool import RecordingExporter, make_spool


def _default_wiring(*extra: object) -> LoggerProvider:
    """Our log stamping processor, then a batch processor whose exporter skips delivered ones
    (what wire_outcome_delivery makes of an OTLP exporter), then ``extra`` processors."""
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(RunContextLogProcessor())
    provider.add_log_record_processor(
        BatchLogRecordProcessor(SkipDeliveredOutcomes(InMemoryLogRecordExporter()))
    )
    for processor in extra:
        provider.add_log_record_processor(processor)  # type: ignore[arg-type]
    return provider


def test_the_sdk_keeps_exporters_where_the_check_looks() -> None:
    """Pinned SDK structure (1.45): if this fails, the check falls back to emitting always."""
    exporter = InMemoryLogRecordExporter()
    batch, simple = BatchLogRecordProcessor(exporter), SimpleLogRecordProcessor(exporter)
    assert batch._batch_processor._exporter is exporter
    assert simple._exporter is exporter
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(simple)
    logger = provider.get_logger("t")
    assert logger._multi_log_record_processor._log_record_processors == (simple,)  # type: ignore[attr-defined]
    provider.shutdown()
    batch.shutdown()


class Counting(LogRecordProcessor):
    """A processor of the app's own: it may do anything with a record."""

    def __init__(self) -> None:
        self.emitted = 0

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        self.emitted += 1

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def test_default_wiring_has_no_use_for_a_delivered_outcome() -> None:
    assert pipeline_ignores_delivered(_default_wiring().get_logger("otel_runctx"))
    # runctx_outcome in OTEL_LOGS_EXPORTER sends only outcomes nobody delivered.
    runctx_settings.reload_settings({"OTEL_RUNCTX_OUTCOME_SPOOL": "off"})
    try:
        outcome_exporter = OutcomeExporter()
    finally:
        runctx_settings.reload_settings()
    provider = _default_wiring(SimpleLogRecordProcessor(outcome_exporter))
    assert pipeline_ignores_delivered(provider.get_logger("otel_runctx"))


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param(lambda: SimpleLogRecordProcessor(InMemoryLogRecordExporter()), id="console"),
        pytest.param(lambda: BatchLogRecordProcessor(InMemoryLogRecordExporter()), id="batch"),
        pytest.param(
            lambda: type("Mine", (BatchLogRecordProcessor,), {})(
                SkipDeliveredOutcomes(InMemoryLogRecordExporter())
            ),
            id="subclass-of-batch",
        ),
        pytest.param(Counting, id="app-processor"),
    ],
)
def test_any_other_processor_or_exporter_keeps_the_emit(extra: object) -> None:
    provider = _default_wiring(extra())  # type: ignore[operator]
    assert not pipeline_ignores_delivered(provider.get_logger("otel_runctx"))


def test_the_answer_follows_processors_added_and_exporters_swapped_later() -> None:
    provider = _default_wiring()
    logger = provider.get_logger("otel_runctx")
    assert pipeline_ignores_delivered(logger)
    provider.add_log_record_processor(SimpleLogRecordProcessor(InMemoryLogRecordExporter()))
    assert not pipeline_ignores_delivered(logger)

    provider = _default_wiring()
    logger = provider.get_logger("otel_runctx")
    assert pipeline_ignores_delivered(logger)
    batch = logger._multi_log_record_processor._log_record_processors[1]  # type: ignore[attr-defined]
    batch._batch_processor._exporter = InMemoryLogRecordExporter()  # e.g. unwrapped again
    assert not pipeline_ignores_delivered(logger)


def test_unexpected_shapes_fall_back_to_emitting() -> None:
    provider = _default_wiring()
    logger = provider.get_logger("otel_runctx")
    assert pipeline_ignores_delivered(logger)
    # A logger without the SDK internals the check reads (another SDK version).
    del logger._multi_log_record_processor  # type: ignore[attr-defined]
    assert not pipeline_ignores_delivered(logger)
    # A proxy logger before there is an SDK provider: the emit goes through it as before.
    assert not pipeline_ignores_delivered(ProxyLogger("otel_runctx"))
    # A batch processor whose inner exporter is no longer where the SDK kept it.
    provider = _default_wiring()
    logger = provider.get_logger("otel_runctx")
    batch = logger._multi_log_record_processor._log_record_processors[1]  # type: ignore[attr-defined]
    del batch._batch_processor._exporter
    assert not pipeline_ignores_delivered(logger)


@pytest.fixture
def spooled(tmp_path: Path) -> Iterator[RecordingExporter]:
    sent = RecordingExporter()
    spool = make_spool(tmp_path / "spool.sqlite3", sent)
    previous = activate_spool(spool)
    yield sent
    activate_spool(previous)
    spool.shutdown()


@pytest.mark.parametrize("console", [False, True], ids=["default-wiring", "plus-console"])
def test_a_run_emits_its_outcome_into_the_pipeline_only_when_something_sees_it(
    spooled: RecordingExporter, monkeypatch: pytest.MonkeyPatch, console: bool
) -> None:
    seen = InMemoryLogRecordExporter()
    provider = _default_wiring(*([SimpleLogRecordProcessor(seen)] if console else []))
    monkeypatch.setattr(delivery, "_logger", provider.get_logger("otel_runctx"))
    handed_off: list[object] = []
    real_emit_soon = delivery.emit_soon

    def spy(logger: object, record: object) -> None:
        handed_off.append(record)
        real_emit_soon(logger, record)  # type: ignore[arg-type]

    monkeypatch.setattr(delivery, "emit_soon", spy)
    with run("checkout", event_id="e-1", customer_id="c-1"):
        pass
    assert flush_outcome_events(5)
    spool = delivery.get_active_spool()
    assert spool is not None and spool.flush(5)
    assert len(spooled.ids()) == 1  # the outcome was delivered either way
    assert len(handed_off) == (1 if console else 0)
    assert [r.log_record.event_name for r in seen.get_finished_logs()] == (
        ["runctx.outcome"] if console else []
    )
    provider.shutdown()
