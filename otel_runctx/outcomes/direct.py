"""Direct delivery: outcomes sent to the collector without the spool, best effort.

Used when the spool cannot start (its reason is said once on stderr) and for a single outcome
the spool could not write (a full disk). ``submit`` only appends to a bounded in-memory queue,
so the caller never waits for the network; a helper thread exports in batches and retries a
failed batch with backoff. What it holds is lost if the process dies, and when the queue is full
the oldest records are dropped: both are the honest price of "no disk", and drops are counted
(``outcome_direct.dropped``) and said on stderr.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from otel_runctx.outcomes.background import background
from otel_runctx.stats import count, report_error

__all__ = ["DirectSender"]

MAX_QUEUED = 10_000
BATCH = 256


class DirectSender:
    """A bounded queue of outcome records and the thread that exports them."""

    def __init__(self, exporter_factory: Callable[[], LogRecordExporter]) -> None:
        self._exporter_factory = exporter_factory
        self._exporter: LogRecordExporter | None = None
        self._queue: deque[ReadableLogRecord] = deque()
        self._cond = threading.Condition()
        self._inflight = 0
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._pid = os.getpid()

    def submit(self, record: ReadableLogRecord) -> None:
        """Queue ``record`` for sending; never blocks on the network, never raises."""
        try:
            if os.getpid() != self._pid:
                self._after_fork()
            with self._cond:
                if len(self._queue) >= MAX_QUEUED:
                    self._queue.popleft()
                    count("outcome_direct.dropped")
                    report_error(
                        "outcome_direct.full",
                        message=f"{MAX_QUEUED} outcomes wait for the collector and none can be "
                        "spooled; dropped the oldest (counted as outcome_direct.dropped)",
                    )
                self._queue.append(record)
                count("outcome_direct.queued")
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="otel-runctx-outcome-direct", daemon=True
                    )
                    self._thread.start()
                self._cond.notify_all()
        except Exception as error:
            report_error("outcome_direct.submit", error)

    def _after_fork(self) -> None:
        # The parent's thread does not exist here, and its queued records are its own to send.
        self._cond = threading.Condition()
        self._queue = deque()
        self._thread = None
        self._inflight = 0
        self._pid = os.getpid()

    def _run(self) -> None:
        with background():  # our exports are our traffic, never a run's
            self._loop()

    def _loop(self) -> None:
        backoff = 0.0
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._queue) or self._stopping, 1.0)
                if self._stopping and (not self._queue or backoff):
                    return
                batch = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
                self._inflight = len(batch)
            if not batch:
                continue
            ok = self._export(batch)
            with self._cond:
                self._inflight = 0
                if ok:
                    count("outcome_direct.delivered", len(batch))
                    backoff = 0.0
                else:
                    self._queue.extendleft(reversed(batch))
                    backoff = min(max(0.5, backoff * 2), 30.0)
                self._cond.notify_all()
            if not ok:
                with self._cond:
                    self._cond.wait_for(lambda: self._stopping, backoff)

    def _export(self, batch: list[ReadableLogRecord]) -> bool:
        try:
            if self._exporter is None:
                self._exporter = self._exporter_factory()
            return self._exporter.export(batch) is LogRecordExportResult.SUCCESS
        except Exception as error:
            report_error("outcome_direct.export", error)
            return False

    def pending(self) -> int:
        with self._cond:
            return len(self._queue) + self._inflight

    def flush(self, timeout: float) -> bool:
        """Wait until the queue is empty (True) or ``timeout`` passed. Never raises."""
        deadline = time.monotonic() + timeout
        try:
            with self._cond:
                self._cond.notify_all()
                return self._cond.wait_for(
                    lambda: not self._queue and not self._inflight,
                    max(0.0, deadline - time.monotonic()),
                )
        except Exception:
            return False

    def shutdown(self, timeout: float = 2.0) -> None:
        """One last bounded attempt to send what is queued, then stop the thread."""
        self.flush(timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            lost = len(self._queue)
        if lost:
            count("outcome_direct.lost_at_exit", lost)
            report_error(
                "outcome_direct.shutdown",
                message=f"{lost} outcome(s) could not be sent before exit and there was no spool "
                "to keep them (counted as outcome_direct.lost_at_exit)",
            )
