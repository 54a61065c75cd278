"""After 100,000 runs the span processor holds nothing per run: no growth, bounded caches."""

from __future__ import annotations

import gc

from opentelemetry import baggage
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import TracerProvider

from otel_runctx import RunContext, reset_run_context, set_run_context
from otel_runctx.processors import RunContextSpanProcessor, _lookup

RUNS = 100_000


def _live_run_contexts() -> int:
    gc.collect()
    return sum(1 for obj in gc.get_objects() if type(obj) is RunContext)


def test_a_hundred_thousand_runs_leave_no_per_run_state() -> None:
    _lookup.clear_baggage_cache()
    processor = RunContextSpanProcessor()
    provider = TracerProvider()  # no exporter: only the processor could keep spans or runs alive
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test.no-state")
    assert gc.is_tracked(RunContext.create("w", event_id="e", customer_id="c"))
    before = _live_run_contexts()

    stamped = 0
    for i in range(RUNS):
        run = RunContext.create("w", event_id=f"e-{i}", customer_id=f"c-{i % 97}")
        if i % 10:
            token = set_run_context(run)
        else:  # every tenth run arrives as upstream baggage instead
            context = otel_context.get_current()
            for key, value in run.to_baggage_dict().items():
                context = baggage.set_baggage(key, value, context)
            token = otel_context.attach(context)
        try:
            span = tracer.start_span("work")
            stamped += dict(span.attributes or {}).get("runctx.run_id") == run.run_id
            span.end()
        finally:
            if i % 10:
                reset_run_context(token)
            else:
                otel_context.detach(token)
    del run, span

    assert stamped == RUNS
    assert vars(processor) == {}
    assert _lookup.baggage_cache_size() <= _lookup.BAGGAGE_CACHE_SIZE
    # Only the bounded baggage cache may keep rebuilt runs alive.
    assert _live_run_contexts() - before <= _lookup.BAGGAGE_CACHE_SIZE
