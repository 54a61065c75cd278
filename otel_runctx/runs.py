"""Starting runs: the ``run()`` context manager, its ``RunScope``, and retries as runs.

A run scope makes the run active, opens its root span, and on every exit (normal return,
exception, ``KeyboardInterrupt``, ``asyncio.CancelledError``) ends the span and restores the run
that was active before.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Generator
from types import TracebackType
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from otel_runctx.context import RunContext, RunStatus, get_run_context, with_run_context
from otel_runctx.outcomes import emit as outcomes
from otel_runctx.processors import _fast_stamp
from otel_runctx.processors.span import root_span_start
from otel_runctx.run_state.budget import Budget
from otel_runctx.run_state.local import release_run_locals
from otel_runctx.stats import report_error
from otel_runctx.usage import spend

__all__ = ["RetryChain", "RunScope", "as_retry_of", "run"]

_TRACER_NAME = "otel_runctx"
#: OTel Context key of the pending retry (see :func:`as_retry_of`); a run's own context clears it.
_PENDING_RETRY = otel_context.create_key("otel_runctx.pending_retry")

T = TypeVar("T")

# The scope entry (a private RunScope copy) whose run is active, so ``__exit__`` finds its own.
_ENTRY_KEY = otel_context.create_key("runctx.run_scope_entry")
_tracer_for: tuple[object, Tracer] | None = None


def _start_root_span(run: RunContext, context: otel_context.Context, kind: SpanKind) -> Span:
    """Start the run's root span, carrying the run's full attribute set.

    The tracer is looked up once per global TracerProvider (``get_tracer`` builds an
    instrumentation scope each time: several microseconds per run). The attributes are written
    after the start through the stamping fast path: they were validated once, when the run was
    built, and ``start_span(attributes=...)`` would validate every value again. A sampler
    therefore reads the run from the context it is given (``get_run_context(parent_context)``),
    not from the attributes. A ``RunContextSpanProcessor`` writes them in its ``on_start``
    (told by ``root_span_start`` that this span is the run's root), so later processors see
    them; without one they are written here.
    """
    global _tracer_for
    provider = trace.get_tracer_provider()
    cached = _tracer_for
    if cached is None or cached[0] is not provider:
        cached = _tracer_for = (provider, trace.get_tracer(_TRACER_NAME))
    name = f"run {run.workflow}"
    # A RunContextSpanProcessor stamps this span in on_start, and clears the marker.
    root_span_start.run, root_span_start.name = run, name
    try:
        span = cached[1].start_span(name, context=context, kind=kind)
    finally:
        stamped = root_span_start.run is None
        root_span_start.run = None
    if stamped:
        return span
    try:
        _fast_stamp.stamp(span, run.to_span_attributes())
    except Exception as error:  # never into the user's code; the public API still stamps it
        report_error("run.root_span", error)
        span.set_attributes(run.to_span_attributes())
    return span


class RunScope:
    """One run's lifetime. Use it through :func:`run`; it is both a sync and an async CM.

    ``open()``/``close()`` are split from ``__enter__``/``__exit__`` so that wrappers which must
    activate the run only while user code runs (generators) can re-enter the same run.

    One object may be entered many times, nested or from several threads and tasks at once:
    each ``with``/``async with`` works on a private copy (its own run, span and token), kept in
    the OTel Context it attaches, so each exit ends exactly the run its entry started.
    ``run``/``span``/``context`` show the most recent entry.
    """

    __slots__ = (
        "_budget",
        "_customer_id",
        "_deadline_seconds",
        "_entries",
        "_event_id",
        "_kind",
        "_outer",
        "_owner",
        "_preset",
        "_retry_of",
        "_tenant_id",
        "_token",
        "_workflow",
        "context",
        "run",
        "span",
    )

    def __init__(
        self,
        workflow: str,
        *,
        event_id: str | None = None,
        customer_id: str | None = None,
        tenant_id: str | None = None,
        deadline_seconds: float | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        run_context: RunContext | None = None,
        retry_of: RunContext | None = None,
        budget: Budget | None = None,
    ) -> None:
        if budget is not None and not isinstance(budget, Budget):
            raise TypeError(f"budget must be an otel_runctx.Budget, got {type(budget).__name__}")
        self._budget = budget
        self._workflow = workflow
        self._preset = run_context
        self._retry_of = retry_of
        self._event_id = event_id
        self._customer_id = customer_id
        self._tenant_id = tenant_id
        self._deadline_seconds = deadline_seconds
        self._kind = kind
        self._token: object | None = None
        self._entries: list[RunScope] = []
        self._owner: RunScope | None = None
        self._outer: object = None
        self.run: RunContext | None = None
        self.span: Span | None = None
        self.context: otel_context.Context | None = None

    def open(self) -> otel_context.Context:
        """Create the run (child of the active one, if any) and its root span.

        A scope built with ``run_context=`` uses that run as it is instead of creating one; one
        built with ``retry_of=`` (or opened inside :func:`as_retry_of`) starts the next attempt.

        Returns the OTel Context in which the run and its span are current; not attached.
        """
        current = otel_context.get_current()
        parent = get_run_context(current)
        marker = otel_context.get_value(_PENDING_RETRY, current)
        pending = _take_pending_retry(marker)
        previous = self._retry_of
        if previous is None and pending is not None:
            previous = pending.chain.last
        if self._preset is not None:
            run = self._preset
        elif previous is not None:
            run = _next_attempt(previous, self._workflow, self._deadline_seconds)
        elif parent is not None:
            run = parent.create_child(
                self._workflow,
                event_id=self._event_id,
                customer_id=self._customer_id,
                tenant_id=self._tenant_id,
                deadline_seconds=self._deadline_seconds,
            )
        else:
            missing = [
                name
                for name, value in (
                    ("event_id", self._event_id),
                    ("customer_id", self._customer_id),
                )
                if value is None
            ]
            if missing:
                raise ValueError(
                    f"run({self._workflow!r}) starts a top-level run and needs "
                    f"{' and '.join(missing)}; only runs nested in another run inherit them"
                )
            assert self._event_id is not None and self._customer_id is not None
            run = RunContext.create(
                self._workflow,
                event_id=self._event_id,
                customer_id=self._customer_id,
                tenant_id=self._tenant_id,
                deadline_seconds=self._deadline_seconds,
            )
        if pending is not None:
            pending.chain.last = run
        run_context = with_run_context(run, current)
        if marker is not None:
            # Runs nested in this one are not retries: the pending retry ends at this run.
            run_context = otel_context.set_value(_PENDING_RETRY, None, run_context)
        # The root span carries the run's attributes itself, so it is stamped even when the
        # provider has no RunContextSpanProcessor.
        span = _start_root_span(run, run_context, self._kind)
        self.run, self.span = run, span
        self.context = trace.set_span_in_context(span, run_context)
        spend.start_run(run, parent, self._budget)
        outcomes.run_started(run, span, self.context)
        return self.context

    def close(self, error: BaseException | None, status: RunStatus | None = None) -> None:
        """End the run: record its automatic outcome (unless it has one), ``error`` (if any) on
        the root span, and end the span.

        ``status`` lets a caller that knows better than the exception say how the run ended
        (e.g. ``RunStatus.TIMEOUT`` when an isolation timeout stopped it); it is used for the
        automatic outcome.
        """
        span = self.span
        if span is None:
            return
        self.span = None
        if self.run is not None:
            outcomes.run_ended(self.run, error, status)
            spend.end_run(self.run)
            release_run_locals(self.run)
        if error is not None:
            span.record_exception(error, escaped=True)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        elif status is RunStatus.TIMEOUT or (self.run is not None and self.run.is_past_deadline()):
            # Its outcome is `timeout`: a backend filtering on span status must see it too.
            span.set_status(Status(StatusCode.ERROR, "deadline passed"))
        span.end()

    def _copy(self) -> RunScope:
        """A fresh entry with this scope's arguments (already checked by ``__init__``), built
        without going through it: one per ``with``, on every run's path."""
        entry: RunScope = object.__new__(RunScope)
        entry._budget = self._budget
        entry._workflow = self._workflow
        entry._preset = self._preset
        entry._retry_of = self._retry_of
        entry._event_id = self._event_id
        entry._customer_id = self._customer_id
        entry._tenant_id = self._tenant_id
        entry._deadline_seconds = self._deadline_seconds
        entry._kind = self._kind
        entry._token = None
        entry._entries = []
        entry._owner = None
        entry._outer = None
        entry.run = None
        entry.span = None
        entry.context = None
        return entry

    def __enter__(self) -> RunContext:
        entry = self._copy()
        context = entry.open()
        entry._owner, entry._outer = self, otel_context.get_value(_ENTRY_KEY)
        entry._token = otel_context.attach(otel_context.set_value(_ENTRY_KEY, entry, context))
        self._entries.append(entry)
        self.run, self.span, self.context = entry.run, entry.span, entry.context
        assert entry.run is not None
        return entry.run

    def _own_entry(self) -> RunScope | None:
        """This scope's innermost entry in the current context (else its latest one)."""
        found = otel_context.get_value(_ENTRY_KEY)
        for _ in range(1000):  # bounded: entries chain through their outer entries
            if not isinstance(found, RunScope) or found._owner is self:
                break
            found = found._outer
        if isinstance(found, RunScope) and found._owner is self and found in self._entries:
            return found
        return self._entries[-1] if self._entries else None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        entry = self._own_entry()
        if entry is None:
            return
        self._entries.remove(entry)
        try:
            entry.close(exc)
        finally:
            token, entry._token = entry._token, None
            if token is not None:
                otel_context.detach(token)  # type: ignore[arg-type]

    async def __aenter__(self) -> RunContext:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


def run(
    workflow: str,
    *,
    event_id: str | None = None,
    customer_id: str | None = None,
    tenant_id: str | None = None,
    deadline_seconds: float | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    retry_of: RunContext | None = None,
    budget: Budget | None = None,
) -> RunScope:
    """Start a run of ``workflow``: ``with run(...) as ctx:`` or ``async with run(...) as ctx:``.

    At top level ``event_id`` and ``customer_id`` are required. Inside another run this starts a
    child run that inherits root, event, customer and tenant unless they are given.

    ``retry_of=previous`` starts the next attempt of ``previous`` instead: ``attempt`` one
    higher, ``retry_of_run_id=previous.run_id``, the same event, customer, tenant, parent and
    root (ids given here are ignored), its own root span and its own outcome.
    ``budget`` limits what the run (with its child runs) may spend; a child run without one gets
    a share of its parent's remaining budget (see :class:`otel_runctx.Budget`).
    """
    return RunScope(
        workflow,
        event_id=event_id,
        customer_id=customer_id,
        tenant_id=tenant_id,
        deadline_seconds=deadline_seconds,
        kind=kind,
        retry_of=retry_of,
        budget=budget,
    )


class RetryChain:
    """The attempts of one piece of work: each run started through it retries the last one.

    ``last`` is the latest attempt's run (None before the first). Integrations that drive
    retries (tenacity) keep one chain per call and open each attempt inside :func:`as_retry_of`.
    """

    __slots__ = ("last",)

    def __init__(self, last: RunContext | None = None) -> None:
        self.last = last


class _PendingRetry:
    """One :func:`as_retry_of` block: the first run opened in it consumes it."""

    __slots__ = ("chain", "used")

    def __init__(self, chain: RetryChain) -> None:
        self.chain = chain
        self.used = False


@contextlib.contextmanager
def as_retry_of(previous: RunContext | RetryChain | None) -> Generator[RetryChain, None, None]:
    """Make the first run started in this block (``run()`` or a ``@workflow`` call) a retry.

    ``with as_retry_of(ctx): handle(ticket)`` runs the ``@workflow`` function ``handle`` as the
    next attempt of ``ctx``. With a :class:`RetryChain` the run retries the chain's last run
    (or is a first attempt when there is none) and becomes its new ``last``. Runs nested inside
    that run, and later runs in the block, are ordinary runs. Yields the chain.
    """
    chain = previous if isinstance(previous, RetryChain) else RetryChain(previous)
    token = otel_context.attach(otel_context.set_value(_PENDING_RETRY, _PendingRetry(chain)))
    try:
        yield chain
    finally:
        otel_context.detach(token)


def _take_pending_retry(pending: object) -> _PendingRetry | None:
    """``pending`` (the context's ``_PENDING_RETRY`` value), marked used, if it is unused."""
    if not isinstance(pending, _PendingRetry) or pending.used:
        return None
    pending.used = True
    return pending


def _next_attempt(
    previous: RunContext, workflow: str, deadline_seconds: float | None
) -> RunContext:
    """``previous``'s next attempt, under ``workflow``; a new deadline only if one is asked for."""
    retry = RunContext.create_retry(previous)
    changes: dict[str, Any] = {}
    if workflow != retry.workflow:
        changes["workflow"] = workflow
    if deadline_seconds is not None:
        changes["deadline"] = time.time() + deadline_seconds
    return dataclasses.replace(retry, **changes) if changes else retry
