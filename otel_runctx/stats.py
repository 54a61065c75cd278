"""In-process counters and the never-raise error reporter every module shares.

Processors, propagators and exporters must never raise into user code. When something goes
wrong inside them they call :func:`report_error`: it counts the failure, and logs it at most once
per interval per place, so a broken input arriving a million times costs a million increments
and a handful of log lines. :func:`snapshot` is what ``otel-runctx doctor`` and the OTel metrics
bridge read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

__all__ = ["count", "report_error", "reset", "snapshot"]

_logger = logging.getLogger("otel_runctx")

#: Seconds between two log lines about the same place.
LOG_INTERVAL_SECONDS = 60.0

_lock = threading.Lock()
_counters: Counter[str] = Counter()
_last_logged: dict[str, float] = {}


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
    """Count a failure at ``where`` (counter ``errors.<where>``) and log it, rate-limited.

    Never raises, whatever logging is configured to do.
    """
    try:
        now = time.monotonic()
        with _lock:
            _counters[f"errors.{where}"] += 1
            last = _last_logged.get(where)
            should_log = last is None or now - last >= LOG_INTERVAL_SECONDS
            if should_log:
                _last_logged[where] = now
        if should_log:
            _logger.warning(
                "otel-runctx: %s failed%s%s (counted as errors.%s; logged at most every %.0f s)",
                where,
                f": {message}" if message else "",
                f": {type(error).__name__}: {error}" if error is not None else "",
                where,
                LOG_INTERVAL_SECONDS,
                exc_info=error is not None and _logger.isEnabledFor(logging.DEBUG),
            )
    except Exception:
        pass
