"""The outcome record's fast constructor: what ``LogRecord(...)`` builds, or the constructor."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from otel_runctx.outcomes import _fast_record

ids = st.integers(1, 2**63)


def test_the_probe_passes_on_this_sdk_and_delivery_uses_the_fast_path() -> None:
    assert _fast_record.FAST_PATH_AVAILABLE
    assert _fast_record.new_record is _fast_record.new_record_fast


@given(
    trace_id=ids,
    span_id=ids,
    sampled=st.booleans(),
    timestamp=st.integers(0, 2**63),
    severity=st.sampled_from(list(SeverityNumber)),
    body=st.text(max_size=40),
    attributes=st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8)),
)
def test_fast_and_public_records_are_the_same(
    trace_id: int,
    span_id: int,
    sampled: bool,
    timestamp: int,
    severity: SeverityNumber,
    body: str,
    attributes: dict[str, Any],
) -> None:
    span = NonRecordingSpan(SpanContext(trace_id, span_id, False, TraceFlags(int(sampled))))
    context = trace.set_span_in_context(span, Context())
    arguments = (timestamp, context, severity, severity.name, body, attributes, "runctx.outcome")
    fast = _fast_record.new_record_fast(*arguments)
    public = _fast_record.new_record_public(*arguments)
    assert type(fast) is LogRecord
    assert vars(fast) == vars(public)
    assert (fast.trace_id, fast.span_id) == (trace_id, span_id)


def test_a_record_without_context_takes_the_constructor_and_the_current_span() -> None:
    span = NonRecordingSpan(SpanContext(0xABC, 0xDEF, False, TraceFlags(1)))
    with trace.use_span(span):
        record = _fast_record.new_record_fast(
            1, None, SeverityNumber.INFO, "INFO", "b", {}, "runctx.outcome"
        )
    assert (record.trace_id, record.span_id) == (0xABC, 0xDEF)


def test_the_probe_refuses_a_record_with_fields_the_fast_path_does_not_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class LaterLogRecord(LogRecord):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.added_in_a_later_sdk = True

    monkeypatch.setattr(_fast_record, "LogRecord", LaterLogRecord)
    assert _fast_record._probe() is False
