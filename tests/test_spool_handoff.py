"""The spool's in-memory hand-off: this process's own records are sent as the objects appended,
with exactly what decoding their journal line would give; every other row is still decoded.
While the store has nothing to send, they take the fast lane: sent as their lines are read,
never stored, and stored after all when the collector refuses them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry._logs import LogRecord
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.sdk._logs.export import LogRecordExportResult
from opentelemetry.sdk.resources import Resource

from otel_runctx import run
from otel_runctx.outcomes import delivery
from otel_runctx.outcomes.active import activate_spool, is_delivered
from otel_runctx.outcomes.handoff import MemoryHandoff
from otel_runctx.outcomes.records import (
    encode_record,
    encode_resource,
    resource_digest,
    split_line,
)
from otel_runctx.outcomes.spool import OutcomeSpool
from otel_runctx.outcomes.store import SpoolStore
from tests.test_outcomes import install_log_exporter
from tests.test_spool import RecordingExporter, eventually, make_spool, pending

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
    handoff.forget()  # one idle cycle: kept (their lines may not be read yet)
    assert handoff.take("o-18") is not None
    handoff.forget()  # a second: dropped
    assert len(handoff) == 0 and handoff.take("o-17") is None


def test_handoff_table_past_its_limit_drops_the_oldest_offers_not_all() -> None:
    """Offers collected in pieces (each within the queue's bound) can pile up in the table,
    e.g. during an outage, when rows are stored and not leased yet. Past the limit the oldest
    go; the newest are the lines about to be read. (Emptying the whole table once sent 4,300
    of 5,000 outcomes through the store after an outage, with another thread busy.)"""
    handoff = MemoryHandoff(limit=8)
    for index in range(12):
        handoff.offer(f"o-{index}", full_record(f"o-{index}"), RESOURCE, SCOPE)
        if index % 4 == 3:
            handoff.collect()
    assert len(handoff) == 8
    assert [handoff.take(f"o-{index}") is not None for index in range(12)] == [False] * 4 + [
        True
    ] * 8


def spy_on_stored_rows(spool: OutcomeSpool) -> list[str]:
    """The outcome ids the worker writes into the store (a spy on its ingest)."""
    stored: list[str] = []
    store = spool._worker.store
    real = store.ingest

    def ingest(resources: Any, rows: Any, *args: Any, **kwargs: Any) -> Any:
        stored.extend(outcome_id for outcome_id, _, _ in rows)
        return real(resources, rows, *args, **kwargs)

    store.ingest = ingest  # type: ignore[method-assign]
    return stored


def test_fresh_outcomes_take_the_fast_lane_and_are_never_stored(spool_path: Path) -> None:
    exporter = RecordingExporter()
    spool = make_spool(spool_path, exporter)
    stored = spy_on_stored_rows(spool)
    try:
        # No flush first: a worker that starts on an empty store opens the lane at once.
        records = [full_record(f"lane-{index}") for index in range(300)]
        for record in records:
            assert spool.append(
                record, record.attributes["runctx.outcome.id"], RESOURCE, SCOPE, sole_owner=True
            )  # type: ignore[index]
        assert spool.flush(10)
        eventually(lambda: len(exporter.received) == 300)
    finally:
        spool.shutdown(timeout=2)
    assert sorted(exporter.ids()) == sorted(f"lane-{index}" for index in range(300))
    # Each record is offered before its line is written, so every line read finds its offer.
    assert stored == []
    sent_objects = {id(r.log_record) for r in exporter.received}
    assert all(id(record) in sent_objects for record in records)
    assert pending(spool_path) == 0


def test_a_failed_fast_lane_export_stores_the_outcomes_and_loses_none(spool_path: Path) -> None:
    exporter = RecordingExporter()
    spool = make_spool(spool_path, exporter, max_backoff=1.0)
    stored = spy_on_stored_rows(spool)
    try:
        assert spool.flush(10)  # the lane is open
        exporter.failing = True
        for index in range(20):
            outcome_id = f"refused-{index}"
            assert spool.append(
                full_record(outcome_id), outcome_id, RESOURCE, SCOPE, sole_owner=True
            )
        eventually(lambda: pending(spool_path) == 20)  # refused, so kept in the store
        attempts = exporter.attempts
        time.sleep(0.3)
        # Backing off (0.5 s first), not sending the refused outcomes again at once from the
        # store: at most the store's own first retry.
        assert exporter.attempts - attempts <= 1
        exporter.failing = False
        assert spool.flush(10)
    finally:
        spool.shutdown(timeout=2)
    assert sorted(exporter.ids()) == sorted(f"refused-{index}" for index in range(20))
    assert sorted(set(stored)) == sorted(f"refused-{index}" for index in range(20))
    assert pending(spool_path) == 0


def test_rows_stored_before_are_sent_before_fresh_outcomes(spool_path: Path) -> None:
    """A spool that starts with stored rows (left by an earlier process) keeps the lane shut
    until they are sent: the oldest outcomes still go first."""
    store = SpoolStore(spool_path, 1 << 30)
    digest = resource_digest(RESOURCE)
    old = full_record("left-over")
    line = encode_record(old, "left-over", RESOURCE, SCOPE)
    _, _, _, payload = split_line(line)
    store.ingest(
        [(digest, split_line(encode_resource(RESOURCE))[3])], [("left-over", digest, payload)]
    )
    store.close()
    exporter = RecordingExporter()
    spool = make_spool(spool_path, exporter, poll_interval=60)  # one cycle at start, then asleep
    try:
        assert spool.append(full_record("fresh"), "fresh", RESOURCE, SCOPE, sole_owner=True)
        assert spool.flush(10)
        eventually(lambda: len(exporter.received) == 2)
    finally:
        spool.shutdown(timeout=2)
    assert exporter.ids() == ["left-over", "fresh"]


class AppendsDuringFirstGoodSend(RecordingExporter):
    """A collector that, at the first send it acknowledges, sees the caller append ``fresh``
    outcomes (as a busy caller would while the worker sends): at that moment the store still
    holds the rest of the refused rows."""

    def __init__(self, fresh: list[str]) -> None:
        super().__init__()
        self.fresh = fresh
        self.spool: OutcomeSpool | None = None

    def export(self, batch: Any) -> LogRecordExportResult:
        result = super().export(batch)
        if result is LogRecordExportResult.SUCCESS and self.fresh and self.spool is not None:
            fresh, self.fresh = self.fresh, []
            for outcome_id in fresh:
                assert self.spool.append(
                    full_record(outcome_id), outcome_id, RESOURCE, SCOPE, sole_owner=True
                )
        return result


def test_after_an_outage_the_lane_opens_at_the_first_good_send_not_when_the_store_is_empty(
    spool_path: Path,
) -> None:
    """Waiting for the store to drain before opening the lane again is not enough: sqlite3
    gives up the GIL at every row it steps through and waits up to the switch interval to get
    it back, so against a caller that keeps the GIL busy the store did not drain, and every
    later outcome went through it too. The lane opens at the first acknowledged send."""
    refused = [f"refused-{index}" for index in range(20)]
    fresh = [f"fresh-{index}" for index in range(10)]
    exporter = AppendsDuringFirstGoodSend(fresh)
    spool = make_spool(spool_path, exporter, batch_size=5, max_backoff=0.05)
    exporter.spool = spool
    stored = spy_on_stored_rows(spool)
    try:
        assert spool.flush(10)  # the lane is open
        exporter.failing = True
        for outcome_id in refused:
            assert spool.append(
                full_record(outcome_id), outcome_id, RESOURCE, SCOPE, sole_owner=True
            )
        eventually(lambda: set(stored) == set(refused))
        exporter.failing = False  # back: the store sends 5 of its 20, and the caller appends
        eventually(lambda: len(set(exporter.ids())) == 30)
    finally:
        spool.shutdown(timeout=5)
    sent = exporter.ids()
    assert sorted(set(sent)) == sorted(refused + fresh)
    assert set(stored) == set(refused)  # the fresh ones were never stored...
    # ...and went out while refused rows were still waiting in the store.
    assert max(sent.index(outcome_id) for outcome_id in fresh) < max(
        sent.index(outcome_id) for outcome_id in refused
    )
    assert pending(spool_path) == 0


def test_after_an_outage_a_busy_caller_loses_nothing(spool_path: Path) -> None:
    """The collector refuses for a while, then answers, while a caller that never waits keeps
    the GIL busy: every outcome is delivered and the store ends empty, however the worker's
    cycles fall (how many went through the store depends on the machine, so it is not checked
    here; the test above checks the rule that keeps it low)."""
    exporter = RecordingExporter()
    spool = make_spool(spool_path, exporter, poll_interval=0.2, max_backoff=0.05)
    stored = spy_on_stored_rows(spool)
    total, refused = 6000, 1000
    try:
        assert spool.flush(10)  # past the worker's first cycle
        exporter.failing = True
        for index in range(total):
            if index == refused:
                eventually(lambda: len(stored) > 0)  # the outage was noticed: rows are stored
                exporter.failing = False
            outcome_id = f"busy-{index}"
            assert spool.append(
                full_record(outcome_id), outcome_id, RESOURCE, SCOPE, sole_owner=True
            )
            busy_until = time.perf_counter() + 100e-6
            while time.perf_counter() < busy_until:  # the caller's own work, holding the GIL
                pass
        assert spool.flush(30)
    finally:
        spool.shutdown(timeout=5)
    assert sorted(set(exporter.ids())) == sorted(f"busy-{index}" for index in range(total))
    assert pending(spool_path) == 0


def test_lease_returns_every_field_exactly_in_order_from_one_packed_row(tmp_path: Path) -> None:
    """The lease packs its rows into one result row (one SQLite step instead of one per row);
    ids with spaces or non-ASCII text and payloads with any bytes come back exactly."""
    store = SpoolStore(tmp_path / "spool.sqlite3", 1 << 30)
    try:
        outcome_ids = ["plain", "with space", "ünï çødé", "tab\\there", ""]
        payloads = [b"{}", bytes(range(256)), b'{"a": "x y"}', b" ", b'{"b":1}']
        store.ingest(
            [("digest", b'{"a":{}}')],
            [(o, "digest", p) for o, p in zip(outcome_ids, payloads, strict=True)],
        )
        rows = store.lease("me", 10, 60.0, lambda owner: True)
        assert [row.outcome_id for row in rows] == outcome_ids
        assert [row.payload for row in rows] == payloads
        assert [row.seq for row in rows] == sorted(row.seq for row in rows)
        assert store.lease("other", 10, 60.0, lambda owner: True) == []  # all leased to me
        store.delete([rows[0].seq, rows[1].seq])
        assert store.pending() == 3
        again = store.lease("me", 2, 60.0, lambda owner: True)  # my own rows, re-leased
        assert [row.outcome_id for row in again] == outcome_ids[2:4]
    finally:
        store.close()
