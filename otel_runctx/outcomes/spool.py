"""OutcomeSpool: outcome records written to disk on the caller's thread, sent by a worker.

Path of one outcome: ``append`` writes one line to this process's intake journal (before
``emit_outcome`` returns) → the worker ingests journal lines into the SQLite store in batches →
leases the oldest rows → sends them with a stock OTLP log exporter → deletes them only when the
export succeeded (the collector acknowledged). A failed export releases the rows and the worker
backs off exponentially (0.5 s doubling to ``max_backoff``). On start, and every few seconds, the
worker also takes over the journals and leases of processes that died. Delivery is at least
once: a record can be sent twice (e.g. a crash after the send, before the delete), never zero
times unless the size cap drops it, and that is counted and logged.
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from opentelemetry._logs import LogRecord
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.resources import Resource

from otel_runctx.outcomes.background import background
from otel_runctx.outcomes.journal import IntakeJournal, owner_is_alive, read_complete_lines
from otel_runctx.outcomes.records import (
    decode_body,
    decode_record,
    decode_resource,
    encode_record,
    encode_resource,
    resource_digest,
    split_line,
)
from otel_runctx.outcomes.store import SpoolRow, SpoolStore
from otel_runctx.stats import count, report_error

__all__ = ["OutcomeSpool"]

ExporterFactory = Callable[[], LogRecordExporter]

#: Appends after which the worker is woken before its poll interval is up.
WAKE_BACKLOG = 512

# Connections and files a forked child inherited: kept referenced, never closed, because
# closing them in the child could disturb the parent's database.
_abandoned: list[Any] = []
_spools: weakref.WeakSet[OutcomeSpool] = weakref.WeakSet()


class OutcomeSpool:
    """A durable, bounded, at-least-once queue of outcome records in front of an exporter."""

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int,
        exporter_factory: ExporterFactory,
        batch_size: int = 128,
        poll_interval: float = 0.2,
        lease_seconds: float = 60.0,
        max_backoff: float = 30.0,
        orphan_scan_interval: float = 5.0,
    ) -> None:
        self.path = path
        self.intake_directory = path.with_name(path.name + ".intake")
        self.max_bytes = max_bytes
        self._exporter_factory = exporter_factory
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._lease_seconds = lease_seconds
        self._max_backoff = max_backoff
        self._orphan_scan_interval = orphan_scan_interval
        self._setup()
        _spools.add(self)
        self._ensure_worker()

    def _setup(self) -> None:
        self._setup_lock = threading.Lock()
        self._journal = IntakeJournal(self.intake_directory)
        self._store = SpoolStore(self.path, self.max_bytes)
        self._needs_setup = False
        self._wake = threading.Event()
        self._backlog = 0
        self._stopping = False
        self._worker: threading.Thread | None = None
        self._exporter: LogRecordExporter | None = None
        self._resources: dict[int, Resource] = {}
        self._cond = threading.Condition()
        self._cycle = 0
        self._drained_cycle = -1
        # issue 10: outcome id -> monotonic time its pending record may be sent anyway.
        self._held: dict[str, float] = {}

    # -- the caller's side ---------------------------------------------------------------------

    def append(
        self,
        record: LogRecord,
        outcome_id: str,
        resource: Resource,
        scope: tuple[str, str | None],
        *,
        hold_seconds: float | None = None,
        replaces: bool = False,
    ) -> bool:
        """Write ``record`` to disk now; the worker sends it later. Never raises.

        Returns False when the record was not written (the caller then emits it the ordinary
        way): after ``shutdown()``, or on an error (counted and logged).

        Early outcomes (issue 10): ``hold_seconds`` writes a *pending* record the worker does
        not send for that long (or until this process dies: another process then sends it);
        a later ``append(..., replaces=True)`` with the same outcome id writes the final
        record, which takes the pending one's place and releases the hold.
        """
        if self._stopping:
            count("outcome_spool.after_shutdown")
            return False
        try:
            if self._needs_setup:
                self._setup_after_fork()
            if hold_seconds is not None:
                self._held[outcome_id] = time.monotonic() + hold_seconds
            self._journal.append(
                encode_record(record, outcome_id, resource, scope, replaces=replaces),
                encode_resource(resource),  # cached per resource; written once per segment
                resource_digest(resource),
            )
            count("outcome_spool.appended")
        except Exception as error:
            report_error("outcome_spool.append", error)
            return False
        if self._worker is None:
            self._ensure_worker()
        # The worker wakes every poll interval; it is woken early only for a large backlog,
        # because each early wake-up is a burst of Python work competing with callers for the GIL.
        self._backlog += 1
        if self._backlog >= WAKE_BACKLOG:
            self._wake.set()
        return True

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything appended so far was sent (True) or ``timeout`` passed."""
        if self._needs_setup:
            self._setup_after_fork()
        self._ensure_worker()
        with self._cond:
            target = self._cycle + 1
            self._wake.set()
            return self._cond.wait_for(lambda: self._drained_cycle >= target, timeout)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop the worker after a last attempt to send; unsent records stay for the next start."""
        self._stopping = True
        self._wake.set()
        worker = self._worker
        if worker is not None:
            worker.join(timeout / 2)
            exporter = self._exporter
            if worker.is_alive() and exporter is not None:
                with contextlib.suppress(Exception):
                    exporter.shutdown()  # type: ignore[no-untyped-call]  # aborts the stock exporter's retry sleep
                worker.join(timeout / 2)
            if worker.is_alive():
                return  # still sending: leave the files to it (or to the next start)
        try:
            # The worker is gone, so its connection is free: move the rest of this process's
            # journals into the store, then remove them and the owner lock.
            self._journal.seal()
            for path, _ in self._journal.own_segments():
                self._ingest_own_segment(path, finished=True)
            self._journal.close(remove_lock=True)
        except Exception as error:
            report_error("outcome_spool.shutdown", error)

    # -- fork ----------------------------------------------------------------------------------

    def _after_fork_in_child(self) -> None:
        # Only cheap work here: the parent's worker thread does not exist in the child, and its
        # locks may have been held at fork time. Files and a new connection come on first use.
        _abandoned.append(self._store.abandon())
        self._journal.abandon_after_fork()
        self._setup_lock = threading.Lock()
        self._worker = None
        self._needs_setup = True

    def _setup_after_fork(self) -> None:
        with self._setup_lock:
            if self._needs_setup:
                self._setup()

    # -- the worker ----------------------------------------------------------------------------

    def _ensure_worker(self) -> None:
        with self._setup_lock:
            if self._worker is None and not self._stopping:
                self._worker = threading.Thread(
                    target=self._run, name="otel-runctx-outcome-spool", daemon=True
                )
                self._worker.start()

    def _run(self) -> None:
        # issue 10: the worker's exports are our traffic, never a run's (see background()).
        with background():
            self._work()

    def _work(self) -> None:
        backoff = 0.0
        next_orphan_scan = 0.0
        while True:
            self._wake.clear()
            self._backlog = 0
            with self._cond:
                self._cycle += 1
                cycle = self._cycle
            try:
                self._ingest_own()
                if time.monotonic() >= next_orphan_scan:
                    self._ingest_orphans()
                    next_orphan_scan = time.monotonic() + self._orphan_scan_interval
                rows = self._store.lease(
                    self._journal.owner,
                    self._batch_size,
                    self._lease_seconds,
                    lambda owner: owner_is_alive(self.intake_directory, owner),
                    self._still_held(),
                )
                if rows:
                    if self._send(rows):
                        backoff = 0.0
                        time.sleep(0)
                        continue
                    if self._stopping:
                        return
                    backoff = min(max(0.5, backoff * 2), self._max_backoff)
                    self._wake.wait(backoff * random.uniform(0.8, 1.2))
                    continue
                with self._cond:
                    self._drained_cycle = cycle
                    self._cond.notify_all()
                if self._stopping:
                    return
                self._wake.wait(self._poll_interval)
            except Exception as error:
                report_error("outcome_spool.worker", error)
                if self._stopping:
                    return
                self._wake.wait(1.0)

    def _ingest_own(self) -> None:
        for path, current in self._journal.own_segments():
            self._ingest_own_segment(path, finished=not current)
        self._journal.prepare_spare()

    def _ingest_own_segment(self, path: Path, *, finished: bool) -> None:
        offset = self._store.journal_offset(path.name)
        lines, end = self._journal.read_own(path, offset)
        self._ingest_lines(path, lines, end)
        if finished and self._journal.retire(path):
            self._store.forget_journal(path.name)

    def _ingest_orphans(self) -> None:
        for owner, paths in self._journal.orphan_files():
            for path in paths:
                self._ingest_file(path, finished=True)
            self._journal.forget_owner(owner)

    def _ingest_file(self, path: Path, *, finished: bool) -> None:
        """Take over a journal file another (dead) process left."""
        offset = self._store.journal_offset(path.name)
        lines, end = read_complete_lines(path, offset)
        self._ingest_lines(path, lines, end)
        if finished:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            self._store.forget_journal(path.name)

    def _still_held(self) -> list[str]:
        """Outcome ids whose pending record must not be sent yet (expired holds are dropped)."""
        if not self._held:
            return []
        now = time.monotonic()
        for outcome_id, until in list(self._held.items()):
            if until <= now:
                self._held.pop(outcome_id, None)
        return list(self._held)

    def _ingest_lines(self, path: Path, lines: list[bytes], end: int) -> None:
        if lines:
            resources: list[tuple[str, bytes]] = []
            rows: list[tuple[str, str, bytes]] = []
            finals: list[tuple[str, str, bytes]] = []
            for line in lines:
                try:
                    kind, outcome_id, digest, body = split_line(line)
                    if kind == "r":
                        resources.append((digest, body))
                    elif kind == "f":
                        finals.append((outcome_id, digest, body))
                    else:
                        rows.append((outcome_id, digest, body))
                except Exception:
                    count("outcome_spool.corrupt_lines")
            _, dropped = self._store.ingest(resources, rows, (path.name, end), finals)
            for outcome_id, _, _ in finals:  # stored in place of the pending one: release it
                self._held.pop(outcome_id, None)
            if dropped:
                count("outcome_spool.dropped", dropped)
                report_error(
                    "outcome_spool.full",
                    message=f"the spool is over {self.max_bytes} bytes; dropped the {dropped} "
                    f"oldest outcome(s) (counted as outcome_spool.dropped)",
                )

    def _send(self, rows: Sequence[SpoolRow]) -> bool:
        records: list[ReadableLogRecord] = []
        sendable: list[int] = []
        corrupt: list[int] = []
        for index, row in enumerate(rows):
            if index % 16 == 15:
                time.sleep(0)  # let callers have the GIL: see outcome_events
            try:
                records.append(
                    decode_record(decode_body(row.payload), self._resource(row.resource_id))
                )
                sendable.append(row.seq)
            except Exception:
                corrupt.append(row.seq)
        if corrupt:
            count("outcome_spool.corrupt_rows", len(corrupt))
            self._store.delete(corrupt)
        if not records:
            return True
        try:
            if self._exporter is None:
                self._exporter = self._exporter_factory()
            result = self._exporter.export(records)
        except Exception as error:
            report_error("outcome_spool.export", error)
            result = LogRecordExportResult.FAILURE
        if result is LogRecordExportResult.SUCCESS:
            self._store.delete(sendable)
            count("outcome_spool.delivered", len(sendable))
            return True
        count("outcome_spool.export_failures")
        self._store.release(sendable)
        return False

    def _resource(self, resource_id: int) -> Resource:
        resource = self._resources.get(resource_id)
        if resource is None:
            payload = self._store.resource_payload(resource_id)
            if payload is None:
                raise LookupError(f"resource {resource_id} is missing")
            resource = self._resources[resource_id] = decode_resource(decode_body(payload))
        return resource

    # -- inspection ----------------------------------------------------------------------------

    @property
    def owner(self) -> str:
        return self._journal.owner


def _after_fork_in_child() -> None:
    for spool in list(_spools):
        with contextlib.suppress(Exception):
            spool._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
