"""Sampling cost per span: a span of a sampled-out run vs a sampled one vs the bare SDK.

Every variant starts and ends a span inside a run, on a provider without an exporter:

- bare SDK: default sampler, no processor;
- sampled: RunConsistentSampler keeps the run; our stamping and usage roll-up processors run;
- sampled out: RunConsistentSampler drops the run, so the span is RECORD_ONLY: it is still
  built, stamped and rolled up (its tokens count on the outcome) but no exporter would see it;
- stock DROP: ParentBased(TraceIdRatioBased(0)), a NonRecordingSpan no processor sees (what
  the roll-up would be blind to), for reference.
"""

from __future__ import annotations

from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ParentBased, Sampler, TraceIdRatioBased
from opentelemetry.trace import Tracer

from benchmarks._harness import Row, ns_per_op
from otel_runctx import RunContext
from otel_runctx.context import with_run_context
from otel_runctx.processors import RunContextSpanProcessor, UsageRollupProcessor
from otel_runctx.sampling import RunConsistentSampler
from otel_runctx.usage import rollup

TITLE = "Sampling: ns per span (start + end, no exporter), inside a run"


def _tracer(sampler: Sampler | None, ours: bool) -> Tracer:
    provider = TracerProvider(sampler=sampler, shutdown_on_exit=False)
    if ours:
        provider.add_span_processor(RunContextSpanProcessor())
        provider.add_span_processor(UsageRollupProcessor())
    return provider.get_tracer("bench.sampling")


def measure(quick: bool) -> list[Row]:
    ops = 2_000 if quick else 50_000
    run = RunContext.create("bench", event_id="evt-1", customer_id="cust-1")
    tracers = {
        "bare SDK": _tracer(None, ours=False),
        "sampled": _tracer(RunConsistentSampler(1.0), ours=True),
        "sampled out": _tracer(RunConsistentSampler(0.0), ours=True),
        "stock DROP": _tracer(ParentBased(TraceIdRatioBased(0.0)), ours=True),
    }
    token = otel_context.attach(with_run_context(run))
    rollup.start_run(run.run_id)
    try:
        best: dict[str, float] = {}
        for _ in range(3):  # interleaved rounds; the fastest counts
            for name, tracer in tracers.items():
                start_span = tracer.start_span

                def one(start_span: object = start_span) -> None:
                    start_span("llm call").end()  # type: ignore[operator]

                value = ns_per_op(one, ops=ops)
                best[name] = min(best.get(name, value), value)
    finally:
        rollup.finish_run(run.run_id)
        otel_context.detach(token)
    return [
        Row("bare SDK", best["bare SDK"]),
        Row("sampled", best["sampled"], "bare SDK", "kept run: stamped, rolled up, exportable"),
        Row("sampled out", best["sampled out"], "sampled", "RECORD_ONLY: still rolled up"),
        Row("stock DROP", best["stock DROP"], "bare SDK", "invisible to the roll-up"),
    ]
