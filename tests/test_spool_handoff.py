"""The spool's in-memory hand-off: this process's own records are sent as the objects appended,
with exactly what decoding their journal line would give; every other row is still decoded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry._logs import LogRecord
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.sdk.resources import Resource

from otel_runctx import run
from otel_runctx.outcomes import delivery
from otel_runctx.outcomes.active import activate_spool, is_delivered
from otel_runctx.outcomes.handoff import MemoryHandoff
from otel_runctx.outcomes.spool import OutcomeSpool
from tests.test_outcomes import install_log_exporter
from tests.test_spool import RecordingExporter, eventually, make_spool

RESOURCE = Resource.create({"service.name": "handoff-test"})
SCOPE = ("otel_runctx", None)


@pytest.fixture
def spool_path(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "spool" / "outcomes.sqlite3"
    activate_spool(None)


def full_record(outcome_id: str) -> LogRecord:
    """A record with every kind of attribute value an outcome carries (sequences included)."""
    return LogRecord(
        timestamp=1_700_000_000_000_000_001,
        observed_timestamp=1_700_000_000_000_000_002,
        body="run checkout ended: success",
        attributes={
            "runctx.outcome.id": outcome_id,
            "runctx.run_id": "0190-run",
            "runctx.outcome.value_amount": 12.5,
            "runctx.usage.calls": 3,
            "runctx.usage.complete": True,
            "runctx.usage.models": ("gpt-x", "claude-y"),
        },
        event_name="runctx.outcome",
    )


def send(spool: OutcomeSpool, exporter: RecordingExporter, record: LogRecord, **kw: bool) -> None:
    before = len(exporter.received)
    outcome_id = str((record.attributes or {})["runctx.outcome.id"])
    assert spool.append(record, outcome_id, RESOURCE, SCOPE, **kw)
    assert spool.flush(10)
    eventually(lambda: len(exporter.received) == before + 1)


def test_own_record_is_sent_as_appended_and_encodes_like_the_decoded_one(
    spool_path: Path,
) -> None:
    exporter = RecordingExporter()
    spool = make_spool(spool_path, exporter)
    try:
        offered, plain = full_record("h-1"), full_record("h-1")
        send(spool, exporter, offered, sole_owner=True)
        spool.flush(10)
        # The same outcome id again, not offered: the store keeps one row per outcome id, so a
        # second id is needed for the decoded twin; the id is set back before comparing.
        plain.attributes = {**(plain.attributes or {}), "runctx.outcome.id": "h-2"}
        send(spool, exporter, plain)
    finally:
        spool.shutdown(timeout=2)
    from_memory, decoded = exporter.received
    assert from_memory.log_record is offered  # the hand-off was taken
    assert decoded.log_record is not plain  # the journal line was decoded
    decoded.log_record.attributes = {
        **(decoded.log_record.attributes or {}),
        "runctx.outcome.id": "h-1",
    }
    assert encode_logs([from_memory]).SerializeToString() == (
        encode_logs([decoded]).SerializeToString()
    )
    assert from_memory.instrumentation_scope is decoded.instrumentation_scope


@pytest.mark.parametrize(
    "options", [{}, {"replaces": True}], ids=["not the sole owner", "a final record"]
)
def test_records_not_offered_are_decoded(spool_path: Path, options: dict[str, bool]) -> None:
    exporter = RecordingExporter()
    spool = make_spool(spool_path, exporter)
    try:
        record = full_record("d-1")
        send(spool, exporter, record, **options)
    finally:
        spool.shutdown(timeout=2)
    assert exporter.received[0].log_record is not record
    assert exporter.received[0].log_record.attributes == {
        **(record.attributes or {}),
        "runctx.usage.models": ["gpt-x", "claude-y"],  # JSON gives sequences back as lists
    }


def test_a_held_pending_record_is_not_offered(spool_path: Path) -> None:
    exporter = RecordingExporter()
    spool = make_spool(spool_path, exporter)
    try:
        record = full_record("p-1")
        assert spool.append(record, "p-1", RESOURCE, SCOPE, hold_seconds=0.0, sole_owner=True)
        assert len(spool._worker.handoff) == 0
        assert spool.flush(10)
        eventually(lambda: len(exporter.received) == 1)
    finally:
        spool.shutdown(timeout=2)
    assert exporter.received[0].log_record is not record


def test_run_outcomes_are_handed_over_only_when_the_pipeline_skips_them(
    spool_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_log_exporter()  # an in-memory exporter in the pipeline: it sees every outcome
    exporter = RecordingExporter()
    spool = make_spool(spool_path, exporter)
    activate_spool(spool)
    try:
        with run("seen-by-pipeline", event_id="E-1", customer_id="acme"):
            pass
        monkeypatch.setattr(delivery, "pipeline_ignores_delivered", lambda logger: True)
        with run("spool-only", event_id="E-2", customer_id="acme"):
            pass
        assert spool.flush(10)
        eventually(lambda: len(exporter.received) == 2)
    finally:
        activate_spool(None)
        spool.shutdown(timeout=2)
    by_workflow = {
        str((r.log_record.attributes or {})["runctx.workflow"]): r for r in exporter.received
    }
    # Only the object appended carries the delivered mark; a decoded record never does.
    assert not is_delivered(by_workflow["seen-by-pipeline"].log_record)
    assert is_delivered(by_workflow["spool-only"].log_record)


def test_handoff_memory_is_bounded_and_forgotten_when_nothing_is_left_to_lease() -> None:
    handoff = MemoryHandoff(limit=8)
    for index in range(20):
        handoff.offer(f"o-{index}", full_record(f"o-{index}"), RESOURCE, SCOPE)
    assert len(handoff) == 8  # the newest offers only
    handoff.collect()
    assert handoff.take("o-0") is None  # evicted before it was collected
    taken = handoff.take("o-19")
    assert taken is not None and taken.resource is RESOURCE
    assert handoff.take("o-19") is None  # taken once
    handoff.forget()
    assert len(handoff) == 0 and handoff.take("o-18") is None
