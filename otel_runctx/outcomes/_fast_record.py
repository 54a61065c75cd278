"""Building an outcome's ``LogRecord`` without going through its constructor's keyword handling.

Every run ends with one outcome record. ``LogRecord.__init__`` takes a dozen keyword arguments,
looks the span up in the given context and copies each field: about 2.2 us on this machine,
against 0.8 us for creating the object and filling its ``__dict__`` with the same fields at
once. The record is a plain Python object, so that is all the constructor leaves behind.

It relies on ``LogRecord`` keeping its fields in its instance ``__dict__``. At import,
:func:`_probe` builds one record both ways and compares their ``vars()``; if they differ (a
field added, renamed, or moved into ``__slots__``), :data:`FAST_PATH_AVAILABLE` is False and
every record is built by the constructor. A record without a context (the constructor would
read the current one) is always built by the constructor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.context import Context
from opentelemetry.trace import get_current_span
from opentelemetry.util.types import Attributes

__all__ = ["FAST_PATH_AVAILABLE", "new_record", "new_record_fast", "new_record_public"]

RecordFactory = Callable[
    [int, Context | None, SeverityNumber, str, str, Attributes, str], LogRecord
]


def new_record_public(
    timestamp: int,
    context: Context | None,
    severity_number: SeverityNumber,
    severity_text: str,
    body: str,
    attributes: Attributes,
    event_name: str,
) -> LogRecord:
    """The record through ``LogRecord(...)``, observed at ``timestamp`` too."""
    return LogRecord(
        timestamp=timestamp,
        observed_timestamp=timestamp,
        context=context,
        severity_number=severity_number,
        severity_text=severity_text,
        body=body,
        attributes=attributes,
        event_name=event_name,
    )


_new = object.__new__


def new_record_fast(
    timestamp: int,
    context: Context | None,
    severity_number: SeverityNumber,
    severity_text: str,
    body: str,
    attributes: Attributes,
    event_name: str,
) -> LogRecord:
    """:func:`new_record_public`'s record, its fields set in one ``__dict__`` update."""
    if not context:
        return new_record_public(
            timestamp, context, severity_number, severity_text, body, attributes, event_name
        )
    span_context = get_current_span(context).get_span_context()
    record: Any = _new(LogRecord)
    record.__dict__.update(
        timestamp=timestamp,
        observed_timestamp=timestamp,
        context=context,
        trace_id=span_context.trace_id,
        span_id=span_context.span_id,
        trace_flags=span_context.trace_flags,
        severity_text=severity_text,
        severity_number=severity_number,
        body=body,
        attributes=attributes,
        event_name=event_name,
        exception=None,
    )
    return record  # type: ignore[no-any-return]


def _probe() -> bool:
    """True if :func:`new_record_fast` builds what the constructor builds."""
    try:
        from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
        from opentelemetry.trace.propagation import set_span_in_context

        span = NonRecordingSpan(SpanContext(0x1F, 0x2E, False, TraceFlags(1)))
        context = set_span_in_context(span, Context())
        arguments = (7, context, SeverityNumber.WARN, "WARN", "probe", {"a": 1}, "probe.event")
        public, fast = new_record_public(*arguments), new_record_fast(*arguments)
        return (
            type(fast) is type(public)
            and vars(fast) == vars(public)
            and (fast.trace_id, fast.span_id, fast.trace_flags) == (0x1F, 0x2E, 1)
        )
    except Exception:
        return False


#: Whether ``LogRecord`` is the plain object :func:`new_record_fast` expects.
FAST_PATH_AVAILABLE: bool = _probe()

#: What outcome delivery uses: the fast path when the probe passed, else the constructor.
new_record: RecordFactory = new_record_fast if FAST_PATH_AVAILABLE else new_record_public
