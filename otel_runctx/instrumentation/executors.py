"""ExecutorContextInstrumentor: thread pools, ``run_in_executor`` and threads carry the run.

The stdlib does not copy context into ``ThreadPoolExecutor.submit`` (so ``Executor.map`` and
``loop.run_in_executor`` neither), nor into ``threading.Thread``: there, work starts with no run,
or on a reused pool worker with whatever a previous job left behind. This instrumentor copies the
SUBMITTING context into each job, a fresh copy per job (``contextvars.copy_context()``), and the
starting context into each thread (``Thread`` subclasses that override ``run()`` included).
Process-pool jobs run in a child run of the submitter's, and subprocesses get the run in their
own environment (see :mod:`otel_runctx.instrumentation.processes`).

It coexists with opentelemetry-instrumentation-threading: each wraps the same methods with its
own wrapt layer, in either order. Since another instrumentor's ``unwrap`` can remove whichever
layer is outermost, ours checks an "enabled" flag on every call, so ``uninstrument`` turns it off
even when our layer can no longer be removed, and ``instrument`` re-enables a layer that is still
in place instead of stacking a second one.
"""

from __future__ import annotations

import contextvars
import multiprocessing.pool
import subprocess
import threading
from collections.abc import Callable, Collection
from concurrent import futures
from typing import Any

import wrapt
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from otel_runctx.instrumentation import processes
from otel_runctx.instrumentation._jobs import ContextJob, call_in_empty_context
from otel_runctx.stats import report_error

__all__ = ["ExecutorContextInstrumentor"]

_Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]
# wrapt 2 moved FunctionWrapper under BaseObjectProxy; wrapt 1 has only ObjectProxy.
_PROXY_TYPE: type = getattr(wrapt, "BaseObjectProxy", wrapt.ObjectProxy)


class _State:
    enabled = False


def _wrap_submit(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    if not _State.enabled or not args or isinstance(args[0], ContextJob):
        return wrapped(*args, **kwargs)
    return call_in_empty_context(wrapped, ContextJob(args[0]), *args[1:], **kwargs)


class _RunInStartContext:
    """Stands in for one thread's ``run`` until it starts, then runs it in the start context.

    It is set on the thread instance, so a subclass that overrides ``run()`` is covered too (a
    wrapper on ``Thread.run`` would miss it). On first call it removes itself, restoring whatever
    ``run`` was before, so the thread object keeps no context once it is running.
    """

    __slots__ = ("context", "previous", "thread")

    def __init__(self, thread: threading.Thread, context: contextvars.Context) -> None:
        self.thread = thread
        self.context = context
        self.previous = vars(thread).get("run")

    def restore(self) -> None:
        """Put back the ``run`` the thread had before this stand-in, if it is still in place."""
        thread = self.thread
        if thread is None or vars(thread).get("run") is not self:
            return
        if self.previous is None:
            del thread.run
        else:
            thread.run = self.previous  # type: ignore[method-assign]

    def __call__(self) -> None:
        thread, context = self.thread, self.context
        self.restore()
        self.thread = self.context = self.previous = None  # type: ignore[assignment]
        if _State.enabled:
            context.run(thread.run)
        else:
            thread.run()


def _wrap_thread_start(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    stand_in = None
    if _State.enabled and isinstance(instance, threading.Thread):
        try:
            stand_in = _RunInStartContext(instance, contextvars.copy_context())
            instance.run = stand_in  # type: ignore[method-assign]
        except Exception as error:  # e.g. a subclass whose run is a read-only property
            stand_in = None
            report_error("instrumentation.thread_start", error)
    try:
        return wrapped(*args, **kwargs)
    except BaseException:
        if stand_in is not None:  # e.g. "threads can only be started once": leave no trace
            stand_in.restore()
        raise


def _wrap_process_pool(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    # multiprocessing's ThreadPool is a Pool subclass whose jobs stay in this process.
    if not _State.enabled or isinstance(instance, multiprocessing.pool.ThreadPool):
        return wrapped(*args, **kwargs)
    return processes.wrap_process_submit(wrapped, instance, args, kwargs)


def _wrap_popen(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    if not _State.enabled:
        return wrapped(*args, **kwargs)
    return processes.wrap_popen_init(wrapped, instance, args, kwargs)


_TARGETS: tuple[tuple[type, str, _Wrapper], ...] = (
    (futures.ThreadPoolExecutor, "submit", _wrap_submit),
    (threading.Thread, "start", _wrap_thread_start),
    (futures.ProcessPoolExecutor, "submit", _wrap_process_pool),
    (multiprocessing.pool.Pool, "apply_async", _wrap_process_pool),
    (multiprocessing.pool.Pool, "_map_async", _wrap_process_pool),
    (multiprocessing.pool.Pool, "imap", _wrap_process_pool),
    (multiprocessing.pool.Pool, "imap_unordered", _wrap_process_pool),
    (subprocess.Popen, "__init__", _wrap_popen),
)


def _find_layer(owner: type, name: str, wrapper: _Wrapper) -> Any:
    """Our wrapt layer for ``owner.name`` if it is anywhere in the wrapper chain, else None."""
    current: object = vars(owner).get(name)
    while isinstance(current, _PROXY_TYPE):
        if getattr(current, "_self_wrapper", None) is wrapper:
            return current
        current = getattr(current, "__wrapped__", None)
    return None


class ExecutorContextInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Copy the submitting context into thread-pool jobs and the starting context into threads.

    ``ExecutorContextInstrumentor().instrument()`` patches ``ThreadPoolExecutor.submit`` (which
    ``map`` and ``loop.run_in_executor`` use) and ``Thread.start`` (so ``Timer`` and ``Thread``
    subclasses too), ``ProcessPoolExecutor.submit``, ``multiprocessing.Pool``'s
    ``apply_async``/``map``/``imap`` family and ``subprocess.Popen``; ``uninstrument()``
    restores them. ``opentelemetry-instrument`` loads it
    through the ``runctx_executors`` entry point (disable with
    ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=runctx_executors``).
    """

    def instrumentation_dependencies(self) -> Collection[str]:
        """Only the standard library is patched."""
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        for owner, name, wrapper in _TARGETS:
            if _find_layer(owner, name, wrapper) is None:
                wrapt.wrap_function_wrapper(owner, name, wrapper)
        _State.enabled = True

    def _uninstrument(self, **kwargs: Any) -> None:
        _State.enabled = False
        for owner, name, wrapper in _TARGETS:
            layer = vars(owner).get(name)
            if isinstance(layer, _PROXY_TYPE) and getattr(layer, "_self_wrapper", None) is wrapper:
                setattr(owner, name, getattr(layer, "__wrapped__"))  # noqa: B009
            # else: another instrumentor wrapped over ours; our layer stays, disabled.
