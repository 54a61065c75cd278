"""Celery task retries as retry runs.

A Celery retry (``self.retry()``, or ``autoretry_for``) re-sends the task under the same task id;
without help its next execution starts an unrelated first attempt. Use :class:`RetryRunTask` as
the task's base class, with ``@workflow`` on the task body::

    @app.task(base=RetryRunTask, bind=True, autoretry_for=(ConnectionError,), max_retries=3)
    @workflow("charge", event_id=lambda self, order: order, customer_id="acme")
    def charge(self, order): ...

Each execution's run is then the next attempt of the previous execution's run (``attempt`` =
Celery's ``request.retries + 1``, ``retry_of_run_id``, same event, customer, parent and root),
with its own outcome. How: ``retry()`` adds the last attempt's run to the retry message as the
header ``runctx_retry_of`` (the run's full baggage entries, JSON), and the next execution
reads it back; it is validated like any inbound run (:meth:`RunContext.from_baggage`) and
ignored when invalid.
"""

from __future__ import annotations

import contextvars
import json
from typing import Any

import celery  # type: ignore[import-untyped]

from otel_runctx.context import RunContext
from otel_runctx.runs import RetryChain, as_retry_of
from otel_runctx.stats import count

__all__ = ["RETRY_HEADER", "RetryRunTask", "previous_attempt"]

RETRY_HEADER = "runctx_retry_of"
#: The attempts of the task execution in progress (the worker runs one per thread or process).
_chain: contextvars.ContextVar[RetryChain | None] = contextvars.ContextVar(
    "otel_runctx_celery_chain", default=None
)


def previous_attempt(request: Any) -> RunContext | None:
    """The run of the execution this one retries, from the request's header; None if absent."""
    raw = getattr(request, RETRY_HEADER, None)
    if raw is None:
        raw = (getattr(request, "headers", None) or {}).get(RETRY_HEADER)
    if not raw or not getattr(request, "retries", 0):
        return None
    try:
        mapping = json.loads(raw)
    except (TypeError, ValueError):
        mapping = None
    previous = RunContext.from_baggage(mapping) if isinstance(mapping, dict) else None
    if previous is None:
        count("errors.celery.retry_header")
    return previous


class RetryRunTask(celery.Task):  # type: ignore[misc]
    """A task base class whose retries are retry runs (see the module docstring)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with as_retry_of(RetryChain(previous_attempt(self.request))) as chain:
            token = _chain.set(chain)
            try:
                return super().__call__(*args, **kwargs)
            finally:
                _chain.reset(token)

    def retry(self, *args: Any, **kwargs: Any) -> Any:
        chain = _chain.get()
        if chain is not None and chain.last is not None:
            headers = dict(kwargs.get("headers") or {})
            headers[RETRY_HEADER] = json.dumps(chain.last.to_baggage_dict(lean_mode=False))
            kwargs["headers"] = headers
        return super().retry(*args, **kwargs)
