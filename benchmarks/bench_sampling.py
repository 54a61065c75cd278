"""Sampling cost per span (issue 14, goal 5): a span of a dropped run vs a sampled one.

Every variant starts and ends one span inside a run this process started (its usage aggregate
is live), on a provider without an exporter. Spans start with three attributes, as the stock
instrumentations start them: an HTTP client span (``http.request.method``, ``url.full``,
``server.address``) or an LLM call (``gen_ai.operation.name``, ``gen_ai.system``,
``gen_ai.request.model``, as openai-v2 does).

- bare SDK: default sampler, no processor, the HTTP span;
- sampled: RunConsistentSampler keeps the run; stamping and usage roll-up run; the HTTP span;
- sampled out, non-LLM: the run is dropped; the HTTP span is DROPped (a NonRecordingSpan no
  processor sees) and counted for its run; target <= 0.3x sampled;
- sampled out, LLM: the run is dropped; the LLM span is RECORD_ONLY: built, stamped and rolled
  up (its tokens count on the outcome), never exported;
- sampled out, unmarked: a span started without attributes in a dropped run: RECORD_ONLY too,
  because it may get tokens before it ends (see otel_runctx/sampling/llm_spans.py);
- sampled out, all: ``sampled_out_spans="all"``, the HTTP span RECORD_ONLY (the old rule);
- stock DROP: ParentBased(TraceIdRatioBased(0)), the HTTP span DROPped by the SDK's sampler,
  the floor (and what the roll-up would be blind to).

Rounds are interleaved (every variant once per round); the fastest round counts.
"""

from __future__ import annotations

from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ParentBased, Sampler, TraceIdRatioBased
from opentelemetry.trace import SpanKind, Tracer

from benchmarks._harness import Row, ns_per_op
from otel_runctx import RunContext
from otel_runctx.context import with_run_context
from otel_runctx.processors import RunContextSpanProcessor, UsageRollupProcessor
from otel_runctx.sampling import RunConsistentSampler
from otel_runctx.usage import rollup

TITLE = "Sampling: ns per span (start + end, no exporter), inside a run"

HTTP_SPAN = {
    "http.request.method": "POST",
    "url.full": "https://api.example.com/v1/items",
    "server.address": "api.example.com",
}
LLM_SPAN = {
    "gen_ai.operation.name": "chat",
    "gen_ai.system": "openai",
    "gen_ai.request.model": "gpt-4o",
}


def _tracer(sampler: Sampler | None, ours: bool) -> Tracer:
    provider = TracerProvider(sampler=sampler, shutdown_on_exit=False)
    if ours:
        provider.add_span_processor(RunContextSpanProcessor())
        provider.add_span_processor(UsageRollupProcessor())
    return provider.get_tracer("bench.sampling")


def measure(quick: bool) -> list[Row]:
    ops = 2_000 if quick else 10_000
    rounds = 2 if quick else 5
    run = RunContext.create("bench", event_id="evt-1", customer_id="cust-1")
    kept = _tracer(RunConsistentSampler(1.0), ours=True)
    dropped = _tracer(RunConsistentSampler(0.0, sampled_out_spans="llm"), ours=True)
    dropped_all = _tracer(RunConsistentSampler(0.0, sampled_out_spans="all"), ours=True)
    variants: dict[str, tuple[Tracer, str, dict[str, str] | None]] = {
        "bare SDK": (_tracer(None, ours=False), "POST", HTTP_SPAN),
        "sampled": (kept, "POST", HTTP_SPAN),
        "sampled out, non-LLM": (dropped, "POST", HTTP_SPAN),
        "sampled out, LLM": (dropped, "chat gpt-4o", LLM_SPAN),
        "sampled out, unmarked": (dropped, "step", None),
        "sampled out, all": (dropped_all, "POST", HTTP_SPAN),
        "stock DROP": (_tracer(ParentBased(TraceIdRatioBased(0.0)), ours=True), "POST", HTTP_SPAN),
    }
    token = otel_context.attach(with_run_context(run))
    rollup.start_run(run.run_id)
    try:
        best: dict[str, float] = {}
        for _ in range(rounds):  # interleaved rounds; the fastest counts
            for name, (tracer, span_name, attributes) in variants.items():
                start_span = tracer.start_span

                def one(
                    start_span: object = start_span,
                    span_name: str = span_name,
                    attributes: object = attributes,
                ) -> None:
                    start_span(span_name, kind=SpanKind.CLIENT, attributes=attributes).end()  # type: ignore[operator]

                value = ns_per_op(one, ops=ops)
                best[name] = min(best.get(name, value), value)
    finally:
        rollup.finish_run(run.run_id)
        otel_context.detach(token)
    return [
        Row("bare SDK", best["bare SDK"]),
        Row("sampled", best["sampled"], "bare SDK", "kept run: stamped, rolled up, exportable"),
        Row(
            "sampled out, non-LLM",
            best["sampled out, non-LLM"],
            "sampled",
            "HTTP span: DROP, counted for its run; target <= 0.3x",
        ),
        Row(
            "sampled out, LLM",
            best["sampled out, LLM"],
            "sampled",
            "gen_ai attributes at start: RECORD_ONLY, tokens rolled up",
        ),
        Row(
            "sampled out, unmarked",
            best["sampled out, unmarked"],
            "sampled",
            "no start attributes: RECORD_ONLY (may get tokens later)",
        ),
        Row(
            "sampled out, all",
            best["sampled out, all"],
            "sampled",
            "OTEL_RUNCTX_SAMPLED_OUT_SPANS=all: every span RECORD_ONLY",
        ),
        Row("stock DROP", best["stock DROP"], "sampled", "the SDK's DROP: the floor"),
    ]
