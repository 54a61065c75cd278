"""What the runctx_jsonl exporter costs per span, next to the SDK's console exporter.

Both serialise the same batch of finished, stamped spans and write it to a file: runctx_jsonl
as compact one-line JSON with a single write per batch, ``ConsoleSpanExporter`` as its
``to_json()`` (indented) per span. Per-span stamping costs are the stamping benchmarks' job.
"""

from __future__ import annotations

import os
import tempfile

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter

from benchmarks._harness import Row, ns_per_op
from otel_runctx.context import RunContext, reset_run_context, set_run_context
from otel_runctx.distro.attach import attach_to_tracer_provider
from otel_runctx.exporters.jsonl import JsonlSpanExporter

TITLE = "runctx_jsonl export, per span (batches of 256 stamped spans)"

_BATCH = 256


def _finished_spans() -> list[ReadableSpan]:
    provider = TracerProvider()
    attach_to_tracer_provider(provider)
    run = RunContext.create("bench", event_id="e-1", customer_id="c-1", tenant_id="t-1")
    token = set_run_context(run)
    spans: list[ReadableSpan] = []
    try:
        tracer = provider.get_tracer("bench")
        for index in range(_BATCH):
            span = tracer.start_span(f"op-{index}", attributes={"gen_ai.usage.input_tokens": 12})
            span.end()
            spans.append(span)  # type: ignore[arg-type]
    finally:
        reset_run_context(token)
    return spans


def measure(quick: bool) -> list[Row]:
    spans = _finished_spans()
    batches = 5 if quick else 60
    with tempfile.TemporaryDirectory() as directory:
        jsonl = JsonlSpanExporter(os.path.join(directory, "spans.jsonl"))
        with open(os.path.join(directory, "console.json"), "w", encoding="utf-8") as out:
            console = ConsoleSpanExporter(out=out)
            console.export(spans)  # warm up
            console_ns = ns_per_op(lambda: console.export(spans), ops=batches) / _BATCH
        jsonl.export(spans)
        jsonl_ns = ns_per_op(lambda: jsonl.export(spans), ops=batches) / _BATCH
        jsonl.shutdown()
    baseline = "ConsoleSpanExporter to a file"
    return [
        Row(baseline, console_ns),
        Row("runctx_jsonl", jsonl_ns, baseline, "one write + flush per batch"),
    ]
