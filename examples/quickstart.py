"""A first look: two runs, one nested step each, printed with their run attributes."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_runctx import require_run_context, run, workflow


@workflow("summarise")
def summarise(text: str) -> str:
    ctx = require_run_context()
    return f"{text[:12]}… (run {ctx.run_id[:8]}, parent {str(ctx.parent_run_id)[:8]})"


def main() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)

    for customer, ticket in (("acme", "T-100"), ("globex", "T-200")):
        with run("support-ticket", event_id=ticket, customer_id=customer, tenant_id=customer):
            print(summarise(f"ticket {ticket} from {customer}: printer on fire"))

    print("\nspans, with the run attributes they carry:")
    for span in exporter.get_finished_spans():
        print(f"  {span.name}")
        for key, value in sorted(_run_attributes(span).items()):
            print(f"    {key} = {value}")


def _run_attributes(span: ReadableSpan) -> dict[str, object]:
    return {k: v for k, v in (span.attributes or {}).items() if k.startswith("runctx.")}


if __name__ == "__main__":
    main()
