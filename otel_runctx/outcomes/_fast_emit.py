"""Emitting an outcome record through an SDK Logger without validating its attributes again.

``Logger.emit(LogRecord)`` wraps the record in a ``ReadWriteLogRecord``, whose constructor
copies every attribute into a ``BoundedAttributes`` one validated insert at a time (about a
microsecond per attribute; an outcome record has 15-25). The outcome's attributes were built
here from a validated RunContext and a validated Outcome, so that is pure cost, paid once per
run on the thread that emits the event. The fast path hands ``Logger.emit`` a
``ReadWriteLogRecord`` it built itself (the SDK's ``emit`` takes one as it is) whose
``BoundedAttributes`` gets the already-valid dict in one copy.

It relies on private SDK structure: ``Logger._log_record_limits``, and ``BoundedAttributes``
internals (the same ones the stamping fast path probes). At import, :func:`_probe` emits one
record both ways through a private LoggerProvider and compares what an exporter receives; if
anything differs, :data:`FAST_PATH_AVAILABLE` is False and every record goes through the public
``Logger.emit``. Per record, a non-SDK logger (a proxy before the SDK is set up), a limit that
could truncate or drop, or a value that is not a plain scalar also goes the public way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry._logs import Logger, LogRecord
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk._logs import Logger as SdkLogger
from opentelemetry.sdk._logs import LogRecordLimits, ReadWriteLogRecord

from otel_runctx.processors._fast_stamp import all_scalars

__all__ = ["FAST_PATH_AVAILABLE", "emit", "emit_fast", "emit_public"]


def emit_public(logger: Logger, record: LogRecord) -> None:
    """``logger.emit(record)``: the SDK validates every attribute."""
    logger.emit(record)


def _fits(limits: Any, attributes: Any) -> bool:
    """True when the record's limits cannot change ``attributes`` and every value is valid as
    it is (an exact str/bool/int/float)."""
    if (
        not isinstance(limits, LogRecordLimits)
        or limits.max_log_record_attribute_length is not None
    ):
        return False
    maxlen = limits.max_log_record_attributes
    if maxlen is not None and len(attributes) > maxlen:
        return False
    return all_scalars(attributes.values())


def emit_fast(logger: Logger, record: LogRecord) -> None:
    """Emit ``record`` (attributes already valid) without re-validating; falls back to
    :func:`emit_public` whenever the result could differ."""
    attributes = record.attributes
    limits = getattr(logger, "_log_record_limits", None)
    if (
        type(logger) is not SdkLogger
        or not isinstance(attributes, dict)
        or not attributes
        or getattr(record, "exception", None) is not None
        or not _fits(limits, attributes)
    ):
        emit_public(logger, record)
        return
    record.attributes = None
    try:
        writable = ReadWriteLogRecord(
            log_record=record,
            resource=logger.resource,
            instrumentation_scope=logger.instrumentation_scope,
            limits=limits,  # type: ignore[arg-type]
        )
    except Exception:  # a constructor that changed shape: the record is not lost
        record.attributes = attributes
        emit_public(logger, record)
        return
    bounded: Any = record.attributes
    if type(bounded) is BoundedAttributes and not bounded._immutable and not bounded._dict:
        bounded._dict = dict(attributes)
    else:  # not the structure the probe saw: the public insert, one validated value at a time
        record.attributes = BoundedAttributes(
            maxlen=limits.max_log_record_attributes,  # type: ignore[union-attr]
            attributes=attributes,
            immutable=False,
            max_value_len=None,
            extended_attributes=True,
        )
    logger.emit(writable)  # type: ignore[arg-type]  # the SDK Logger takes it as it is


def _probe() -> bool:
    """True if :func:`emit_fast` gives exporters what the public ``Logger.emit`` gives them."""
    try:
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import (
            InMemoryLogRecordExporter,
            SimpleLogRecordProcessor,
        )
        from opentelemetry.sdk.resources import Resource

        exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
        provider = LoggerProvider(resource=Resource.get_empty(), shutdown_on_exit=False)
        provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
        logger = provider.get_logger("otel_runctx.probe")
        attributes: dict[str, Any] = {"runctx.probe": "x", "runctx.attempt": 1, "f": 0.5, "b": True}
        for emitter in (emit_public, emit_fast):
            record = LogRecord(timestamp=1, body="probe", attributes=dict(attributes))
            emitter(logger, record)
        public, fast = exporter.get_finished_logs()
        provider.shutdown()
        return (
            type(fast.log_record.attributes) is BoundedAttributes
            and dict(fast.log_record.attributes)
            == dict(public.log_record.attributes or {})
            == attributes
            and fast.resource is public.resource
            and fast.instrumentation_scope == public.instrumentation_scope
            and fast.dropped_attributes == public.dropped_attributes == 0
        )
    except Exception:
        return False


#: Whether this SDK's log record internals look the way :func:`emit_fast` expects.
FAST_PATH_AVAILABLE: bool = _probe()

#: What outcome delivery uses: the fast path when the probe passed, else the public API.
emit: Callable[[Logger, LogRecord], None] = emit_fast if FAST_PATH_AVAILABLE else emit_public
