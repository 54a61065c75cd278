"""In-process counters and the never-raise error reporter every module shares.

Processors, propagators and exporters must never raise into user code. When something goes
wrong inside them they call :func:`report_error`: it counts the failure, and says so at most once
per interval per place, so a broken input arriving a million times costs a million increments
and a handful of lines. :func:`snapshot` is what ``otel-runctx doctor`` and the OTel metrics
bridge read.

Where the line goes: always to stderr, one line prefixed ``otel-runctx:``. The app's logging
setup cannot be trusted to show it: ``opentelemetry-instrumentation-logging`` (or any handler
that ships records into OpenTelemetry) can route the ``otel_runctx`` logger into a log pipeline
whose only exporter keeps outcome events, and the line would vanish. So the line is written to
``sys.stderr`` directly, and also handed to the ``otel_runctx`` logger when someone attached a
handler that does not already print to stderr (so it may also reach the OTel pipeline).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import Counter

__all__ = ["count", "report_error", "reset", "say", "snapshot"]

_logger = logging.getLogger("otel_runctx")

#: Seconds between two lines about the same place.
LOG_INTERVAL_SECONDS = 60.0
PREFIX = "otel-runctx:"

_lock = threading.Lock()
_counters: Counter[str] = Counter()
_last_logged: dict[str, float] = {}
_speaking = threading.local()


def _after_fork_in_child() -> None:
    # A thread of the parent may have held the lock at the moment of the fork; in the child
    # that thread is gone and the lock would never be released: every count() would hang.
    global _lock, _speaking
    _lock = threading.Lock()
    _speaking = threading.local()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def count(name: str, amount: int = 1) -> None:
    """Add ``amount`` to counter ``name`` (dotted, e.g. ``propagation.rejected_invalid``)."""
    with _lock:
        _counters[name] += amount


def snapshot() -> dict[str, int]:
    """A copy of every counter's current value."""
    with _lock:
        return dict(_counters)


def reset() -> None:
    """Zero every counter and forget the log rate-limit state (for tests)."""
    with _lock:
        _counters.clear()
        _last_logged.clear()


def report_error(where: str, error: BaseException | None = None, message: str = "") -> None:
    """Count a failure at ``where`` (counter ``errors.<where>``) and say it, rate-limited.

    Never raises, whatever logging or stderr is configured to do.
    """
    try:
        with _lock:
            _counters[f"errors.{where}"] += 1
        text = (
            f"{where} failed"
            + (f": {message}" if message else "")
            + (f": {type(error).__name__}: {error}" if error is not None else "")
            + f" (counted as errors.{where}; said at most every {LOG_INTERVAL_SECONDS:.0f} s)"
        )
        say(where, text, error)
    except Exception:
        pass


def say(key: str, text: str, error: BaseException | None = None) -> bool:
    """Write ``otel-runctx: <text>`` to stderr unless ``key`` spoke in the last interval.

    Returns True when the line was written. Never raises.
    """
    try:
        now = time.monotonic()
        with _lock:
            last = _last_logged.get(key)
            if last is not None and now - last < LOG_INTERVAL_SECONDS:
                return False
            _last_logged[key] = now
        if getattr(_speaking, "active", False):
            return False  # a handler of ours reported an error while we were speaking
        _speaking.active = True
        try:
            line = f"{PREFIX} {text}".replace("\n", " ")
            if not _logging_reaches_stderr():
                _write_stderr(line)
            if _logger.hasHandlers():
                _logger.warning(
                    "%s",
                    line,
                    exc_info=error is not None and _logger.isEnabledFor(logging.DEBUG),
                )
        finally:
            _speaking.active = False
        return True
    except Exception:
        return False


def _write_stderr(line: str) -> None:
    stream = sys.__stderr__ if sys.stderr is None else sys.stderr
    if stream is None:
        return
    try:
        stream.write(line + "\n")
        stream.flush()
    except Exception:
        pass


def _logging_reaches_stderr() -> bool:
    """True when a WARNING on ``otel_runctx`` is printed to stderr by a handler already."""
    logger: logging.Logger | None = _logger
    if _logger.getEffectiveLevel() > logging.WARNING or _logger.disabled:
        return False
    while logger is not None:
        for handler in logger.handlers:
            stream = getattr(handler, "stream", None)
            if (
                isinstance(handler, logging.StreamHandler)
                and stream is not None
                and stream in (sys.stderr, sys.__stderr__)
                and handler.level <= logging.WARNING
            ):
                return True
        if not logger.propagate:
            break
        logger = logger.parent
    return False
