"""Fork safety of the spool: a child never removes or rewrites what belongs to its parent.

Before: a child that exited normally without emitting closed the inherited journal with
``remove_lock=True``, deleting the parent's lock file; another process then took the live parent
for dead and unlinked its journal. Each test forks a real child.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from otel_runctx.outcomes.active import activate_spool, stop_delivery
from otel_runctx.outcomes.journal import LOCK_SUFFIX, owner_is_alive
from tests.test_spool import RESOURCE, RecordingExporter, eventually, make_spool, record

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")


def _fork(child: object) -> int:
    """Fork; the child runs ``child()`` and leaves with os._exit (status 0 unless it raised)."""
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            child()  # type: ignore[operator]
            status = 0
        finally:
            os._exit(status)
    return pid


def _exit_status(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_a_child_that_exits_normally_leaves_the_parents_journal_alone(tmp_path: Path) -> None:
    exporter = RecordingExporter(failing=True)  # the parent's rows stay pending throughout
    spool = make_spool(tmp_path / "outcomes.sqlite3", exporter)
    delivery = activate_spool(None)
    activate_spool(spool)
    try:
        for i in range(5):
            assert spool.append(record(f"p-{i}"), f"p-{i}", RESOURCE, ("t", None))
        lock = spool.intake_directory / f"{spool.owner}{LOCK_SUFFIX}"
        journals = sorted(spool.intake_directory.glob(f"{spool.owner}.*.journal"))
        assert lock.exists() and journals

        def leave_normally() -> None:
            # What the child's exit does: the provider's shutdown reaches the delivery.
            from otel_runctx.outcomes.active import get_active_delivery

            active = get_active_delivery()
            assert active is not None
            stop_delivery(active, timeout=2)

        assert _exit_status(_fork(leave_normally)) == 0
        assert lock.exists(), "the child removed the parent's lock file"
        assert owner_is_alive(spool.intake_directory, spool.owner)
        assert all(path.exists() for path in journals)
        # Another process's spool on the same path must not take the live parent's journal.
        other = make_spool(tmp_path / "outcomes.sqlite3", RecordingExporter(failing=True))
        # Its first cycles (each with an orphan scan at start) are done; it cannot drain,
        # since its exporter fails too.
        eventually(lambda: other._worker._cycle >= 3, timeout=10)
        assert all(path.exists() for path in journals)
        other.shutdown(timeout=2)
        # The parent keeps emitting, and everything reaches the collector once it is back.
        for i in range(5, 10):
            assert spool.append(record(f"p-{i}"), f"p-{i}", RESOURCE, ("t", None))
        exporter.failing = False
        assert spool.flush(timeout=10)
        assert sorted(exporter.ids()) == sorted(f"p-{i}" for i in range(10))
    finally:
        activate_spool(delivery)
        spool.shutdown(timeout=2)


def test_outcomes_of_a_sigkilled_child_are_delivered_and_the_parent_goes_on(
    tmp_path: Path,
) -> None:
    exporter = RecordingExporter()
    spool = make_spool(tmp_path / "outcomes.sqlite3", exporter, orphan_scan_interval=0.05)
    assert spool.append(record("parent-0"), "parent-0", RESOURCE, ("t", None))
    assert spool.flush(timeout=10)
    parent_journals = sorted(spool.intake_directory.glob(f"{spool.owner}.*.journal"))

    def emit_then_die() -> None:
        for i in range(20):
            assert spool.append(record(f"child-{i}"), f"child-{i}", RESOURCE, ("t", None))
        os.kill(os.getpid(), signal.SIGKILL)

    assert _exit_status(_fork(emit_then_die)) == -signal.SIGKILL
    for i in range(1, 10):
        assert spool.append(record(f"parent-{i}"), f"parent-{i}", RESOURCE, ("t", None))
    wanted = {f"child-{i}" for i in range(20)} | {f"parent-{i}" for i in range(10)}
    eventually(lambda: set(exporter.ids()) >= wanted, timeout=20)  # the parent took over
    assert all(path.exists() for path in parent_journals)  # its own journal untouched
    assert owner_is_alive(spool.intake_directory, spool.owner)
    spool.shutdown(timeout=2)


def test_a_child_that_emits_gets_its_own_owner_and_never_writes_the_parents_segment(
    tmp_path: Path,
) -> None:
    exporter = RecordingExporter(failing=True)
    spool = make_spool(tmp_path / "outcomes.sqlite3", exporter)
    assert spool.append(record("before"), "before", RESOURCE, ("t", None))
    parent_segments = {path: path.read_bytes() for path in spool.intake_directory.glob("*.journal")}
    read_end, write_end = os.pipe()

    def emit_and_report() -> None:
        os.close(read_end)
        assert spool.append(record("in-child"), "in-child", RESOURCE, ("t", None))
        os.write(write_end, spool.owner.encode())
        spool.shutdown(timeout=2)

    pid = _fork(emit_and_report)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        child_owner = pipe.read().decode()
    assert _exit_status(pid) == 0
    assert child_owner and child_owner != spool.owner
    for path, content in parent_segments.items():
        assert path.read_bytes() == content, f"{path.name} changed in the child"
    exporter.failing = False
    assert spool.flush(timeout=10)
    assert {"before", "in-child"} <= set(exporter.ids())
    spool.shutdown(timeout=2)


def test_a_fork_while_another_thread_is_inside_sqlite_leaves_the_child_able_to_open_a_store(
    tmp_path: Path,
) -> None:
    # SQLite's process-wide mutexes, copied locked into a child forked mid-call, made the
    # child's first connect wait forever; the store's at-fork guard lets the call finish first.
    from otel_runctx.outcomes.store import SpoolStore

    busy = SpoolStore(tmp_path / "busy.sqlite3", 1 << 20)
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            busy.pending()
            busy.checkpoint()

    worker = threading.Thread(target=hammer, daemon=True)
    worker.start()
    children = []
    try:
        for index in range(40):
            path = tmp_path / f"child-{index}.sqlite3"
            children.append(_fork(lambda path=path: SpoolStore(path, 1 << 20).close()))
        deadline = time.monotonic() + 30
        hung = []
        for pid in children:
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    assert os.waitstatus_to_exitcode(status) == 0
                    break
                if time.monotonic() > deadline:
                    hung.append(pid)
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    break
                time.sleep(0.01)
        assert hung == []
    finally:
        stop.set()
        worker.join(5)
        busy.close()
