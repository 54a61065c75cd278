"""Hands outcome records to the SDK's LoggerProvider on a helper thread once they are spooled.

With the spool on, an outcome is durable when its journal line is written; the copy that goes
through the global LoggerProvider (for ``otlp``, console or any other log exporter) is then not
what the caller waits for. The SDK's ``Logger.emit`` validates every attribute again (about a
microsecond each) and wakes its batch thread, which made it the largest and most jittery part of
``emit_outcome``; so the record, already built with its context on the caller's thread, is
emitted from here. The queue is bounded: when it is full the caller emits itself (slower, never
lost). Without the spool, records are emitted on the caller's thread as any log record is.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections import deque

from opentelemetry._logs import Logger, LogRecord

from otel_runctx.outcomes import _fast_emit
from otel_runctx.outcomes.background import background
from otel_runctx.stats import report_error

__all__ = ["emit_soon", "flush_outcome_events"]

MAX_QUEUED = 10_000
#: The helper thread runs every FLUSH_INTERVAL seconds, or sooner once this many are queued:
#: bursts, rather than one wake-up per record, keep it from contending with callers for the GIL.
WAKE_QUEUED = 256
FLUSH_INTERVAL = 0.1


class _Handoff:
    def __init__(self) -> None:
        self._queue: deque[tuple[Logger, LogRecord]] = deque()
        self._wake = threading.Event()
        self._done = threading.Condition()
        self._busy = False
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def submit(self, logger: Logger, record: LogRecord) -> None:
        if len(self._queue) >= MAX_QUEUED:
            _fast_emit.emit(logger, record)
            return
        self._queue.append((logger, record))
        if self._thread is None:
            self._start()
        if len(self._queue) >= WAKE_QUEUED:
            self._wake.set()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                # Registered now, after the app's LoggerProvider exists: atexit runs handlers
                # last-in first-out, so queued records reach the provider before it shuts down.
                atexit.register(self.flush, 2.0)
                self._thread = threading.Thread(
                    target=self._run, name="otel-runctx-outcome-events", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        with background():  # our helper thread: outside any run, instrumentation suppressed
            self._work()

    def _work(self) -> None:
        queue = self._queue
        while True:
            self._wake.wait(FLUSH_INTERVAL)
            self._wake.clear()
            while queue:
                with self._done:
                    self._busy = True
                logger, record = queue.popleft()
                try:
                    _fast_emit.emit(logger, record)
                except Exception as error:
                    report_error("outcome.event", error)
                finally:
                    with self._done:
                        self._busy = False
                        if not queue:
                            self._done.notify_all()
                # Hand the GIL to a waiting caller after each record instead of making it wait
                # out the interpreter's switch interval (5 ms by default).
                time.sleep(0)

    def flush(self, timeout: float) -> bool:
        self._wake.set()
        with self._done:
            return self._done.wait_for(lambda: not self._queue and not self._busy, timeout)


_handoff = _Handoff()


def emit_soon(logger: Logger, record: LogRecord) -> None:
    """Emit ``record`` through ``logger`` from the helper thread (in submission order)."""
    _handoff.submit(logger, record)


def flush_outcome_events(timeout: float = 5.0) -> bool:
    """Wait until every handed-off record was emitted; False on timeout."""
    return _handoff.flush(timeout)


def _after_fork_in_child() -> None:
    global _handoff
    # The parent's thread does not exist here, and records queued at fork time are the parent's
    # to emit: drop the child's copy, so the inherited atexit flush finds nothing to wait for.
    _handoff._queue.clear()
    _handoff = _Handoff()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
