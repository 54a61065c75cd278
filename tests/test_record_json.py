"""Journal records encode with orjson when it works and with the stdlib otherwise; both read back.

The fast path (orjson, the ``fast`` extra, installed by ``dev``) and the fallback (the stdlib's
C encoder) are each checked on the same records, as is the per-record fallback for what orjson
refuses and the probe that keeps a broken orjson out.
"""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

from otel_runctx.outcomes import record_json
from otel_runctx.outcomes.records import decode_body, decode_record, encode_record, split_line

RESOURCE = Resource.create({"service.name": "record-json-test"})
TRACE_ID = 0xF1E2D3C4B5A6978812345678ABCDEF01  # above 2**127: the top bit set
SPAN_ID = 0xFEDCBA9876543210  # above 2**63: span ids are unsigned


def outcome_record(**attributes: object) -> LogRecord:
    span = NonRecordingSpan(SpanContext(TRACE_ID, SPAN_ID, False, TraceFlags(1)))
    return LogRecord(
        timestamp=1_796_301_149_100_146_973,
        observed_timestamp=1_796_301_149_100_146_974,
        context=set_span_in_context(span, Context()),
        severity_number=SeverityNumber.INFO,
        severity_text="INFO",
        body="run checkout ended: success",
        attributes={
            "runctx.run_id": "01a23be4-53aa-7728-8334-11e2987b237f",
            "runctx.customer_id": "Müller & Söhne",  # non-ASCII: UTF-8 from orjson, escaped else
            "runctx.usage.input_tokens": 1234,
            "runctx.outcome.duration_ms": 0.05167700146557763,
            "runctx.usage.complete": True,
            "runctx.usage.models": ("gpt-4o", "claude-sonnet-4"),
            **attributes,
        },
        event_name="runctx.outcome",
    )


def round_trip(record: LogRecord) -> tuple[bytes, LogRecord]:
    line = encode_record(record, "oid-1", RESOURCE, ("otel_runctx", None))
    kind, outcome_id, _, body = split_line(line)
    assert (kind, outcome_id) == ("o", "oid-1")
    return line, decode_record(decode_body(body), RESOURCE).log_record


def assert_same(original: LogRecord, decoded: LogRecord) -> None:
    assert decoded.trace_id == TRACE_ID
    assert decoded.span_id == SPAN_ID
    assert decoded.timestamp == original.timestamp
    assert decoded.body == original.body
    expected = {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in (original.attributes or {}).items()
    }
    assert dict(decoded.attributes or {}) == expected


@pytest.fixture
def stdlib_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(record_json, "_fast", None)
    yield


def test_orjson_from_the_dev_extra_is_the_encoder() -> None:
    # dev installs the fast extra; were orjson missing or refused by the probe, this fails
    # rather than every other test here quietly checking the stdlib twice.
    assert record_json.FAST
    assert record_json._fast is not None


def test_the_fast_path_round_trips_a_record() -> None:
    record = outcome_record()
    line, decoded = round_trip(record)
    assert "Müller".encode() in line  # orjson wrote it; the stdlib would have escaped it
    assert_same(record, decoded)


def test_the_stdlib_fallback_round_trips_the_same_record(stdlib_only: None) -> None:
    record = outcome_record()
    line, decoded = round_trip(record)
    assert line.isascii()
    assert_same(record, decoded)


def test_both_encoders_agree_on_every_value() -> None:
    body = {"a": outcome_record().attributes, "sp": SPAN_ID, "sc": ("otel_runctx", None)}
    assert record_json._fast is not None
    assert json.loads(record_json._fast(body)) == json.loads(record_json.stdlib_dumps(body))


@pytest.mark.parametrize(
    "attributes",
    [
        {"runctx.outcome.metadata.big": 2**70},  # orjson stops at 64 bits
        {"runctx.outcome.metadata.note": "half a pair \ud800"},  # a lone surrogate
    ],
    ids=["int-beyond-64-bits", "lone-surrogate"],
)
def test_what_orjson_refuses_the_stdlib_encodes(attributes: dict[str, object]) -> None:
    assert record_json._fast is not None
    with pytest.raises(TypeError):
        record_json._fast(attributes)
    record = outcome_record(**attributes)
    _, decoded = round_trip(record)
    assert_same(record, decoded)


def test_a_journal_line_of_an_earlier_release_still_reads() -> None:
    # Earlier releases wrote the trace and span ids as JSON numbers. orjson.loads reads an int
    # beyond 64 bits as a float (a fact this test pins), so only marked lines go to orjson.
    record = outcome_record()
    line, _ = round_trip(record)
    body = json.loads(split_line(line)[3])
    del body["orjson"]  # earlier releases wrote no mark
    body["tr"], body["sp"] = TRACE_ID, SPAN_ID
    old = json.dumps(body, separators=(",", ":")).encode()
    decoded = decode_record(decode_body(old), RESOURCE).log_record
    assert (decoded.trace_id, decoded.span_id) == (TRACE_ID, SPAN_ID)
    import orjson

    assert isinstance(orjson.loads(old)["tr"], float)


def test_lines_orjson_wrote_are_read_by_orjson(monkeypatch: pytest.MonkeyPatch) -> None:
    line, _ = round_trip(outcome_record())
    body = split_line(line)[3]
    assert body.startswith(record_json.FAST_MARK)
    calls: list[bytes] = []
    fast_loads = record_json._fast_loads
    assert fast_loads is not None

    def spy(data: bytes) -> object:
        calls.append(data)
        return fast_loads(data)

    monkeypatch.setattr(record_json, "_fast_loads", spy)
    expected = json.loads(body)
    del expected["orjson"]
    assert record_json.loads(body) == expected
    assert calls == [body]


def test_lines_the_stdlib_wrote_are_read_by_the_stdlib(monkeypatch: pytest.MonkeyPatch) -> None:
    big = {"n": 2**64, "m": -(2**63) - 1, "s": "text"}  # orjson would read both ints as floats
    body = record_json.dumps(big)  # orjson refuses them: the stdlib wrote this, unmarked
    assert not body.startswith(record_json.FAST_MARK)

    def fail(data: bytes) -> object:
        raise AssertionError("orjson must not read a line it did not write")

    monkeypatch.setattr(record_json, "_fast_loads", fail)
    assert record_json.loads(body) == big


def test_a_marked_line_reads_without_orjson(monkeypatch: pytest.MonkeyPatch) -> None:
    # Another process on the same spool may lack the fast extra.
    body = record_json.dumps({"a": 1, "b": ["x"]})
    assert body.startswith(record_json.FAST_MARK)
    monkeypatch.setattr(record_json, "_fast_loads", None)
    assert record_json.loads(body) == {"a": 1, "b": ["x"]}


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.text(max_size=8).filter(lambda key: key != "orjson"),  # the mark's key
        st.one_of(
            st.integers(),
            st.floats(allow_nan=False, allow_infinity=False),
            st.text(),
            st.booleans(),
            st.lists(st.integers(), max_size=4),
        ),
        max_size=8,
    )
)
def test_loads_reads_whatever_dumps_wrote_exactly(value: dict[str, object]) -> None:
    encoded = record_json.dumps(value)
    decoded = record_json.loads(encoded)
    assert decoded == value
    assert [type(v) for v in decoded.values()] == [type(v) for v in value.values()]


def test_loads_without_orjson_is_the_stdlib(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(record_json, "_fast_loads", None)
    monkeypatch.setattr(record_json, "_fast", None)
    assert record_json.loads(record_json.dumps({"n": 1})) == {"n": 1}
    with pytest.raises(ValueError):
        record_json.loads(b"{")


def test_the_probe_refuses_an_orjson_that_writes_other_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = types.ModuleType("orjson")
    broken.dumps = lambda value: b'{"t":0}'  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "orjson", broken)
    assert record_json._fast_dumps() is None


def test_the_probe_refuses_an_orjson_that_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(value: object) -> bytes:
        raise RuntimeError("a broken build")

    broken = types.ModuleType("orjson")
    broken.dumps = fail  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "orjson", broken)
    assert record_json._fast_dumps() is None


def test_without_orjson_the_stdlib_is_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "orjson", None)  # import raises ImportError
    assert record_json._fast_dumps() is None


def test_a_value_json_cannot_hold_raises_for_the_caller_to_count() -> None:
    with pytest.raises(TypeError):
        record_json.dumps({"a": object()})


def test_a_non_finite_float_is_null_with_orjson_and_refused_by_the_stdlib(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A fact of orjson (it has no option to refuse NaN); records never hold one, because
    # outcomes/model.py refuses non-finite numbers and metadata before a record is built.
    assert record_json.dumps({"a": float("nan")}) == record_json.FAST_MARK + b'"a":null}'
    monkeypatch.setattr(record_json, "_fast", None)
    with pytest.raises(ValueError):
        record_json.dumps({"a": float("nan")})
