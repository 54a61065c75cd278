"""Run user code with its own run, in its own context, with an optional timeout.

``run_isolated(fn, *args, run=..., timeout=..., **kwargs)`` calls ``fn`` inside a fresh copy of the
caller's context in which ``run`` (never the caller's run) is active and has its root span.
Whatever ``fn`` sets in its context stays there. Exceptions from ``fn`` reach the caller unchanged.

On timeout the run is ended with ``RunStatus.TIMEOUT``, cancellation is requested on the run, and
the caller gets ``TimeoutError``. What a timeout can stop differs:

- a coroutine function runs as its own task, which is cancelled (and awaited) on timeout;
- a plain function with a timeout runs in a daemon worker thread. Python cannot stop a thread:
  after the timeout it keeps running until ``fn`` returns. Its result is dropped, and the run is
  already ended, so its later spans still carry the run but no second outcome is emitted. Code that
  checks ``require_run_context().is_cancelled()`` can stop early.
- a plain function without a timeout runs in the calling thread.

``ContextPoolExecutor`` is a ``ThreadPoolExecutor`` that copies the submitting context into every
job, for code that wants that without the monkey-patching of
:class:`otel_runctx.instrumentation.ExecutorContextInstrumentor`.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
from collections.abc import Awaitable, Callable
from concurrent import futures
from typing import Any, TypeVar

from opentelemetry import context as otel_context

from otel_runctx.context import RunContext, RunStatus
from otel_runctx.instrumentation._jobs import ContextJob, call_in_empty_context
from otel_runctx.runs import RunScope

__all__ = ["ContextPoolExecutor", "run_isolated"]

R = TypeVar("R")


class ContextPoolExecutor(futures.ThreadPoolExecutor):
    """A ThreadPoolExecutor whose jobs run in a fresh copy of the submitter's context.

    ``submit`` (and so ``map`` and ``loop.run_in_executor``) copy the context per job, so each job
    sees exactly its submitter's run, and a job that changes context variables without resetting
    them cannot affect the next job on the same worker.
    """

    def submit(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> futures.Future[R]:
        job = fn if isinstance(fn, ContextJob) else ContextJob(fn)
        return call_in_empty_context(super().submit, job, *args, **kwargs)


class _IsolatedRun:
    """One isolated call's run scope, ended exactly once whichever side finishes first."""

    def __init__(self, run: RunContext) -> None:
        self.run = run
        self._scope = RunScope(run.workflow, run_context=run)
        self._lock = threading.Lock()
        self._ended = False
        # The scope is opened in a copy of the caller's context, so the root span is a child of
        # the caller's current span but the caller's context is never changed.
        self.context = contextvars.copy_context().run(self._scope.open)

    def end(self, error: BaseException | None, status: RunStatus | None = None) -> bool:
        """End the run unless it already ended; True if this call ended it."""
        with self._lock:
            if self._ended:
                return False
            self._ended = True
        self._scope.close(error, status=status)
        return True

    def call(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """Call ``fn`` with the run attached; meant to run inside a fresh contextvars copy."""
        token = otel_context.attach(self.context)
        try:
            return fn(*args, **kwargs)
        finally:
            otel_context.detach(token)

    def time_out(self, timeout: float) -> TimeoutError | None:
        """End the run as TIMEOUT and request cancellation; None if the run finished first."""
        error = TimeoutError(
            f"run {self.run.run_id} ({self.run.workflow}) did not finish within {timeout} s"
        )
        if not self.end(error, status=RunStatus.TIMEOUT):
            return None
        self.run.request_cancellation("timeout")
        return error


def run_isolated(
    fn: Callable[..., Any], *args: Any, run: RunContext, timeout: float | None = None, **kwargs: Any
) -> Any:
    """Call ``fn(*args, **kwargs)`` as ``run``, isolated from the caller's context.

    For a coroutine function this returns an awaitable; await it. ``timeout`` is in seconds
    (``None``: no limit). ``run`` and ``timeout`` are taken by this function, so ``fn`` cannot
    receive keyword arguments with those names this way (wrap it in a lambda or partial).
    """
    if not isinstance(run, RunContext):
        raise TypeError(f"run_isolated needs run=RunContext, got {type(run).__name__}")
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout!r}")
    if inspect.iscoroutinefunction(fn):
        return _run_async(fn, args, kwargs, run, timeout)
    isolated = _IsolatedRun(run)
    if timeout is None:
        return _finish_sync(
            isolated, lambda: contextvars.copy_context().run(isolated.call, fn, *args, **kwargs)
        )
    future: futures.Future[Any] = futures.Future()

    def work() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            result = isolated.call(fn, *args, **kwargs)
        except BaseException as error:
            isolated.end(error)
            future.set_exception(error)
        else:
            isolated.end(None)
            future.set_result(result)

    worker = threading.Thread(
        target=contextvars.copy_context().run,
        args=(work,),
        name=f"runctx-isolated-{run.workflow}"[:64],
        daemon=True,
    )
    worker.start()
    try:
        return future.result(timeout)
    except futures.TimeoutError:
        timeout_error = isolated.time_out(timeout)
        if timeout_error is None:  # fn finished in the instant between the wait and now
            return future.result()
        raise timeout_error from None
    except BaseException as error:
        if not future.done():  # the caller was interrupted while waiting (e.g. KeyboardInterrupt)
            run.request_cancellation(type(error).__name__)
            isolated.end(error)
        raise


def _finish_sync(isolated: _IsolatedRun, call: Callable[[], R]) -> R:
    try:
        result = call()
    except BaseException as error:
        isolated.end(error)
        raise
    isolated.end(None)
    return result


async def _run_async(
    fn: Callable[..., Awaitable[Any]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    run: RunContext,
    timeout: float | None,
) -> Any:
    isolated = _IsolatedRun(run)

    async def body() -> Any:
        # A task runs in its own copy of the context it was created in: attaching here never
        # touches the caller's context.
        token = otel_context.attach(isolated.context)
        try:
            return await fn(*args, **kwargs)
        finally:
            otel_context.detach(token)

    task = asyncio.ensure_future(body())
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    except BaseException as error:  # the caller was cancelled while waiting
        task.cancel()
        run.request_cancellation(type(error).__name__)
        isolated.end(error)
        raise
    if task not in done and task.cancel():
        await asyncio.gather(task, return_exceptions=True)
        timeout_error = isolated.time_out(timeout or 0.0)
        if timeout_error is not None:
            raise timeout_error
    try:
        result = task.result()
    except BaseException as error:
        isolated.end(error)
        raise
    isolated.end(None)
    return result
