"""Export what is buffered when a server stops the process, where atexit would never run.

Three exits skip atexit, so the SDK's batch processors (spans, logs, the outcome hand-off)
never flush:

* **A signal left at its default action.** uvicorn catches SIGTERM, shuts down gracefully, puts
  the previous handler back and raises the signal again; gunicorn's ``UvicornWorker`` first
  resets SIGTERM to ``SIG_DFL``. Either way the kernel ends the process. We stand in for
  ``SIG_DFL`` (see below): export, then restore the real default and raise the signal again,
  so the exit status is still "killed by SIGTERM", exactly as without us.
* **Celery prefork pool children** leave through ``os._exit``; Celery sends
  ``worker_process_shutdown`` in the child just before, and we export there.
* **Process-pool jobs** (:mod:`otel_runctx.instrumentation.processes`) flush after each job.

Standing in for ``SIG_DFL``: ``signal.signal`` is wrapped so that setting SIGTERM to
``SIG_DFL`` installs our handler instead, and ``signal.signal``/``signal.getsignal`` report our
handler as ``SIG_DFL``. Code that saves and restores "the default" therefore restores ours, and
a handler the app or server installs is left untouched (it decides how the process ends; if it
chains to the default, that is ours). The export runs on a helper thread joined for at most
``OTEL_RUNCTX_SHUTDOWN_TIMEOUT`` seconds, so a lock held by the interrupted code cannot hang
the exit.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry._logs import get_logger_provider

from otel_runctx.outcomes.events import flush_outcome_events
from otel_runctx.settings import get_settings
from otel_runctx.stats import count, report_error

__all__ = ["export_buffered", "install_shutdown_flush", "uninstall_shutdown_flush"]

#: Signals whose default action ends the process without atexit.
FLUSHED_SIGNALS = (signal.SIGTERM, signal.SIGHUP)

_real_signal = signal.signal
_real_getsignal = signal.getsignal
_lock = threading.Lock()
_installed = False
_exported_pid: int | None = None


def export_buffered(timeout: float | None = None, *, final: bool = True) -> bool:
    """Export every buffered span, log record, outcome and metric; True if done in time.

    ``final`` shuts the providers down (the process is about to end: nothing may stay queued);
    otherwise they are only flushed. Runs once per process when final. Never raises.
    """
    global _exported_pid
    if final:
        with _lock:
            if _exported_pid == os.getpid():
                return True
            _exported_pid = os.getpid()
    if timeout is None:
        timeout = _timeout()
    worker = threading.Thread(
        target=_export, args=(timeout, final), name="otel-runctx-shutdown", daemon=True
    )
    worker.start()
    worker.join(timeout)
    done = not worker.is_alive()
    count("shutdown.exported" if done else "shutdown.timed_out")
    return done


def _timeout() -> float:
    try:
        return get_settings().shutdown_timeout
    except Exception:
        return 10.0


def _export(timeout: float, final: bool) -> None:
    millis = int(timeout * 1000)
    try:
        flush_outcome_events(timeout)
    except Exception as error:
        report_error("shutdown.outcome_events", error)
    # Traces first, then logs (outcomes), then metrics: metrics are the most reproducible.
    for name, provider in (
        ("tracer_provider", trace.get_tracer_provider()),
        ("logger_provider", get_logger_provider()),
        ("meter_provider", metrics.get_meter_provider()),
    ):
        try:
            if final and hasattr(provider, "shutdown"):
                provider.shutdown()
            elif hasattr(provider, "force_flush"):
                provider.force_flush(millis)
        except Exception as error:
            report_error(f"shutdown.{name}", error)


def _default_action(signum: int, frame: FrameType | None) -> None:
    """Our stand-in for ``SIG_DFL``: export, then let the real default end the process."""
    try:
        export_buffered()
    finally:
        _real_signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)


def _signal(signalnum: Any, handler: Any) -> Any:
    if signalnum in FLUSHED_SIGNALS and handler == signal.SIG_DFL:
        handler = _default_action
    previous = _real_signal(signalnum, handler)
    return signal.SIG_DFL if previous is _default_action else previous


def _getsignal(signalnum: Any) -> Any:
    current = _real_getsignal(signalnum)
    return signal.SIG_DFL if current is _default_action else current


def _on_celery_child_exit(**_: Any) -> None:
    export_buffered()


def install_shutdown_flush() -> bool:
    """Wrap ``signal.signal`` and take the place of ``SIG_DFL`` for SIGTERM/SIGHUP; hook Celery.

    Idempotent; False if it was already installed. Never raises.
    """
    global _installed
    with _lock:
        if _installed:
            return False
        _installed = True
    try:
        signal.signal = _signal
        signal.getsignal = _getsignal
        if threading.current_thread() is threading.main_thread():
            for signum in FLUSHED_SIGNALS:
                if _real_getsignal(signum) == signal.SIG_DFL:
                    _real_signal(signum, _default_action)
    except Exception as error:
        report_error("shutdown.install", error)
    _hook_celery()
    return True


def _hook_celery() -> None:
    try:
        if "celery" not in sys.modules and importlib.util.find_spec("celery") is None:
            return
        from celery import signals  # type: ignore[import-untyped]

        signals.worker_process_shutdown.connect(_on_celery_child_exit, weak=False)
    except Exception as error:
        report_error("shutdown.celery", error)


def uninstall_shutdown_flush() -> None:
    """Undo :func:`install_shutdown_flush` (for tests)."""
    global _installed, _exported_pid
    with _lock:
        _installed = False
        _exported_pid = None
    signal.signal = _real_signal
    signal.getsignal = _real_getsignal
    if threading.current_thread() is threading.main_thread():
        for signum in FLUSHED_SIGNALS:
            if _real_getsignal(signum) is _default_action:
                _real_signal(signum, signal.SIG_DFL)
