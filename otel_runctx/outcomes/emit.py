"""Outcomes: every run ends with exactly one, explicit (``emit_outcome``) or automatic.

``emit_outcome`` records the active run's outcome at once. A run that ends without one gets an
automatic outcome when its ``run()``/``@workflow`` scope closes:

====================================================  ============================================
how the run ended                                     automatic status
====================================================  ============================================
the closer passed a status (isolation: ``TIMEOUT``)   that status
``asyncio.CancelledError`` or ``KeyboardInterrupt``   ``CANCELED``
``request_cancellation()`` was called                 ``CANCELED`` (reason: the cancellation reason)
the deadline passed, or ``TimeoutError`` escaped      ``TIMEOUT``
any other exception                                   ``FAILURE``
normal exit                                           ``SUCCESS``
====================================================  ============================================

An exception also sets ``error_type`` (the class name). The first outcome of a run wins: a
second ``emit_outcome`` for the same run is **rejected** (returns False, is counted as
``errors.emit_outcome.duplicate`` and logged), because the first one may already be on its way
to the collector and cannot be taken back.

**An early outcome does not freeze usage.** ``emit_outcome`` inside a run started here records
the outcome's fields at once, but its usage is the run's whole usage: the event is completed
when the run ends. Until then, with the spool on, a *pending* record (usage so far,
``runctx.usage.final=false``) is already on disk before ``emit_outcome`` returns and is held
there; at the run's end the final record (``runctx.usage.final=true``) takes its place under
the same outcome id, so one record per outcome reaches the collector. If the process dies
before the run ends, the pending record is what another process sends. Without the spool, the
event is emitted when the run ends (best effort, as any log record). For a run not started here
(continued from baggage) there is no run end to wait for: the outcome is delivered at once.

Per-run state lives from the run's start to its end; after that only the run id is remembered
(the last 65,536), so that code still running after its run ended (e.g. a thread an isolation
timeout gave up on) cannot add a second outcome.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.context import Context
from opentelemetry.trace import Span

from otel_runctx.context import RunContext, RunStatus, get_run_context, require_run_context
from otel_runctx.outcomes.delivery import deliver_outcome, spool_pending_outcome
from otel_runctx.outcomes.model import (
    AUTOMATIC_SUCCESS,
    MAX_REASON_LENGTH,
    Outcome,
    make_outcome,
    outcome_id_for,
)
from otel_runctx.stats import count, report_error
from otel_runctx.usage import rollup as usage_rollup

__all__ = ["emit_outcome", "live_run_count", "run_ended", "run_started"]

#: Most runs tracked at once; a run started beyond this gets no automatic outcome (counted).
MAX_LIVE_RUNS = 1_000_000
#: Runs that already have an outcome but are not live here: runs that ended (code still running
#: after its run ended, e.g. a thread an isolation timeout gave up on, must not add a second
#: outcome) and runs not started in this process (restored from baggage). Oldest forgotten first.
MAX_REMEMBERED_RUNS = 65_536


@dataclass(slots=True)
class _LiveRun:
    run: RunContext
    span: Span | None
    context: Context | None
    started: float  # time.perf_counter()
    recorded: bool = False
    # An early outcome waiting for the run's end: (outcome, duration, its pending record is
    # in the spool).
    pending: tuple[Outcome, float, bool] | None = None


_lock = threading.Lock()
_live: dict[str, _LiveRun] = {}
_remembered: OrderedDict[str, None] = OrderedDict()


def _remember(run_id: str) -> None:
    """Note (under ``_lock``) that ``run_id`` has its outcome and is not live."""
    _remembered[run_id] = None
    if len(_remembered) > MAX_REMEMBERED_RUNS:
        _remembered.popitem(last=False)


def run_started(run: RunContext, span: Span | None, context: Context | None) -> None:
    """Called by the run scope once the run and its root span exist."""
    with _lock:
        if len(_live) >= MAX_LIVE_RUNS:
            count("outcome.runs_not_tracked")
            return
        _live[run.run_id] = _LiveRun(run, span, context, time.perf_counter())
    usage_rollup.start_run(run.run_id)


def run_ended(run: RunContext, error: BaseException | None, status: RunStatus | None) -> None:
    """Called by the run scope before the root span ends: record the automatic outcome if due.

    Never raises: the run's own exception (if any) is what the caller must see.
    """
    try:
        with _lock:
            live = _live.pop(run.run_id, None)
            if live is not None:
                _remember(run.run_id)
                pending, live.pending = live.pending, None
        usage = usage_rollup.finish_run(run.run_id)
        if live is None:
            return
        if live.recorded and pending is None:
            return
        if usage is not None:
            usage.span_count += 1  # the root span, which ends right after this
            usage.error_count += error is not None
        if pending is not None:
            outcome, duration, spooled = pending
        else:
            outcome = automatic_outcome(run, error, status)
            duration, spooled = time.perf_counter() - live.started, False
        deliver_outcome(
            run,
            outcome,
            outcome_id=outcome_id_for(run),
            root_span=live.span,
            context=live.context,
            duration_seconds=duration,
            usage=usage,
            replaces_pending=spooled,
        )
    except Exception as failure:
        report_error("outcome.automatic", failure)


_AUTOMATIC_SUCCESS = AUTOMATIC_SUCCESS  # the outcome of most runs (see outcomes/model.py)


def automatic_outcome(
    run: RunContext, error: BaseException | None, status: RunStatus | None = None
) -> Outcome:
    """The outcome of a run that ended without an explicit one (see the module docstring)."""
    reason: str | None = None
    if status is None:
        if isinstance(error, (asyncio.CancelledError, KeyboardInterrupt)):
            status = RunStatus.CANCELED
            reason = run.cancellation_reason
        elif run.is_cancelled():
            status, reason = RunStatus.CANCELED, run.cancellation_reason
        elif run.is_past_deadline() or isinstance(error, TimeoutError):
            status, reason = (
                RunStatus.TIMEOUT,
                "deadline passed" if run.is_past_deadline() else None,
            )
        elif error is not None:
            status = RunStatus.FAILURE
        else:
            status = RunStatus.SUCCESS
    if error is None and reason is None and status is RunStatus.SUCCESS:
        return _AUTOMATIC_SUCCESS
    if reason is None and error is not None and status is not RunStatus.SUCCESS:
        reason = _exception_reason(error)
    return Outcome(
        status=status,
        reason=reason,
        error_type=type(error).__name__ if error is not None else None,
        automatic=True,
    )


def _exception_reason(error: BaseException) -> str | None:
    try:
        text = str(error)
    except Exception:
        return None
    return text[:MAX_REASON_LENGTH] or None


def emit_outcome(
    status: RunStatus | str,
    *,
    value_type: str | None = None,
    value_amount: float | None = None,
    confidence: float | None = None,
    reason: str | None = None,
    error_type: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> bool:
    """Record the active run's outcome now. Returns True if recorded, False if rejected.

    Raises ValueError for an invalid argument and NoRunContextError outside a run. The outcome
    is written to the spool (when the OutcomeExporter enabled one) before this returns. The
    first outcome of a run wins; a later one is rejected (False), counted and logged.
    """
    run = require_run_context()
    outcome = make_outcome(
        status,
        value_type=value_type,
        value_amount=value_amount,
        confidence=confidence,
        reason=reason,
        error_type=error_type,
        metadata=metadata,
    )
    with _lock:
        live = _live.get(run.run_id)
        if live is not None:
            duplicate = live.recorded
            live.recorded = True
        else:
            duplicate = run.run_id in _remembered
            _remember(run.run_id)
    if duplicate:
        report_error(
            "emit_outcome.duplicate",
            message=f"run {run.run_id} already has an outcome; the first one stands and this "
            f"{outcome.status.value!r} is ignored",
        )
        return False
    try:
        if live is not None:
            # Completed when the run ends (see the module docstring); durable now if spooled.
            duration = time.perf_counter() - live.started
            spooled = spool_pending_outcome(
                run,
                outcome,
                outcome_id=outcome_id_for(run),
                root_span=live.span,
                context=live.context,
                duration_seconds=duration,
                usage=usage_rollup.snapshot_run(run.run_id),
            )
            with _lock:
                live.pending = (outcome, duration, spooled)
                ended = _live.get(run.run_id) is not live
            if ended:  # the run ended meanwhile: deliver here
                _deliver_late(run, live)
        else:
            deliver_outcome(
                run,
                outcome,
                outcome_id=outcome_id_for(run),
                root_span=None,
                context=None,
                duration_seconds=None,
                usage=usage_rollup.snapshot_run(run.run_id),
            )
    except Exception as failure:
        report_error("emit_outcome", failure)
    return True


def _deliver_late(run: RunContext, live: _LiveRun) -> None:
    """The run ended between the duplicate check and storing the pending outcome."""
    with _lock:
        pending, live.pending = live.pending, None
    if pending is None:
        return
    outcome, duration, spooled = pending
    deliver_outcome(
        run,
        outcome,
        outcome_id=outcome_id_for(run),
        root_span=None,
        context=live.context,
        duration_seconds=duration,
        usage=None,
        replaces_pending=spooled,
    )


def live_run_count() -> int:
    """Runs started here that have not ended (for tests and ``doctor``)."""
    with _lock:
        return len(_live)


def has_outcome(run: RunContext | None = None) -> bool:
    """True if ``run`` (default: the active run) already has an outcome recorded here."""
    run = run or get_run_context()
    if run is None:
        return False
    with _lock:
        live = _live.get(run.run_id)
        return live.recorded if live is not None else run.run_id in _remembered
