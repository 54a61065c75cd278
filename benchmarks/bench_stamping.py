"""Stamping cost per span: our processor against the public-API floor and the baggage processor.

Every variant starts and ends a span inside a run with 8 run attributes, on a provider without an
exporter (export cost would drown the difference). Overhead = variant - bare SDK:

- bare SDK: no processor, no attributes;
- floor: the same 8 attributes passed to ``start_span(attributes=...)``, the cheapest a user can
  do through the public API;
- ours: RunContextSpanProcessor (fast path, and forced onto the public-API path);
- baggage processor: opentelemetry-processor-baggage's BaggageSpanProcessor with the same 8
  entries in baggage.

The same comparison for a log record emitted through an SDK Logger, with and without
RunContextLogProcessor, closes the table.

Variants are timed in interleaved rounds and the fastest round counts, so a noisy neighbour on a
shared machine slows every variant alike instead of one.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry._logs import LogRecord
from opentelemetry.context import Context
from opentelemetry.processor.baggage import ALLOW_ALL_BAGGAGE_KEYS, BaggageSpanProcessor
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.trace import Tracer

from benchmarks._harness import Row
from otel_runctx import RunContext
from otel_runctx.context import with_run_context
from otel_runctx.processors import RunContextLogProcessor, RunContextSpanProcessor, _fast_stamp
from otel_runctx.processors._lookup import run_for
from otel_runctx.settings import reload_settings

TITLE = "Stamping: ns per span (start + end, no exporter), 8 run attributes"


class _NoOpProcessor(SpanProcessor):
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        pass


def _tracer(*processors: SpanProcessor) -> Tracer:
    provider = TracerProvider(shutdown_on_exit=False)
    for processor in processors:
        provider.add_span_processor(processor)
    return provider.get_tracer("bench.stamping")


def _interleaved(
    variants: dict[str, Callable[[], object]], ops: int, rounds: int
) -> dict[str, float]:
    """Fastest mean ns per call of each variant over ``rounds`` interleaved rounds."""
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(rounds):
        for name, operation in variants.items():
            gc.collect()
            gc.disable()
            try:
                start = time.perf_counter_ns()
                for _ in range(ops):
                    operation()
                best[name] = min(best[name], (time.perf_counter_ns() - start) / ops)
            finally:
                gc.enable()
    return best


@contextmanager
def _attached(context: Context) -> Iterator[None]:
    token = otel_context.attach(context)
    try:
        yield
    finally:
        otel_context.detach(token)


def _context_at_depth(tracer: Tracer, depth: int, context: Context) -> Context:
    """``context`` with ``depth - 1`` open ancestor spans: a span started in it is at ``depth``."""
    for level in range(1, depth):
        parent = tracer.start_span(f"parent-{level}", context=context)
        context = trace.set_span_in_context(parent, context)
    return context


class _PublicPathProcessor(RunContextSpanProcessor):
    """RunContextSpanProcessor forced onto the public-API path (set_attributes), for comparison."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        run = run_for(parent_context)
        if run is not None:
            _fast_stamp.stamp_public(span, run.to_span_attributes())


def _threaded_ns_per_span(tracer: Tracer, threads: int, spans_per_thread: int) -> float:
    """Wall-clock ns per span with ``threads`` threads each stamping spans in its own run."""
    started: list[int] = []
    barrier = threading.Barrier(threads, action=lambda: started.append(time.perf_counter_ns()))

    def worker(i: int) -> None:
        run = RunContext.create("bench", event_id=f"e-{i}", customer_id="c", tenant_id="t")
        with _attached(with_run_context(run)):
            barrier.wait()  # the clock starts when the last thread is ready
            for _ in range(spans_per_thread):
                tracer.start_span("s").end()

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return (time.perf_counter_ns() - started[0]) / (threads * spans_per_thread)


def _log_variants(context: Context, ops: int, rounds: int) -> dict[str, float]:
    """ns per log record emitted through an SDK Logger, without and with RunContextLogProcessor."""
    bare_provider = LoggerProvider(shutdown_on_exit=False)
    ours_provider = LoggerProvider(shutdown_on_exit=False)
    ours_provider.add_log_record_processor(RunContextLogProcessor())
    bare, ours = bare_provider.get_logger("bench"), ours_provider.get_logger("bench")
    user_attributes = {"http.route": "/tickets", "retry": 0}
    with _attached(context):
        return _interleaved(
            {
                "bare": lambda: bare.emit(LogRecord(body="b", attributes=user_attributes)),
                "ours": lambda: ours.emit(LogRecord(body="b", attributes=user_attributes)),
            },
            ops,
            rounds,
        )


def measure(quick: bool) -> list[Row]:
    # The same 8 attributes for ours and the floor: OTEL_RUNCTX_SPAN_ATTRIBUTES=full. The lean
    # default stamps fewer, so this is the mechanism's worst case (bench_export has lean).
    reload_settings({"OTEL_RUNCTX_SPAN_ATTRIBUTES": "full"})
    try:
        return _measure(quick)
    finally:
        reload_settings()


def _measure(quick: bool) -> list[Row]:
    ops, rounds = (1_000, 3) if quick else (5_000, 40)
    run = RunContext.create("bench", event_id="evt-000123", customer_id="cust-42", tenant_id="t-7")
    attributes = run.to_span_attributes()
    assert len(attributes) == 8, sorted(attributes)

    bare = _tracer()
    noop = _tracer(_NoOpProcessor())
    ours = _tracer(RunContextSpanProcessor())
    ours_public = _tracer(_PublicPathProcessor())
    contrib = _tracer(BaggageSpanProcessor(ALLOW_ALL_BAGGAGE_KEYS))
    # One context for every variant: the run (read by ours) and the same 8 entries as baggage
    # (read by the baggage processor). Each processor ignores what the other reads.
    context = with_run_context(run)
    for key, value in attributes.items():
        context = baggage.set_baggage(key, str(value), context)

    with _attached(context):
        flat = _interleaved(
            {
                "bare SDK": lambda: bare.start_span("s").end(),
                "no-op processor": lambda: noop.start_span("s").end(),
                "floor": lambda: bare.start_span("s", attributes=attributes).end(),
                "ours": lambda: ours.start_span("s").end(),
                "ours, public-API path": lambda: ours_public.start_span("s").end(),
                "baggage processor": lambda: contrib.start_span("s").end(),
            },
            ops,
            rounds,
        )
    depth_variants: dict[str, Callable[[], object]] = {}
    for d in (1, 5):
        for name, tracer in (("bare", bare), ("ours", ours)):
            at_depth = _context_at_depth(tracer, d, context)
            depth_variants[f"depth {d}: {name}"] = lambda t=tracer, c=at_depth: t.start_span(
                "s", context=c
            ).end()
    depth = _interleaved(depth_variants, ops, rounds)

    logs = _log_variants(context, ops, rounds)

    threads: dict[str, float] = {}
    for _ in range(3 if quick else 5):  # fastest of a few rounds, as above
        for n in (1, 4):
            for name, tracer in (("bare", bare), ("ours", ours)):
                key = f"{n} thread{'s' if n > 1 else ''}: {name}"
                value = _threaded_ns_per_span(tracer, n, 4 * ops // n)
                threads[key] = min(threads.get(key, value), value)

    base = flat["bare SDK"]
    overhead = {name: value - base for name, value in flat.items()}
    fast_note = "fast path" if _fast_stamp.FAST_PATH_AVAILABLE else "fast path unavailable"
    rows = [
        Row("bare SDK", base),
        Row("no-op processor", flat["no-op processor"], "bare SDK"),
        Row("floor (attributes=)", flat["floor"], "bare SDK", "public-API floor"),
        Row("ours", flat["ours"], "bare SDK", fast_note),
        Row("ours (public API)", flat["ours, public-API path"], "bare SDK", "set_attributes"),
        Row("baggage processor", flat["baggage processor"], "bare SDK", "8 baggage entries"),
        Row("+ floor", overhead["floor"], note="overhead = variant - bare"),
        Row("+ ours", overhead["ours"], "+ floor", "target <= 0.35x floor (no regression)"),
        Row("+ ours (public API)", overhead["ours, public-API path"], "+ floor"),
        Row("+ baggage processor", overhead["baggage processor"], "+ ours", "target >= 2.5x ours"),
    ]
    for label in ("depth 1", "depth 5"):
        rows.append(Row(f"{label}: bare", depth[f"{label}: bare"], note="span with parents"))
        rows.append(Row(f"{label}: ours", depth[f"{label}: ours"], f"{label}: bare"))
    for label in ("depth 1", "depth 5"):
        ours_overhead = depth[f"{label}: ours"] - depth[f"{label}: bare"]
        rows.append(Row(f"+ ours, {label}", ours_overhead, "+ ours, depth 1"))
    rows.append(Row("log record: bare SDK", logs["bare"], note="Logger.emit, no exporter"))
    rows.append(Row("log record: ours", logs["ours"], "log record: bare SDK"))
    rows.append(Row("+ ours, log record", logs["ours"] - logs["bare"], note="variant - bare"))
    for label in ("1 thread", "4 threads"):
        rows.append(Row(f"{label}: bare", threads[f"{label}: bare"], note="wall clock / spans"))
        rows.append(Row(f"{label}: ours", threads[f"{label}: ours"], f"{label}: bare"))
    for label in ("1 thread", "4 threads"):
        ours_overhead = threads[f"{label}: ours"] - threads[f"{label}: bare"]
        rows.append(Row(f"+ ours, {label}", ours_overhead, "+ ours, 1 thread"))
    return rows
