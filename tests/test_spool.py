"""The outcome spool: on disk before emit_outcome returns, deleted only after an ack, replayed
after a crash, bounded with counted drops, and safe across fork."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from opentelemetry._logs import LogRecord
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.resources import Resource

from otel_runctx import emit_outcome, run, stats
from otel_runctx import settings as runctx_settings
from otel_runctx.exporters import OutcomeExporter, OutcomeSpool
from otel_runctx.outcomes.active import activate_spool, get_active_spool
from otel_runctx.outcomes.events import flush_outcome_events
from otel_runctx.outcomes.journal import JOURNAL_SUFFIX
from otel_runctx.outcomes.model import OUTCOME_EVENT_NAME
from otel_runctx.outcomes.records import encode_record, encode_resource
from otel_runctx.outcomes.store import SpoolStore
from tests.test_outcomes import install_log_exporter, outcome_records

OUTCOME_ID = "runctx.outcome.id"
RESOURCE = Resource.create({"service.name": "spool-test"})


class RecordingExporter(LogRecordExporter):
    """Fails while ``failing`` is set, else keeps what it was sent (an ack)."""

    def __init__(self, failing: bool = False) -> None:
        self.failing = failing
        self.attempts = 0
        self.received: list[ReadableLogRecord] = []
        self._lock = threading.Lock()

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        with self._lock:
            self.attempts += 1
            if self.failing:
                return LogRecordExportResult.FAILURE
            self.received.extend(batch)
            return LogRecordExportResult.SUCCESS

    def ids(self) -> list[str]:
        with self._lock:
            return [
                str((r.log_record.attributes or {})["runctx.outcome.id"]) for r in self.received
            ]

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True

    def shutdown(self) -> None:
        pass


def make_spool(path: Path, exporter: LogRecordExporter, **options: float) -> OutcomeSpool:
    settings: dict[str, float] = {"poll_interval": 0.02, "max_backoff": 0.05}
    settings.update(options)
    return OutcomeSpool(
        path,
        max_bytes=int(settings.pop("max_bytes", 1 << 30)),
        exporter_factory=lambda: exporter,
        **settings,  # type: ignore[arg-type]
    )


def record(outcome_id: str, payload: str = "") -> LogRecord:
    return LogRecord(
        timestamp=1,
        observed_timestamp=2,
        body="b",
        attributes={"runctx.outcome.id": outcome_id, "pad": payload},
        event_name=OUTCOME_EVENT_NAME,
    )


def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``condition`` until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def pending(path: Path) -> int:
    store = SpoolStore(path, 1 << 30)
    try:
        return store.pending()
    finally:
        store.close()


@pytest.fixture
def spool_path(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "spool" / "outcomes.sqlite3"
    activate_spool(None)


def test_outcome_is_in_the_journal_before_emit_outcome_returns(spool_path: Path) -> None:
    exporter = RecordingExporter(failing=True)
    spool = make_spool(spool_path, exporter, poll_interval=60)  # the worker stays asleep
    activate_spool(spool)
    try:
        with run("durable", event_id="S-1", customer_id="acme"):
            emit_outcome("success", value_amount=3)
            journals = list(spool.intake_directory.glob("*.journal"))
            text = b"".join(p.read_bytes() for p in journals).decode()
            assert '"runctx.outcome.status":"success"' in text
            assert '"runctx.outcome.value_amount":3' in text
    finally:
        spool.shutdown(timeout=2)


def test_rows_stay_until_acknowledged_then_are_deleted(spool_path: Path) -> None:
    exporter = RecordingExporter(failing=True)
    spool = make_spool(spool_path, exporter)
    for i in range(20):
        spool.append(record(f"id-{i}"), f"id-{i}", RESOURCE, ("t", None))
    assert not spool.flush(timeout=0.5)  # nothing acknowledged yet
    eventually(lambda: exporter.attempts >= 3)  # retried, with backoff
    assert pending(spool_path) == 20
    exporter.failing = False
    assert spool.flush(timeout=10)
    assert pending(spool_path) == 0
    assert sorted(exporter.ids()) == sorted(f"id-{i}" for i in range(20))
    resources = {r.resource.attributes["service.name"] for r in exporter.received}
    assert resources == {"spool-test"}
    spool.shutdown(timeout=2)


def test_replayed_after_the_process_is_killed(spool_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from opentelemetry.sdk._logs.export import LogRecordExportResult
        from opentelemetry.sdk.resources import Resource
        from otel_runctx.exporters import OutcomeSpool
        from tests.test_spool import RecordingExporter, record

        spool = OutcomeSpool(Path({str(spool_path)!r}), max_bytes=1 << 30,
                             exporter_factory=lambda: RecordingExporter(failing=True))
        for i in range(50):
            spool.append(record(f"crash-{{i}}"), f"crash-{{i}}", Resource.create({{}}), ("t", None))
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    child = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parent.parent)
    assert child.returncode == -signal.SIGKILL
    exporter = RecordingExporter()
    spool = make_spool(spool_path, exporter)
    assert spool.flush(timeout=10)
    assert sorted(exporter.ids()) == sorted(f"crash-{i}" for i in range(50))
    assert list(spool.intake_directory.glob("*.journal")) == [
        p for p in spool.intake_directory.glob("*.journal") if p.name.startswith(spool.owner)
    ]
    spool.shutdown(timeout=2)


def test_size_cap_drops_oldest_and_counts_and_logs(
    spool_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stats.reset()
    exporter = RecordingExporter(failing=True)
    spool = make_spool(spool_path, exporter, max_bytes=20_000)
    with caplog.at_level(logging.WARNING, logger="otel_runctx"):
        for i in range(100):
            spool.append(record(f"cap-{i:03d}", "x" * 500), f"cap-{i:03d}", RESOURCE, ("t", None))
        spool.flush(timeout=0.5)
        eventually(lambda: exporter.attempts >= 1)  # past ingestion: the cap was applied
    dropped = stats.snapshot().get("outcome_spool.dropped", 0)
    assert dropped > 0
    assert pending(spool_path) == 100 - dropped
    assert any("dropped" in message for message in caplog.messages)
    exporter.failing = False
    assert spool.flush(timeout=10)
    kept = sorted(exporter.ids())
    assert kept == [f"cap-{i:03d}" for i in range(dropped, 100)]  # the oldest went first
    store = SpoolStore(spool_path, 1 << 30)
    assert store.dropped_total() == dropped
    store.close()
    spool.shutdown(timeout=2)


def test_two_live_spools_on_one_file_do_not_send_the_same_rows(spool_path: Path) -> None:
    first, second = RecordingExporter(), RecordingExporter()
    a, b = make_spool(spool_path, first), make_spool(spool_path, second)
    for i in range(300):
        spool = a if i % 2 else b
        spool.append(record(f"two-{i}"), f"two-{i}", RESOURCE, ("t", None))
    assert a.flush(timeout=10) and b.flush(timeout=10)
    delivered = first.ids() + second.ids()
    assert sorted(delivered) == sorted(f"two-{i}" for i in range(300))
    a.shutdown(timeout=2)
    b.shutdown(timeout=2)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_forked_child_gets_its_own_journal_and_worker(spool_path: Path) -> None:
    exporter = RecordingExporter()
    spool = make_spool(spool_path, exporter)
    spool.append(record("parent-0"), "parent-0", RESOURCE, ("t", None))
    assert spool.flush(timeout=10)
    parent_owner = spool.owner
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, then leave without running the parent's cleanup
        status = 1
        try:
            os.close(read_end)
            for i in range(10):
                spool.append(record(f"child-{i}"), f"child-{i}", RESOURCE, ("t", None))
            ok = spool.flush(timeout=10) and spool.owner != parent_owner
            os.write(write_end, f"{int(ok)} {' '.join(exporter.ids())}".encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        report = pipe.read().decode().split()
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert report[0] == "1"
    spool.append(record("parent-1"), "parent-1", RESOURCE, ("t", None))
    assert spool.flush(timeout=10)  # the parent's worker and connection still work
    # Child rows are in the shared store, so either process may have sent them: together,
    # every outcome was delivered.
    delivered = set(report[1:]) | set(exporter.ids())
    assert delivered >= {f"child-{i}" for i in range(10)} | {"parent-0", "parent-1"}
    spool.shutdown(timeout=2)


def test_corrupt_lines_in_a_dead_process_journal_are_counted_and_skipped(
    spool_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    stats.reset()
    intake = spool_path.with_name(spool_path.name + ".intake")
    intake.mkdir(parents=True)
    good = [f"good-{i}" for i in range(8)]
    nul_damaged = bytearray(encode_record(record("nul"), "nul", RESOURCE, ("t", None)))
    nul_damaged[20] = 0  # one NUL byte inside a line
    lines = [
        encode_resource(RESOURCE),
        encode_record(record(good[0]), good[0], RESOURCE, ("t", None)),
        b"garbage line\n",
        encode_record(record(good[1]), good[1], RESOURCE, ("t", None)),
        bytes(nul_damaged),
        *(encode_record(record(g), g, RESOURCE, ("t", None)) for g in good[2:5]),
        b"\0" * 64 + b"\n",  # a zeroed stretch between two lines
        *(encode_record(record(g), g, RESOURCE, ("t", None)) for g in good[5:]),
        encode_record(record("torn"), "torn", RESOURCE, ("t", None))[:40],  # cut mid-line
    ]
    # A journal of an owner with no lock file and no such pid: a process that is gone.
    (intake / f"999999999-deadbeef0000.000001{JOURNAL_SUFFIX}").write_bytes(
        b"".join(lines) + b"\0" * 100
    )
    exporter = RecordingExporter()
    spool = make_spool(spool_path, exporter)
    assert spool.flush(timeout=10)
    assert sorted(exporter.ids()) == good  # every good line, also those after the damage
    assert stats.snapshot()["outcome_spool.corrupt_lines"] == 3  # garbage, NUL, torn
    assert not list(intake.glob("999999999-*"))  # taken over, then removed
    err = capfd.readouterr().err
    assert "otel-runctx: outcome_spool.corrupt_lines" in err and "skipped 3 damaged" in err
    spool.shutdown(timeout=2)


def test_clean_shutdown_leaves_no_journal_or_lock(spool_path: Path) -> None:
    spool = make_spool(spool_path, RecordingExporter())
    spool.append(record("x"), "x", RESOURCE, ("t", None))
    assert spool.flush(timeout=10)
    spool.shutdown(timeout=2)
    assert list(spool.intake_directory.iterdir()) == []


def test_outcome_exporter_from_env_spools_and_delivers(
    spool_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs = install_log_exporter()
    assert flush_outcome_events(5)  # an earlier test's outcome still on the hand-off thread
    logs.clear()
    exporter = RecordingExporter()
    runctx_settings.reload_settings({"OTEL_RUNCTX_OUTCOME_SPOOL": str(spool_path)})
    monkeypatch.setattr(
        "otel_runctx.exporters.outcome.build_otlp_log_exporter", lambda settings=None: exporter
    )
    try:
        outcome_exporter = OutcomeExporter()
        assert outcome_exporter.spool is not None and get_active_spool() is outcome_exporter.spool
        with run("env", event_id="S-9", customer_id="acme") as ctx:
            pass
        assert outcome_exporter.force_flush(10_000)
        (delivered,) = exporter.received
        assert delivered.log_record.attributes is not None
        assert delivered.log_record.attributes["runctx.run_id"] == ctx.run_id
        assert delivered.log_record.event_name == OUTCOME_EVENT_NAME
        # The same record also went through the global LoggerProvider, from the helper thread.
        assert flush_outcome_events(5)
        assert [r.log_record.attributes["runctx.run_id"] for r in outcome_records(logs)] == [
            ctx.run_id
        ]
        # With the spool on, export() has nothing to send: emit_outcome spooled it already.
        assert outcome_exporter.export(outcome_records(logs)) == LogRecordExportResult.SUCCESS
        assert len(exporter.received) == 1
        outcome_exporter.shutdown()
        assert get_active_spool() is None
    finally:
        runctx_settings.reload_settings()


def test_outcome_exporter_without_spool_sends_outcomes_directly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exporter = RecordingExporter()
    previous = activate_spool(None)
    runctx_settings.reload_settings({"OTEL_RUNCTX_OUTCOME_SPOOL": "off"})
    monkeypatch.setattr(
        "otel_runctx.exporters.outcome.build_otlp_log_exporter", lambda settings=None: exporter
    )
    try:
        outcome_exporter = OutcomeExporter()
        assert outcome_exporter.spool is None
        logs = install_log_exporter()
        logs.clear()
        with run("direct", event_id="S-10", customer_id="acme"):
            pass
        batch = logs.get_finished_logs()
        assert outcome_exporter.export(batch) == LogRecordExportResult.SUCCESS
        assert [r.log_record.event_name for r in exporter.received] == [OUTCOME_EVENT_NAME]
    finally:
        activate_spool(previous)
        runctx_settings.reload_settings()


def test_entry_point_is_registered() -> None:
    from importlib.metadata import entry_points

    (entry,) = [
        e for e in entry_points(group="opentelemetry_logs_exporter") if e.name == "runctx_outcome"
    ]
    assert entry.load() is OutcomeExporter


def test_a_live_owner_is_never_taken_for_dead(spool_path: Path) -> None:
    from otel_runctx.outcomes.journal import IntakeJournal, owner_is_alive

    journal = IntakeJournal(spool_path.parent / "intake")
    assert owner_is_alive(journal.directory, journal.owner)  # its lock exists and is held
    assert list(journal.orphan_files()) == []
    assert not owner_is_alive(journal.directory, "12345-000000000000")  # no such owner
    journal.close(remove_lock=True)
    assert not owner_is_alive(journal.directory, journal.owner)


def test_full_segments_roll_over_and_are_removed_once_stored(
    spool_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from otel_runctx.outcomes import journal

    monkeypatch.setattr(journal, "SEGMENT_BYTES", 4096)
    exporter = RecordingExporter()
    spool = make_spool(spool_path, exporter, poll_interval=60)
    assert spool.flush(timeout=10)  # the worker's first cycle is done: it sleeps until flush()
    for i in range(100):
        spool.append(record(f"roll-{i}", "x" * 200), f"roll-{i}", RESOURCE, ("t", None))
    assert len(list(spool.intake_directory.glob("*.journal"))) > 5
    assert spool.flush(timeout=10)
    assert sorted(exporter.ids()) == sorted(f"roll-{i}" for i in range(100))
    # Only the current segment and the spare the worker prepared remain.
    assert len(list(spool.intake_directory.glob("*.journal"))) == 2
    spool.shutdown(timeout=2)


def test_many_threads_rolling_segments_under_a_busy_worker_lose_nothing(
    spool_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from otel_runctx.outcomes import journal

    stats.reset()
    monkeypatch.setattr(journal, "SEGMENT_BYTES", 8192)  # a new segment every ~15 records
    exporter = RecordingExporter()
    spool = make_spool(spool_path, exporter, poll_interval=0.001)

    def writer(n: int) -> None:
        for i in range(300):
            oid = f"t{n}-{i}"
            assert spool.append(record(oid, "x" * 300), oid, RESOURCE, ("t", None))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert spool.flush(timeout=30)
    assert sorted(set(exporter.ids())) == sorted(f"t{n}-{i}" for n in range(4) for i in range(300))
    assert not any(name.startswith("errors.") for name in stats.snapshot())
    spool.shutdown(timeout=2)


def test_outcome_appended_while_the_worker_is_mid_cycle_is_sent_at_shutdown(
    spool_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A short script: its only outcome is appended while the worker's first cycle (which
    # ingested nothing yet) is still running, and the process exits at once. Seen in CI: the
    # worker saw the stop at the end of that cycle and quit, leaving the outcome for "next start".
    appended = threading.Event()
    real_lease = SpoolStore.lease
    calls = 0

    def lease_after_the_append(store: SpoolStore, *args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        if calls == 1:  # the first cycle: hold it until the append and the stop have happened
            appended.wait(5)
            eventually(lambda: spool._worker.stopping, timeout=5)
        return real_lease(store, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(SpoolStore, "lease", lease_after_the_append)
    exporter = RecordingExporter()
    spool = make_spool(spool_path, exporter, poll_interval=60)
    eventually(lambda: calls == 1)
    assert spool.append(record("last"), "last", RESOURCE, ("t", None))
    appended.set()
    spool.shutdown(timeout=4)
    assert exporter.ids() == ["last"]
    assert pending(spool_path) == 0
