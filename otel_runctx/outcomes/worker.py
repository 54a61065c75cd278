"""The spool's worker thread: journal lines into the store, the oldest rows to the collector.

One cycle: ingest this process's new journal lines (and, every few seconds, dead owners'
journals) → lease the oldest rows → send them with a stock OTLP log exporter → delete them only
when the export succeeded (the collector acknowledged). A failed export releases the rows and
the worker backs off exponentially (0.5 s doubling to ``max_backoff``).

This process's new outcomes usually skip the store: the fast lane sends them from memory as
their journal lines are read, and stores them only if that export fails. The lane is shut
while rows left by an earlier process wait at start, and after a refused export until a send
from the store succeeds. The thread runs in a
quiet context (see :mod:`otel_runctx.outcomes.background`), so its sends are never traced.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.resources import Resource

from otel_runctx.outcomes.background import background
from otel_runctx.outcomes.handoff import MemoryHandoff
from otel_runctx.outcomes.intake import JournalIntake
from otel_runctx.outcomes.journal import owner_is_alive
from otel_runctx.outcomes.records import decode_body, decode_record, decode_resource
from otel_runctx.outcomes.store import SpoolRow
from otel_runctx.stats import count, report_error

__all__ = ["ExporterFactory", "SpoolWorker"]

ExporterFactory = Callable[[], LogRecordExporter]


class SpoolWorker:
    """The loop one ``OutcomeSpool`` runs on its thread; owns the store's connection."""

    def __init__(
        self,
        intake: JournalIntake,
        exporter_factory: ExporterFactory,
        *,
        batch_size: int,
        poll_interval: float,
        lease_seconds: float,
        max_backoff: float,
        orphan_scan_interval: float,
    ) -> None:
        self.intake = intake
        self.store = intake.store
        self._exporter_factory = exporter_factory
        self.exporter: LogRecordExporter | None = None
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._lease_seconds = lease_seconds
        self._max_backoff = max_backoff
        self._orphan_scan_interval = orphan_scan_interval
        self._resources: dict[int, Resource] = {}
        #: This process's records, offered by ``OutcomeSpool.append`` (see outcomes/handoff.py).
        self.handoff = MemoryHandoff()
        self.wake = threading.Event()
        self.stopping = False
        self.backlog = 0
        self._cond = threading.Condition()
        self._cycle = 0
        self._drained_cycle = -1
        # The fast lane: this process's new outcomes, read from the journal, are sent from
        # memory without being stored (see _send_fresh). Shut at start while the store holds
        # rows (left by an earlier process: they go first) and after a refused export; opened
        # by a successful send or a lease that finds nothing.
        self._lane_open = False
        self._lane_failed = False

    def wait_drained(self, timeout: float) -> bool:
        """Wait for a cycle that started after this call to find nothing left to send."""
        with self._cond:
            target = self._cycle + 1
            self.wake.set()
            return self._cond.wait_for(lambda: self._drained_cycle >= target, timeout)

    def run(self) -> None:
        with background():  # our exports are our traffic, never a run's
            self._loop()

    def _loop(self) -> None:
        backoff = 0.0
        next_orphan_scan = 0.0
        try:  # an empty store has nothing older to send first: the lane opens at once
            self._lane_open = self.store.pending() == 0
        except Exception as error:
            report_error("outcome_spool.worker", error)
        while True:
            self.wake.clear()
            self.backlog = 0
            # A stop asked for during a cycle gets one more: what was appended just before the
            # stop (a short script's only outcome) is ingested and sent, not left for next start.
            last_cycle = self.stopping
            with self._cond:
                self._cycle += 1
                cycle = self._cycle
            try:
                self._lane_failed = False
                ingested = self._ingest(time.monotonic() >= next_orphan_scan)
                if time.monotonic() >= next_orphan_scan:
                    next_orphan_scan = time.monotonic() + self._orphan_scan_interval
                if self._lane_failed:  # the collector refused: its rows are stored; back off
                    self._lane_open = False
                    if self.stopping:
                        return
                    backoff = self._back_off(backoff)
                    continue
                rows = self.store.lease(
                    self.intake.journal.owner,
                    self._batch_size,
                    self._lease_seconds,
                    lambda owner: owner_is_alive(self.intake.journal.directory, owner),
                    self.intake.still_held(),
                )
                if rows:
                    # The lane stays shut after a refused export until the store's own send
                    # gets through (then it is the collector that is back, not the lane).
                    self._lane_open = self._send(rows)
                    if self._lane_open:
                        backoff = 0.0
                        time.sleep(0)
                        continue
                    if self.stopping:
                        return
                    backoff = self._back_off(backoff)
                    continue
                self._lane_open = True  # nothing stored is waiting, and nothing was refused
                self.handoff.forget()
                if ingested:  # lines still in a journal are not sent yet: not drained
                    with self._cond:
                        self._drained_cycle = cycle
                        self._cond.notify_all()
                if last_cycle:
                    return
                if self.stopping:
                    continue
                self.wake.wait(self._poll_interval if ingested else 1.0)
            except Exception as error:
                report_error("outcome_spool.worker", error)
                if self.stopping:
                    return
                self.wake.wait(1.0)

    def _back_off(self, backoff: float) -> float:
        """Wait after a failed export (0.5 s, doubling to ``max_backoff``, with jitter); return
        the new backoff. A wake (a flush, a stop) ends the wait early."""
        backoff = min(max(0.5, backoff * 2), self._max_backoff)
        self.wake.wait(backoff * random.uniform(0.8, 1.2))
        return backoff

    def _ingest(self, orphans: bool) -> bool:
        # A failing ingest (e.g. the store's disk is full) must not stop the sending of rows
        # already stored: the journal lines stay where they are, on reserved blocks.
        try:
            self.intake.ingest_own(fresh=self._send_fresh if self._lane_open else None)
            if orphans:
                self.intake.ingest_orphans()
        except Exception as error:
            report_error("outcome_spool.ingest", error)
            return False
        return True

    def _send(self, rows: Sequence[SpoolRow]) -> bool:
        records: list[ReadableLogRecord] = []
        sendable: list[int] = []
        corrupt: list[int] = []
        # Every offer made so far: offers precede their journal lines, so any leased row that
        # was offered is in the table now.
        self.handoff.collect()
        for index, row in enumerate(rows):
            if index % 16 == 15:
                time.sleep(0)  # let callers have the GIL: see outcome_events
            try:
                record = self.handoff.take(row.outcome_id)
                if record is None:
                    record = decode_record(
                        decode_body(row.payload), self._resource(row.resource_id)
                    )
                records.append(record)
                sendable.append(row.seq)
            except Exception:
                corrupt.append(row.seq)
        if corrupt:
            count("outcome_spool.corrupt_rows", len(corrupt))
            report_error(
                "outcome_spool.corrupt_rows",
                message=f"{len(corrupt)} stored outcome(s) could not be decoded and were removed",
            )
            self.store.delete(corrupt)
        if not records:
            return True
        try:
            if self.exporter is None:
                self.exporter = self._exporter_factory()
            result = self.exporter.export(records)
        except Exception as error:
            report_error("outcome_spool.export", error)
            result = LogRecordExportResult.FAILURE
        if result is LogRecordExportResult.SUCCESS:
            self.store.delete(sendable)
            count("outcome_spool.delivered", len(sendable))
            return True
        count("outcome_spool.export_failures")
        self.store.release(sendable)
        return False

    def _send_fresh(self, outcome_ids: Sequence[str]) -> set[str]:
        """Send the offered records among ``outcome_ids`` (just read from this process's
        journal) straight to the collector; return the ids it acknowledged.

        Their journal lines are the durable copy until the intake records them as read, right
        after this, so they are never stored at all: no insert, lease or delete per outcome.
        On a failed export nothing is delivered (the lines are stored as usual) and the lane
        closes until the store is drained again."""
        self.handoff.collect()
        taken = [
            (outcome_id, record)
            for outcome_id in outcome_ids
            if (record := self.handoff.take(outcome_id)) is not None
        ]
        delivered: set[str] = set()
        for start in range(0, len(taken), self._batch_size):
            batch = taken[start : start + self._batch_size]
            try:
                if self.exporter is None:
                    self.exporter = self._exporter_factory()
                result = self.exporter.export([record for _, record in batch])
            except Exception as error:
                report_error("outcome_spool.export", error)
                result = LogRecordExportResult.FAILURE
            if result is not LogRecordExportResult.SUCCESS:
                count("outcome_spool.export_failures")
                self._lane_failed = True
                break  # this batch and the rest are stored by the intake
            count("outcome_spool.delivered", len(batch))
            delivered.update(outcome_id for outcome_id, _ in batch)
            time.sleep(0)  # let callers have the GIL between batches
        return delivered

    def _resource(self, resource_id: int) -> Resource:
        resource = self._resources.get(resource_id)
        if resource is None:
            payload = self.store.resource_payload(resource_id)
            if payload is None:
                raise LookupError(f"resource {resource_id} is missing")
            resource = self._resources[resource_id] = decode_resource(decode_body(payload))
        return resource
