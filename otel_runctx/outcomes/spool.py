"""OutcomeSpool: outcome records written to disk on the caller's thread, sent by a worker.

Path of one outcome: ``append`` writes one line to this process's intake journal (before
``emit_outcome`` returns; :mod:`journal`) → the worker (:mod:`worker`) moves journal lines into
the SQLite store in batches (:mod:`intake`, :mod:`store`) → sends the oldest rows with a stock
OTLP log exporter (this process's own records as the objects appended, when nothing else holds
them: :mod:`handoff`) → deletes them only once the collector acknowledged. Delivery is at least
once: a record can be sent twice (a crash after the send, before the delete), never zero times
unless the size cap drops it, and that is counted and said on stderr.

A spool that cannot start raises :class:`SpoolUnavailable` from the constructor; an append that
cannot be written (disk full) returns False, and the caller sends that outcome directly.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from pathlib import Path
from typing import Any

from opentelemetry._logs import LogRecord
from opentelemetry.sdk.resources import Resource

from otel_runctx.outcomes.intake import JournalIntake
from otel_runctx.outcomes.journal import IntakeJournal
from otel_runctx.outcomes.location import SpoolUnavailable, check_spool_location
from otel_runctx.outcomes.records import encode_record, encode_resource, resource_digest
from otel_runctx.outcomes.store import SpoolStore
from otel_runctx.outcomes.worker import ExporterFactory, SpoolWorker
from otel_runctx.stats import count, report_error

__all__ = ["OutcomeSpool", "SpoolUnavailable"]

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
        self._options: dict[str, Any] = {
            "batch_size": batch_size,
            "poll_interval": poll_interval,
            "lease_seconds": lease_seconds,
            "max_backoff": max_backoff,
            "orphan_scan_interval": orphan_scan_interval,
        }
        self.exporter_factory = exporter_factory
        self._setup()
        _spools.add(self)
        self._ensure_worker()

    def _setup(self) -> None:
        self._setup_lock = threading.Lock()
        check_spool_location(self.path, self.intake_directory)
        try:
            journal = IntakeJournal(self.intake_directory)
        except OSError as error:
            raise SpoolUnavailable(f"the intake journal cannot be created: {error}") from error
        try:
            store = SpoolStore(self.path, self.max_bytes)
        except Exception as error:
            journal.close(remove_lock=True)
            raise SpoolUnavailable(f"the spool database cannot be opened: {error}") from error
        self._journal = journal
        self._store = store
        self._worker = SpoolWorker(
            JournalIntake(journal, store), self.exporter_factory, **self._options
        )
        self._needs_setup = False
        self._stopping = False
        self._thread: threading.Thread | None = None

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
        sole_owner: bool = False,
    ) -> bool:
        """Write ``record`` to disk now; the worker sends it later. Never raises.

        Returns False when the record was not written (the caller then sends it directly):
        after ``shutdown()``, or on an error such as a full disk (counted and said).

        Early outcomes (issue 10): ``hold_seconds`` writes a *pending* record the worker does
        not send for that long (or until this process dies: another process then sends it);
        a later ``append(..., replaces=True)`` with the same outcome id writes the final
        record, which takes the pending one's place and releases the hold.

        ``sole_owner``: nothing else in this process reads or changes ``record`` after this
        call, so the worker may send this very object instead of decoding its line (see
        :mod:`otel_runctx.outcomes.handoff`); the journal line stays the durable copy.
        """
        if self._stopping:
            count("outcome_spool.after_shutdown")
            return False
        try:
            if self._needs_setup:
                self._setup_after_fork()
            if hold_seconds is not None:
                self._worker.intake.hold(outcome_id, hold_seconds)
            elif sole_owner and not replaces:
                # Offered before its line is written, so the worker never reads the line of an
                # offer not made yet; an offer whose line never comes is forgotten unused.
                self._worker.handoff.offer(outcome_id, record, resource, scope)
            self._journal.append(
                encode_record(record, outcome_id, resource, scope, replaces=replaces),
                encode_resource(resource),  # cached per resource; written once per segment
                resource_digest(resource),
            )
            count("outcome_spool.appended")
        except Exception as error:
            count("outcome_spool.not_spooled")
            report_error(
                "outcome_spool.append", error, "this outcome was not spooled; it is sent directly"
            )
            return False
        if self._thread is None:
            self._ensure_worker()
        # The worker wakes every poll interval; it is woken early only for a large backlog,
        # because each early wake-up is a burst of Python work competing with callers for the GIL.
        worker = self._worker
        worker.backlog += 1
        if worker.backlog >= WAKE_BACKLOG:
            worker.wake.set()
        return True

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything appended so far was sent (True) or ``timeout`` passed."""
        if self._needs_setup:
            self._setup_after_fork()
        self._ensure_worker()
        return self._worker.wait_drained(timeout)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop the worker after a last attempt to send; unsent records stay for the next start."""
        self._stopping = True
        if self._needs_setup or not self._journal.is_mine():
            return  # a forked child that never spooled: everything here is the parent's
        worker, thread = self._worker, self._thread
        worker.stopping = True
        worker.wake.set()
        if thread is not None:
            thread.join(timeout / 2)
            exporter = worker.exporter
            if thread.is_alive() and exporter is not None:
                with contextlib.suppress(Exception):
                    exporter.shutdown()  # type: ignore[no-untyped-call]  # aborts the stock exporter's retry sleep
                thread.join(timeout / 2)
            if thread.is_alive():
                return  # still sending: leave the files to it (or to the next start)
        try:
            # The worker is gone, so its connection is free: move the rest of this process's
            # journals into the store, then remove them and the owner lock.
            self._journal.seal()
            worker.intake.ingest_own(everything=True)
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
        self._thread = None
        self._needs_setup = True

    def _setup_after_fork(self) -> None:
        with self._setup_lock:
            if self._needs_setup:
                self._setup()

    def _ensure_worker(self) -> None:
        with self._setup_lock:
            if self._thread is None and not self._stopping:
                self._thread = threading.Thread(
                    target=self._worker.run, name="otel-runctx-outcome-spool", daemon=True
                )
                self._thread.start()

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
