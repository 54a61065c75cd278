"""Process pools and subprocesses carry the run, and a pool job's telemetry leaves with it.

**Pools** (``ProcessPoolExecutor``, ``multiprocessing.Pool``; fork and spawn): a job submitted
inside a run becomes a :class:`ProcessJob`, a picklable wrapper holding the submitter's run
fields and trace context. In the worker it runs as a **child run** of the submitter's run
(``parent_run_id`` = the submitter's run, same root, event, customer and tenant; workflow = the
function's qualified name) whose root span is a child of the submitting span. When the job
returns, the worker's providers are flushed: pool workers leave through ``os._exit`` (or are
terminated by the pool), so a batch left for later is never exported. That flush is one export
round trip per job, which process-pool jobs, heavy by nature, can afford. The worker needs an
SDK: fork workers inherit the parent's; spawn workers get one from ``opentelemetry-instrument``
(its ``sitecustomize`` is inherited through ``PYTHONPATH``) or from a module-level
``configure()`` in the main module (which spawn re-imports).

**Subprocesses** (``subprocess.Popen``, so ``run``/``call``/``check_output``): started inside a
run, the child gets ``TRACEPARENT``/``TRACESTATE``/``BAGGAGE`` (OpenTelemetry's environment
carriers, written by the global propagator) in *its own* ``env`` only; this process's own
environment is never touched, so concurrent runs cannot see each other's. A child under
``opentelemetry-instrument`` or ``configure()`` extracts them at startup as its inbound run
(:func:`adopt_process_carrier`), under the same ``OTEL_RUNCTX_INBOUND`` rules as an HTTP request.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from concurrent import futures
from concurrent.futures import process as _futures_process  # noqa: F401 (loads the module)
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry._logs import get_logger_provider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from otel_runctx.context import RunContext, get_run_context, with_run_context
from otel_runctx.outcomes.events import flush_outcome_events
from otel_runctx.runs import RunScope
from otel_runctx.settings import get_settings, process_environment
from otel_runctx.stats import count, report_error

__all__ = ["ProcessJob", "adopt_process_carrier", "in_child_run", "process_carrier_env"]

_CARRIER_NAMES = ("traceparent", "tracestate", "baggage")


class ProcessJob:
    """``fn`` to run in a child run of the run active when the job was made (picklable)."""

    __slots__ = ("entries", "fn", "trace_carrier")

    def __init__(self, fn: Callable[..., Any], run: RunContext) -> None:
        self.fn = fn
        self.entries = run.to_baggage_dict(lean_mode=False)
        self.trace_carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(self.trace_carrier)

    def __getstate__(self) -> tuple[Any, ...]:
        return (self.fn, self.entries, self.trace_carrier)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.fn, self.entries, self.trace_carrier = state

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        parent = RunContext.from_baggage(self.entries)
        if parent is None:  # cannot happen for fields we wrote; never fail the job for it
            count("instrumentation.process_job_without_run")
            return self.fn(*args, **kwargs)
        context = TraceContextTextMapPropagator().extract(self.trace_carrier)
        token = otel_context.attach(with_run_context(parent, context))
        try:
            name = getattr(self.fn, "__qualname__", None) or type(self.fn).__name__
            with RunScope(str(name)):
                return self.fn(*args, **kwargs)
        finally:
            otel_context.detach(token)
            _flush_after_job()


def _flush_after_job() -> None:
    """Export the job's spans, logs and outcome now (bounded by OTEL_RUNCTX_SHUTDOWN_TIMEOUT)."""
    try:
        timeout = get_settings().shutdown_timeout
        flush_outcome_events(timeout)
        for provider in (trace.get_tracer_provider(), get_logger_provider()):
            force_flush = getattr(provider, "force_flush", None)
            if callable(force_flush):
                force_flush(int(timeout * 1000))
    except Exception as error:
        report_error("instrumentation.process_job_flush", error)


def in_child_run(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The documented helper without the instrumentor: ``pool.submit(in_child_run(f), x)``.

    Inside a run it returns a :class:`ProcessJob`; outside one, ``fn`` itself.
    """
    run = get_run_context()
    if run is None or isinstance(fn, ProcessJob):
        return fn
    if (
        isinstance(fn, functools.partial)
        and fn.func is getattr(futures.process, "_process_chunk", None)
        and fn.args
    ):
        # ProcessPoolExecutor.map submits chunks: wrap the function inside, one run per item.
        return functools.partial(fn.func, ProcessJob(fn.args[0], run), *fn.args[1:], **fn.keywords)
    return ProcessJob(fn, run)


def process_carrier_env(env: Mapping[str, str] | None) -> dict[str, str] | None:
    """``env`` (None: this process's environment) plus the active run's carriers.

    None outside a run.

    Variables the caller set itself are kept as they are.
    """
    if get_run_context() is None:
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    child = process_environment() if env is None else dict(env)
    for name in _CARRIER_NAMES:
        if name in carrier:
            child.setdefault(name.upper(), carrier[name])
    return child


def adopt_process_carrier(variables: Mapping[str, str]) -> bool:
    """Make the run in ``TRACEPARENT``/``BAGGAGE`` of ``variables`` this thread's inbound run.

    Called once at startup in the main thread, so the app's main code runs under it; the global
    propagator applies the trust policy. True if a run was adopted.
    """
    carrier = {
        name: variables[name.upper()] for name in _CARRIER_NAMES if variables.get(name.upper())
    }
    if not carrier:
        return False
    context = propagate.extract(carrier)
    otel_context.attach(context)  # for the life of the process: never detached
    adopted = get_run_context(context) is not None
    if adopted:
        count("propagation.process_carrier_adopted")
    return adopted


def wrap_process_submit(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """``ProcessPoolExecutor.submit`` / ``Pool.apply_async``/``_map_async``/``imap*``."""
    if args and callable(args[0]):
        try:
            args = (in_child_run(args[0]), *args[1:])
        except Exception as error:
            report_error("instrumentation.process_submit", error)
    return wrapped(*args, **kwargs)


def wrap_popen_init(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """``subprocess.Popen.__init__``: the child's own ``env`` gets the run's carriers."""
    try:
        env = kwargs.get("env")
        if len(args) < 10:  # env is Popen's 10th parameter; positional use is vanishingly rare
            child = process_carrier_env(env)
            if child is not None:
                kwargs = {**kwargs, "env": child}
    except Exception as error:
        report_error("instrumentation.subprocess", error)
    return wrapped(*args, **kwargs)
