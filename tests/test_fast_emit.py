"""outcomes/_fast_emit.py: outcome records reach exporters exactly as through Logger.emit."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from opentelemetry._logs import LogRecord
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk._logs import LoggerProvider, LogRecordLimits, ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from otel_runctx.outcomes import _fast_emit

OUTCOME_LIKE: dict[str, Any] = {
    "runctx.run_id": "r",
    "runctx.attempt": 1,
    "runctx.outcome.status": "success",
    "runctx.outcome.automatic": True,
    "runctx.outcome.duration_ms": 1.25,
}


def _emit(
    emitter: Any, attributes: dict[str, Any], limits: LogRecordLimits | None = None
) -> ReadableLogRecord:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(
        resource=Resource.create({"service.name": "t"}),
        log_record_limits=limits,
        shutdown_on_exit=False,
    )
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    record = LogRecord(timestamp=5, body="run ended", attributes=dict(attributes), event_name="e")
    emitter(provider.get_logger("otel_runctx", "1.0"), record)
    (exported,) = exporter.get_finished_logs()
    return exported


def _view(record: ReadableLogRecord) -> tuple[object, ...]:
    log = record.log_record
    return (
        dict(log.attributes or {}),
        type(log.attributes),
        record.dropped_attributes,
        log.body,
        log.event_name,
        log.timestamp,
        dict(record.resource.attributes),
        record.instrumentation_scope,
    )


def test_the_fast_path_is_available_on_the_installed_sdk() -> None:
    assert _fast_emit.FAST_PATH_AVAILABLE
    assert _fast_emit.emit is _fast_emit.emit_fast


@pytest.mark.parametrize(
    ("attributes", "limits"),
    [
        (OUTCOME_LIKE, None),
        ({**OUTCOME_LIKE, "runctx.usage.models": ["gpt-4o", "o3"]}, None),  # a list: public
        (OUTCOME_LIKE, LogRecordLimits(max_log_record_attributes=2)),  # would drop: public
        (OUTCOME_LIKE, LogRecordLimits(max_log_record_attribute_length=3)),  # would truncate
    ],
    ids=["scalars", "with-a-list", "count-limit", "length-limit"],
)
def test_fast_and_public_paths_export_the_same_record(
    attributes: dict[str, Any], limits: LogRecordLimits | None
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the SDK warns about dropped attributes
        fast = _emit(_fast_emit.emit_fast, attributes, limits)
        public = _emit(_fast_emit.emit_public, attributes, limits)
    assert _view(fast) == _view(public)
    assert type(fast.log_record.attributes) is BoundedAttributes


def test_a_proxy_logger_goes_the_public_way() -> None:
    seen: list[LogRecord] = []

    class NotSdkLogger:
        def emit(self, record: LogRecord) -> None:
            seen.append(record)

    record = LogRecord(body="b", attributes={"a": 1})
    _fast_emit.emit_fast(NotSdkLogger(), record)  # type: ignore[arg-type]
    assert seen == [record] and record.attributes == {"a": 1}


def test_the_probe_turns_the_fast_path_off_when_sdk_internals_differ(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class SomeOtherStorage:
        """Stands for an SDK whose log attribute storage is no longer BoundedAttributes."""

    monkeypatch.setattr(_fast_emit, "BoundedAttributes", SomeOtherStorage)
    assert _fast_emit._probe() is False


def test_a_record_the_sdk_cannot_wrap_is_still_emitted_the_public_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(**kwargs: object) -> None:
        raise TypeError("a ReadWriteLogRecord with a different constructor")

    monkeypatch.setattr(_fast_emit, "ReadWriteLogRecord", broken)
    exported = _emit(_fast_emit.emit_fast, OUTCOME_LIKE)
    assert dict(exported.log_record.attributes or {}) == OUTCOME_LIKE
